"""Fine-tune from a champion: warm start, charset extension, early stopping, resume.

Layout of ``out_dir``: ``ckpt/`` (latest weights + optimizer state, what a run that
died resumes from) and ``best/`` (the artifact with the best validation exact match
so far, step 0 = the warm start itself). The result is always ``best/``.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from recognizer.checkpoint import load_model, read_config, save_model
from recognizer.evaluate import evaluate_pool
from recognizer.model import CRNN, ModelConfig
from recognizer.synthdata import Pool
from recognizer.tokenizer import CTCTokenizer
from recognizer.train import TrainConfig, fit, pick_device, seed_everything


@dataclass
class FinetuneConfig:
    """Fine-tuning recipe; ``train.steps`` is the LR schedule, early stopping may end it sooner."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=600, batch_size=64, lr=5e-4, warmup=30, eval_every=100, ckpt_every=100, workers=0))
    patience: int = 3              # evaluations without improvement before stopping
    min_delta: float = 0.0         # improvement in validation exact match that counts
    max_batch_pixels: int = 64 * 32 * 512   # padded pixels per batch (wide crops -> smaller batches)
    new_row_bias: float = -8.0     # bias of appended output rows (keeps old readings unchanged)
    freeze_bn: bool = True         # keep the champion's BatchNorm statistics (less forgetting)


@dataclass
class FinetuneResult:
    model_dir: str                 # the best artifact (``out_dir/best``)
    best_step: int
    best_exact_match: float
    steps: int
    stopped_early: bool
    added_chars: str
    history: list[dict]
    wall_s: float
    img_per_s: float


def extend_charset(model: CRNN, tok: CTCTokenizer, new_chars: str,
                   new_row_bias: float = -8.0) -> tuple[CRNN, CTCTokenizer]:
    """Append ``new_chars`` (those not yet in ``tok``) to the charset and output layer.

    Old output rows are copied unchanged; new rows get zero weights and a low bias, so
    greedy readings made of old characters stay the same until training moves them.
    """
    new_tok = tok.extend(new_chars)
    if new_tok.charset == tok.charset:
        return model, tok
    cfg = ModelConfig.from_dict({**model.cfg.to_dict(), "num_classes": new_tok.num_classes})
    new = CRNN(cfg)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    new.load_state_dict(state, strict=False)
    k = tok.num_classes
    with torch.no_grad():
        new.fc.weight.zero_()
        new.fc.weight[:k] = model.fc.weight
        new.fc.bias.fill_(new_row_bias)
        new.fc.bias[:k] = model.fc.bias
    return new.to(next(model.parameters()).device).train(model.training), new_tok


def bn_frozen_train(model: CRNN) -> None:
    """Training mode, except BatchNorm layers keep using (and not updating) their running statistics."""
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def chars_missing(tok: CTCTokenizer, labels: list[str]) -> str:
    """Characters used by ``labels`` that ``tok`` lacks, in first-seen order."""
    return "".join(dict.fromkeys(c for lab in labels for c in lab if tok.unknown_chars(c)))


def _best_so_far(best_dir: str) -> tuple[float, int]:
    if not os.path.isfile(os.path.join(best_dir, "config.json")):
        return -1.0, -1
    meta = read_config(best_dir)["meta"]
    return float(meta.get("val_exact_match", -1.0)), int(meta.get("step", -1))


class _EarlyStop:
    """Keeps ``best/`` up to date and says when ``patience`` evaluations brought nothing."""

    def __init__(self, tok: CTCTokenizer, best_dir: str, cfg: FinetuneConfig, meta: dict,
                 on_eval: Callable[[dict], None] | None) -> None:
        self.tok, self.best_dir, self.cfg, self.meta, self.on_eval = tok, best_dir, cfg, meta, on_eval
        self.best, self.best_step = _best_so_far(best_dir)

    def __call__(self, model: CRNN, history: list[dict]) -> bool:
        rec = history[-1]
        if self.on_eval:
            self.on_eval(rec)
        if rec["exact_match"] > self.best + self.cfg.min_delta or self.best_step < 0:
            self.best, self.best_step = rec["exact_match"], rec["step"]
            save_model(model, self.tok, self.best_dir,
                       {**self.meta, "step": rec["step"], "val_exact_match": rec["exact_match"],
                        "history": history})
        since = [h for h in history if h["step"] > self.best_step]
        return len(since) >= self.cfg.patience


def finetune(init_dir: str, train_pool: Pool, val_pool: Pool, cfg: FinetuneConfig, out_dir: str,
             meta: dict | None = None, on_eval: Callable[[dict], None] | None = None,
             log: Callable[[str], None] = print) -> FinetuneResult:
    """Warm start from the artifact ``init_dir``, train on ``train_pool``, keep the best on ``val_pool``.

    Characters in the training labels that the champion lacks are appended to its charset.
    A second call with the same ``out_dir`` resumes from the last checkpoint.
    """
    t0 = time.time()
    seed_everything(cfg.train.seed)
    model, tok, _ = load_model(init_dir)
    added = chars_missing(tok, train_pool.labels + val_pool.labels)
    model, tok = extend_charset(model, tok, added, cfg.new_row_bias)
    meta = {**(meta or {}), "init": init_dir, "added_chars": added, "finetune": asdict(cfg)}
    best_dir, ckpt_dir = os.path.join(out_dir, "best"), os.path.join(out_dir, "ckpt")
    model.to(pick_device(cfg.train.device))
    val = lambda m: {k: v for k, v in evaluate_pool(m, tok, val_pool).items() if k != "slices"}  # noqa: E731
    stop = _EarlyStop(tok, best_dir, cfg, meta, on_eval)
    if stop.best_step < 0:                        # step 0: the warm start is the first candidate
        model.eval()
        stop(model, [{"step": 0, "ctc": None, **val(model)}])
    res = fit(model, tok, train_pool, cfg.train, ckpt_dir, evaluate=val, meta=meta, log=log,
              on_eval=stop, max_batch_pixels=cfg.max_batch_pixels,
              train_mode=bn_frozen_train if cfg.freeze_bn else None)
    log(f"fine-tune: best step {stop.best_step} val exact match {stop.best:.4f}"
        f"{' (stopped early)' if res['stopped_early'] else ''}")
    return FinetuneResult(best_dir, stop.best_step, stop.best, res["step"], res["stopped_early"], added,
                          res["history"], time.time() - t0, res["img_per_s"])
