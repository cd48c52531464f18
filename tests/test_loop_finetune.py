"""Fine-tuning from a champion: charset extension, early stopping, resume, width-capped batches, learning."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recognizer.checkpoint import load_model, read_config, save_model
from recognizer.data import WidthBucketSampler
from recognizer.evaluate import evaluate_pool, read_batch
from recognizer.finetune import FinetuneConfig, add_adapters, extend_charset, finetune
from recognizer.model import CRNN, ModelConfig
from recognizer.pool import Pool
from recognizer.tokenizer import CTCTokenizer
from recognizer.train import TrainConfig

QUIET = dict(log=lambda s: None)


def _tiny_artifact(path: str) -> str:
    torch.manual_seed(0)
    tok = CTCTokenizer()
    return save_model(CRNN(ModelConfig(num_classes=tok.num_classes, channels=(8, 16, 16, 16), hidden=16)), tok, path)


def _relabel(pool: Pool, labels: list[str]) -> Pool:
    return Pool(pool.height, pool.pixels, pool.widths, pool.offsets, labels)


def _head(pool: Pool, n: int = 48) -> Pool:
    return Pool.pack([pool.image(i) for i in range(n)], pool.labels[:n], pool.height)


def _cfg(**kw) -> FinetuneConfig:
    train = dict(steps=8, batch_size=16, lr=1e-3, warmup=2, eval_every=4, ckpt_every=4, workers=0)
    train.update(kw.pop("train", {}))
    return FinetuneConfig(train=TrainConfig(**train), **{"patience": 3, "patience_after": 0.0, **kw})


def test_extend_charset_keeps_old_readings_identical(base_model_dir, tiny_pool):
    model, tok, _ = load_model(base_model_dir)
    grays = [tiny_pool.image(i) for i in range(48)]
    before = read_batch(model, tok, grays)
    new_model, new_tok = extend_charset(model, tok, "+&A")          # 'A' is known: not appended twice
    assert new_tok.charset == tok.charset + "+&" and new_model.fc.out_features == tok.num_classes + 2
    assert torch.equal(new_model.fc.weight[:tok.num_classes], model.fc.weight)
    after = read_batch(new_model.eval(), new_tok, grays)
    assert [t for t, _ in after] == [t for t, _ in before]
    assert np.allclose([c for _, c in after], [c for _, c in before], atol=1e-4)
    assert extend_charset(model, tok, "AB")[1] is tok                 # nothing new: unchanged


@pytest.mark.slow
def test_finetune_appends_characters_of_new_labels(tmp_path, tiny_pool):
    init = _tiny_artifact(str(tmp_path / "init"))
    labels = [lab[:3] + "+" + lab[3:] if i % 3 == 0 else lab for i, lab in enumerate(tiny_pool.labels)]
    res = finetune(init, _relabel(tiny_pool, labels), _head(_relabel(tiny_pool, labels)), _cfg(), str(tmp_path / "ft"),
                   **QUIET)
    cfg = read_config(res.model_dir)
    assert res.added_chars == "+" and cfg["charset"] == CTCTokenizer().charset + "+"
    assert cfg["meta"]["added_chars"] == "+" and cfg["model"]["num_classes"] == len(cfg["charset"]) + 1
    load_model(res.model_dir)                                          # loads with the extended head


@pytest.mark.slow
def test_early_stopping_keeps_the_best_checkpoint(tmp_path, tiny_pool, base_model_dir):
    """A destructive learning rate never beats the warm start: stop after `patience`, return step 0."""
    val = _head(tiny_pool)
    res = finetune(base_model_dir, tiny_pool, val, _cfg(train={"lr": 0.5, "steps": 40}, patience=2),
                   str(tmp_path / "ft"), **QUIET)
    assert res.stopped_early and res.steps == 8 and res.best_step == 0
    m0, tok0, _ = load_model(base_model_dir)
    best, tok, _ = load_model(res.model_dir)
    assert evaluate_pool(best, tok, val)["exact_match"] == evaluate_pool(m0, tok0, val)["exact_match"]


@pytest.mark.slow
def test_a_run_that_dies_resumes_from_its_checkpoint(tmp_path, tiny_pool):
    init, out = _tiny_artifact(str(tmp_path / "init")), str(tmp_path / "ft")

    def die_at_8(rec):
        if rec["step"] == 8:
            raise RuntimeError("killed")
    with pytest.raises(RuntimeError, match="killed"):
        finetune(init, tiny_pool, _head(tiny_pool), _cfg(train={"steps": 12}), out, on_eval=die_at_8, **QUIET)
    logs: list[str] = []
    res = finetune(init, tiny_pool, _head(tiny_pool), _cfg(train={"steps": 12}), out, log=logs.append)
    assert any("resumed from step 4" in line for line in logs) and res.steps == 12
    assert [h["step"] for h in res.history] == [4, 8, 12]


def test_width_buckets_cap_padded_pixels():
    widths = np.r_[np.full(200, 60), np.full(40, 1024), np.full(10, 500)]
    sampler = WidthBucketSampler(widths, 64, seed=0, max_pixels=64 * 32 * 256, height=32)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(widths)))
    assert max(len(b) * widths[b].max() * 32 for b in batches) <= 64 * 32 * 256
    assert max(len(b) for b in batches) == 64 and max(len(b) for b in batches if widths[b].max() == 1024) == 16


DOTS = dict(p_dot_matrix=1.0, p_blur=0.0, p_motion=0.0, p_low_res=0.0, p_tilt=0.0, p_perspective=0.0,
            p_curve=0.0, p_clutter=0.0, p_side_clutter=0.0, p_texture=0.0, p_inverted=0.0, p_colored=0.0,
            p_low_contrast=0.0, p_faded=0.0, p_shadow=0.0, p_glare=0.0, p_jpeg=0.0, text_px=(28, 40))


@pytest.mark.slow
def test_tiny_finetune_learns_a_shifted_domain(tmp_path, base_model_dir):
    """Dot-matrix print (never rendered for the base model): a short CPU fine-tune lifts exact match."""
    from synth.pools import render_pool

    torch.set_num_threads(2)
    train = render_pool(300, seed=78, workers=1, chunk=300, cfg_dict=DOTS)
    val = render_pool(60, seed=80, workers=1, chunk=60, cfg_dict=DOTS)
    test = render_pool(150, seed=77, workers=1, chunk=150, cfg_dict=DOTS)
    m, tok, _ = load_model(base_model_dir)
    before = evaluate_pool(m, tok, test)["exact_match"]
    cfg = _cfg(train={"steps": 40, "batch_size": 16, "lr": 2e-3, "warmup": 5, "eval_every": 20, "ckpt_every": 20})
    res = finetune(base_model_dir, train, val, cfg, str(tmp_path / "ft"), **QUIET)     # no blend
    m2, tok2, _ = load_model(res.model_dir)
    after = evaluate_pool(m2, tok2, test)["exact_match"]
    assert before < 0.4 and after >= before + 0.1, (before, after)
    assert res.model_dir.endswith("best") and res.alpha == 1.0


@pytest.mark.slow
def test_blending_never_returns_a_model_that_reads_the_anchor_worse(tmp_path, base_model_dir, tiny_pool):
    """A fine-tune that wrecked the old domain: the chosen blend is (near) the champion, never the wreck."""
    from recognizer.finetune import blend, choose_blend, serving_exact_match
    from recognizer.predict import Predictor

    champion, tok, _ = load_model(base_model_dir)
    wreck, _, _ = load_model(base_model_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in wreck.parameters():
            p.add_(torch.randn_like(p) * p.abs().mean().clamp(min=1e-3) * 2)
    a, b = champion.state_dict(), wreck.state_dict()
    assert all(torch.equal(blend(a, b, 0.0)[k], a[k]) and torch.equal(blend(a, b, 1.0)[k], b[k]) for k in a)
    anchor, val = _head(tiny_pool, 96), _head(tiny_pool, 48)
    alpha, weights, rows = choose_blend(champion, wreck, tok, val, anchor, (1.0, 0.5), 0.0, **QUIET)
    # the blend check reads with the CRNN's own rules (models in memory have no photo reader): compare alike
    anchor_imgs = [anchor.image(i) for i in range(len(anchor))]
    base = serving_exact_match(Predictor(base_model_dir, photo=None), (anchor_imgs, anchor.labels))
    assert [r["alpha"] for r in rows] == [0.0, 0.5, 1.0] and rows[0]["anchor_exact_match"] == base
    wreck_anchor = rows[-1]["anchor_exact_match"]      # None: not read, a blend with better validation qualified
    assert alpha < 1.0 and (wreck_anchor is None or wreck_anchor < base)
    chosen = CRNN(champion.cfg).eval()
    chosen.load_state_dict(weights)
    chosen_dir = save_model(chosen, tok, str(tmp_path / "chosen"))
    assert serving_exact_match(Predictor(chosen_dir, photo=None), (anchor_imgs, anchor.labels)) >= base


@pytest.mark.slow
def test_cnn_only_finetune_keeps_the_sequence_model(tmp_path, tiny_pool):
    init = _tiny_artifact(str(tmp_path / "init"))
    res = finetune(init, tiny_pool, _head(tiny_pool), _cfg(trainable="cnn", patience=99, min_delta=-1.0,
                                                           train=dict(steps=4, eval_every=4)),
                   str(tmp_path / "ft"), **QUIET)
    before, after = load_model(init)[0].state_dict(), load_model(res.model_dir)[0].state_dict()
    moved = {k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("cnn.") for k in moved), sorted(moved)
    with pytest.raises(ValueError, match="trainable"):
        finetune(init, tiny_pool, _head(tiny_pool), _cfg(trainable="lstm"), str(tmp_path / "bad"), **QUIET)


def test_added_adapters_keep_old_readings_identical(base_model_dir, tiny_pool):
    model, tok, _ = load_model(base_model_dir)
    grays = [tiny_pool.image(i) for i in range(48)]
    before = read_batch(model, tok, grays)
    adapted = add_adapters(model, 8).eval()
    assert adapted.cfg.adapter == 8 and model.cfg.adapter == 0
    after = read_batch(adapted, tok, grays)
    assert [t for t, _ in after] == [t for t, _ in before]
    assert np.allclose([c for _, c in after], [c for _, c in before], atol=1e-5)
    assert add_adapters(adapted, 16) is adapted                      # already has them: unchanged


@pytest.mark.slow
def test_adapter_finetune_trains_only_the_adapters_and_continues_them(tmp_path, tiny_pool):
    init = _tiny_artifact(str(tmp_path / "init"))
    cfg = _cfg(trainable="adapter", adapter=4, patience=99, min_delta=-1.0, train=dict(steps=4, eval_every=4))
    res = finetune(init, tiny_pool, _head(tiny_pool), cfg, str(tmp_path / "ft"), **QUIET)
    tuned = load_model(res.model_dir)[0]
    assert tuned.cfg.adapter == 4 and read_config(res.model_dir)["model"]["adapter"] == 4
    before, after = load_model(init)[0].state_dict(), tuned.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # the champion's own weights: untouched
    assert any(after[k].abs().sum() > 0 for k in after if k.startswith("adapters.") and ".up." in k)
    again = finetune(res.model_dir, tiny_pool, _head(tiny_pool), cfg, str(tmp_path / "ft2"), **QUIET)
    second = load_model(again.model_dir)[0].state_dict()            # the next night trains the same adapters
    assert set(second) == set(after) and any(not torch.equal(after[k], second[k]) for k in after
                                             if k.startswith("adapters."))


def _weights(path: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(f"{path}/model.safetensors")


def test_finetune_is_reproducible_whatever_the_process_thread_count(tmp_path, base_model_dir, tiny_pool):
    """Same inputs and seed -> the same trained weights, history and blend, even when something else in
    the process (a test, pretrain, OMP_NUM_THREADS) changed torch's thread count in between: CPU kernels
    split their sums by thread, so an unpinned count moves every gradient's last bits (issue 19)."""
    from recognizer.train import DEFAULT_THREADS

    cfg = _cfg(train={"steps": 6, "eval_every": 3, "ckpt_every": 3, "lr": 2e-3})
    train, val, anchor = _head(tiny_pool, 96), _relabel(_head(tiny_pool, 24), tiny_pool.labels[:24]), _head(tiny_pool, 22)
    other = 1 if DEFAULT_THREADS > 1 else 2           # a count the fine-tune would otherwise train with
    runs = []
    for k, threads in enumerate((DEFAULT_THREADS, other)):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            res = finetune(base_model_dir, train, val, cfg, str(tmp_path / f"ft{k}"), anchor=anchor, **QUIET)
            assert torch.get_num_threads() == threads          # the process's own setting is restored after
        finally:
            torch.set_num_threads(before)
        runs.append((res, _weights(str(tmp_path / f"ft{k}" / "ckpt"))))
    (a, wa), (b, wb) = runs
    from recognizer.finetune import _warm_start

    warm = _warm_start(base_model_dir, "", cfg)[0].state_dict()
    assert any(not torch.equal(wa[k], warm[k]) for k in warm)          # it trained: the last step's weights moved
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [h["ctc"] for h in a.history] == [h["ctc"] for h in b.history]
    assert (a.best_step, a.alpha, a.blends) == (b.best_step, b.alpha, b.blends)
    ra, rb = _weights(a.model_dir), _weights(b.model_dir)
    assert all(torch.equal(ra[k], rb[k]) for k in ra)
