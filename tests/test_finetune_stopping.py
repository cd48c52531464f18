"""When a fine-tune stops: a validation plateau (patience), the time budget or the step cap, whichever comes
first; the LR schedule ends where the run does; the blend check reads the anchor only where it decides.

Validation is scripted (``evaluate_pool`` replaced by a sequence of exact matches), so each test states the
curve it trains against; the model is tiny, so a run is a few seconds.
"""
from __future__ import annotations

import pytest
import torch

import recognizer.finetune as ft
from recognizer.checkpoint import read_config, save_model
from recognizer.finetune import FinetuneConfig, finetune
from recognizer.model import CRNN, ModelConfig
from recognizer.pool import Pool
from recognizer.tokenizer import CTCTokenizer
from recognizer.train import TrainConfig, lr_at

QUIET = dict(log=lambda s: None)


def _tiny_artifact(path: str) -> str:
    torch.manual_seed(0)
    tok = CTCTokenizer()
    return save_model(CRNN(ModelConfig(num_classes=tok.num_classes, channels=(8, 16, 16, 16), hidden=16)), tok, path)


def _head(pool: Pool, n: int) -> Pool:
    return Pool.pack([pool.image(i) for i in range(n)], pool.labels[:n], pool.height)


def _cfg(patience: int = 2, patience_after: float = 0.0, **train) -> FinetuneConfig:
    base = dict(steps=40, batch_size=16, lr=1e-3, warmup=2, eval_every=4, ckpt_every=4, workers=0, seconds=None)
    return FinetuneConfig(train=TrainConfig(**{**base, **train}), patience=patience, patience_after=patience_after,
                          trainable="all")


@pytest.fixture()
def scripted_validation(monkeypatch):
    """``set(curve)``: the k-th validation check (k = 0: the warm start) reads ``curve[k]`` (the last value
    repeats); returns the list of checks made."""
    checks: list[float] = []

    def install(curve: list[float]) -> list[float]:
        def evaluate_pool(model, tok, pool, batch_size=128):
            em = curve[min(len(checks), len(curve) - 1)]
            checks.append(em)
            return {"n": len(pool), "exact_match": em, "norm_edit_distance": 1 - em}
        monkeypatch.setattr(ft, "evaluate_pool", evaluate_pool)
        return checks
    return install


def test_stops_when_validation_stops_improving_and_keeps_the_best_check(tmp_path, tiny_pool, scripted_validation):
    """Rises to a peak at step 8, then nothing for `patience` = 2 checks: stopped at step 16 of 40."""
    checks = scripted_validation([0.1, 0.2, 0.5, 0.4, 0.5, 0.9])      # the 0.9 at step 20 is never reached
    res = finetune(_tiny_artifact(str(tmp_path / "init")), _head(tiny_pool, 64), _head(tiny_pool, 16), _cfg(),
                   str(tmp_path / "ft"), **QUIET)
    assert (res.stopped_by, res.steps, res.best_step, res.stopped_early) == ("patience", 16, 8, True)
    assert [h["step"] for h in res.history] == [4, 8, 12, 16] and len(checks) == 5     # + the warm start
    assert read_config(res.model_dir)["meta"]["step"] == 8 and res.best_exact_match == 0.5
    assert 0 < res.train_s <= res.wall_s and all("train_s" in h for h in res.history)


def test_a_longer_patience_rides_out_the_same_dip(tmp_path, tiny_pool, scripted_validation):
    scripted_validation([0.1, 0.2, 0.5, 0.4, 0.5, 0.9, 0.9])
    res = finetune(_tiny_artifact(str(tmp_path / "init")), _head(tiny_pool, 64), _head(tiny_pool, 16),
                   _cfg(patience=3), str(tmp_path / "ft"), **QUIET)
    assert res.best_step == 20 and res.best_exact_match == 0.9 and res.stopped_by == "patience" and res.steps == 32


def test_checks_before_patience_after_of_the_cap_are_no_plateau(tmp_path, tiny_pool, scripted_validation):
    """An early peak and dip (the LR is near its peak there): with patience counted from half the cap on, the
    run goes on past the dip, finds the later, better step, and stops 2 checks after half the cap."""
    scripted_validation([0.1, 0.5, 0.4, 0.4, 0.6, 0.6])
    res = finetune(_tiny_artifact(str(tmp_path / "init")), _head(tiny_pool, 64), _head(tiny_pool, 16),
                   _cfg(patience_after=0.5), str(tmp_path / "ft"), **QUIET)   # without it: stopped at 12, best 4
    assert (res.best_step, res.best_exact_match, res.stopped_by, res.steps) == (16, 0.6, "patience", 28)


def test_the_step_cap_ends_a_run_that_keeps_improving(tmp_path, tiny_pool, scripted_validation):
    scripted_validation([0.1 * k for k in range(10)])
    res = finetune(_tiny_artifact(str(tmp_path / "init")), _head(tiny_pool, 64), _head(tiny_pool, 16),
                   _cfg(steps=12, seconds=3600.0), str(tmp_path / "ft"), **QUIET)
    assert (res.stopped_by, res.steps, res.best_step, res.stopped_early) == ("steps", 12, 12, False)


def test_the_time_budget_ends_a_run_that_keeps_improving(tmp_path, tiny_pool, scripted_validation):
    """A cap out of reach, validation always rising: the budget stops it, and the last step is checked and kept."""
    scripted_validation([0.001 * k for k in range(100_000)])
    res = finetune(_tiny_artifact(str(tmp_path / "init")), _head(tiny_pool, 64), _head(tiny_pool, 16),
                   _cfg(steps=100_000, eval_every=10**6, ckpt_every=10**6, seconds=2.0), str(tmp_path / "ft"), **QUIET)
    assert res.stopped_by == "seconds" and 0 < res.steps < 100_000 and res.train_s >= 2.0
    assert res.train_s < 30 and res.best_step == res.steps == res.history[-1]["step"]    # evaluated where it stopped


def test_the_lr_schedule_ends_at_whichever_limit_comes_first():
    cfg = TrainConfig(steps=300, warmup=25, lr=2e-3, seconds=200.0)
    end = cfg.lr * cfg.min_lr_frac
    assert lr_at(10, cfg, elapsed=1.0) == pytest.approx(cfg.lr * 11 / 25)          # warm-up
    assert lr_at(300, cfg, elapsed=50.0) == pytest.approx(end)                       # the cap came first
    assert lr_at(100, cfg, elapsed=200.0) == pytest.approx(end)                      # the budget came first
    fast, slow = lr_at(162, cfg, elapsed=40.0), lr_at(162, cfg, elapsed=150.0)
    assert fast == pytest.approx(lr_at(162, TrainConfig(steps=300, warmup=25, lr=2e-3)))   # on pace: steps decide,
    assert slow < fast                                                                     # so a run is reproducible
    assert lr_at(162, TrainConfig(steps=300, warmup=25, lr=2e-3, seconds=0.0), elapsed=1e9) == fast   # 0: no budget


def test_the_nightly_recipe_states_its_limits():
    cfg = FinetuneConfig()
    assert cfg.train.seconds and cfg.train.steps and cfg.patience >= 1
    earliest = cfg.patience_after * cfg.train.steps + cfg.patience * cfg.train.eval_every
    assert earliest < cfg.train.steps                                       # a plateau can end a run before the cap


def test_the_blend_check_reads_the_anchor_only_where_it_decides(monkeypatch, base_model_dir):
    """Validation prefers the full fine-tune (alpha 1), which keeps the anchor: the 0.5 blend's anchor is never
    read. When alpha 1 loses the anchor, the next blend by validation is read and kept."""
    from recognizer.checkpoint import load_model

    champion, tok, _ = load_model(base_model_dir)
    made: list[object] = []

    class Reader:
        def __init__(self, model_dir, loaded=None):
            self.alpha = (0.0, 0.5, 1.0)[len(made)]
            made.append(self)

    anchor_reads: list[float] = []

    def run(table):
        made.clear()
        anchor_reads.clear()

        def serving_exact_match(reader, crops):
            if len(crops[1]) == 3:                                   # the anchor (validation has 2 crops)
                anchor_reads.append(reader.alpha)
                return table[reader.alpha][1]
            return table[reader.alpha][0]
        monkeypatch.setattr("recognizer.predict.Predictor", Reader)
        monkeypatch.setattr(ft, "serving_exact_match", serving_exact_match)
        val, anchor = ([None] * 2, ["A", "B"]), ([None] * 3, ["A", "B", "C"])
        return ft.choose_blend(champion, champion, tok, _Crops(*val), _Crops(*anchor), (1.0, 0.5), 0.0, **QUIET)

    alpha, _, rows = run({0.0: (0.2, 0.9), 0.5: (0.4, 0.9), 1.0: (0.6, 0.9)})
    assert alpha == 1.0 and anchor_reads == [0.0, 1.0] and rows[1]["anchor_exact_match"] is None
    alpha, _, rows = run({0.0: (0.2, 0.9), 0.5: (0.4, 0.9), 1.0: (0.6, 0.8)})
    assert alpha == 0.5 and anchor_reads == [0.0, 1.0, 0.5] and [r["anchor_exact_match"] for r in rows] == [0.9] * 2 + [0.8]
    alpha, _, _ = run({0.0: (0.2, 0.9), 0.5: (0.4, 0.7), 1.0: (0.6, 0.8)})
    assert alpha == 0.0 and anchor_reads == [0.0, 1.0, 0.5]                  # nothing qualifies but the champion


class _Crops:
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)
