"""Fine-tune from a champion: warm start, charset extension, early stopping, resume.

What learns (``FinetuneConfig.trainable``): by default only adapters (``recognizer.model``),
added on the first fine-tune with zero up-projections and kept training on later ones; the
champion's own weights stay as they are, so the serving predictor can still read on the base
path and use the adapted path only for crops the base path is unsure of (no forgetting of
what it reads confidently). ``"cnn"``/``"all"`` fine-tune the champion's weights instead.

Layout of ``out_dir``: ``ckpt/`` (latest weights + optimizer state, what a run that
died resumes from), ``best/`` (the artifact with the best validation exact match
so far, step 0 = the warm start itself) and, when an anchor set is given, ``final/``.

Forgetting: fine-tuning on a new domain moves weights the old domains need. With an
``anchor`` set (fresh renders of what the champion was trained on, never the gate's
regression suite, read by the serving predictor) the result is a point on the line between the champion's weights
and ``best/`` (weight-space ensembling, as in WiSE-FT): for each ``alpha`` in
``FinetuneConfig.interpolate`` the blend ``(1 - alpha) * champion + alpha * best`` is
scored on the validation and anchor pools, and the blend with the best validation exact
match among those whose anchor exact match stays within ``anchor_tolerance`` (the caller's
allowance for regression: the learning cycle passes its gate's ``regression_tolerance``) of the
champion's is kept (alpha 0, the champion itself, always qualifies). The result is then
``final/``.
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
from recognizer.pool import Pool
from recognizer.tokenizer import CTCTokenizer
from recognizer.train import Distill, TrainConfig, fit, pick_device, seed_everything, torch_threads


@dataclass
class FinetuneConfig:
    """Fine-tuning recipe: train until validation stops improving, within a step cap and a time budget.

    ``train.steps`` caps the run and is the LR schedule's length; ``train.seconds`` is the wall-time
    budget of training (evaluations included): the cosine ends at whichever comes first
    (``recognizer.train.lr_at``). Validation (plain forward of the validation pool, ~1-2 s per check
    for ~110 crops on 2 cores) runs every ``train.eval_every`` steps; ``patience`` checks without a
    gain end the run, counted from ``patience_after`` of the cap on; ``best/`` keeps the best check.
    How each number was chosen, and on which domain: ``loop/README.md`` ("How long a fine-tune trains").
    """

    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=400, batch_size=64, lr=2e-3, warmup=25, eval_every=50, ckpt_every=50, workers=0, seconds=180.0))
    patience: int = field(default=2, metadata={"help": "validation checks without improvement before stopping"})
    patience_after: float = field(default=0.5, metadata={
        "help": "share of the step cap before which checks without improvement do not count towards patience "
                "(the LR is near its peak there, and validation dips)"})
    min_delta: float = 0.0         # improvement in validation exact match that counts
    max_batch_pixels: int = 64 * 32 * 512   # padded pixels per batch (wide crops -> smaller batches)
    new_row_bias: float = -8.0     # bias of appended output rows (keeps old readings unchanged)
    freeze_bn: bool = True         # keep the champion's BatchNorm statistics (less forgetting)
    distill: float = 0.0           # weight of the champion-distillation term (recognizer.train.Distill); 0: off.
                                   # Off by default: with adapters the base path already keeps the champion's
                                   # readings, and distillation held the adapters back (loop/README.md)
    interpolate: tuple[float, ...] = (1.0, 0.5)   # blends tried with an anchor pool (and 0)
    trainable: str = "adapter"     # "adapter": only adapters (added when the champion has none) and new charset
                                   # rows learn; "cnn": the convolutional front end; "all"
    adapter: int = 16              # bottleneck channels of adapters a fine-tune adds (trainable="adapter")


@dataclass
class FinetuneResult:
    model_dir: str                 # the best artifact (``out_dir/best``)
    best_step: int
    best_exact_match: float        # validation exact match of the result (serving predictor when blended)
    steps: int
    stopped_early: bool
    added_chars: str
    history: list[dict]
    wall_s: float
    img_per_s: float
    alpha: float = 1.0             # weight of the fine-tuned model in the result (1.0: ``best/`` as is)
    blends: list[dict] = field(default_factory=list)   # alpha -> val / anchor exact match
    stopped_by: str = "steps"      # what ended training: "patience" (validation stopped improving),
                                   # "seconds" (the time budget) or "steps" (the cap)
    train_s: float = 0.0           # wall time of training with its validation checks (of ``wall_s``)


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


def add_adapters(model: CRNN, bottleneck: int, seed: int = 0) -> CRNN:
    """A copy of ``model`` with fresh adapters (``recognizer.model.Adapter``); it reads exactly as
    ``model`` does until they are trained. Deterministic for ``seed`` (the blend end point must match)."""
    if model.cfg.adapter > 0:
        return model
    new_cfg = ModelConfig.from_dict({**model.cfg.to_dict(), "adapter": bottleneck})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = CRNN(new_cfg)
    missing, unexpected = new.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("adapters.") for k in missing), (missing, unexpected)
    return new.to(next(model.parameters()).device).train(model.training)


TRAINABLE = {"all": None, "cnn": ("cnn.",), "adapter": ("adapters.",)}


def _warm_start(init_dir: str, added: str, cfg: FinetuneConfig) -> tuple[CRNN, CTCTokenizer]:
    """The champion at ``init_dir`` as the fine-tune starts from it: charset extended by ``added``,
    adapters added when they are what trains. Student, teacher and blend end point all start here."""
    model, tok, _ = load_model(init_dir)
    model, tok = extend_charset(model, tok, added, cfg.new_row_bias)
    if cfg.trainable == "adapter":
        model = add_adapters(model, cfg.adapter, cfg.train.seed)
    return model, tok


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
    """Keeps ``best/`` up to date and says when ``patience`` evaluations brought nothing; checks in the
    first ``patience_after`` of the step cap do not count towards it (a dip there is not a plateau)."""

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
        start = max(self.best_step, self.cfg.patience_after * self.cfg.train.steps)
        return len([h for h in history if h["step"] > start]) >= self.cfg.patience


def blend(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * a + alpha * b`` for float tensors; integer buffers (BN step counters) from ``b``."""
    return {k: torch.lerp(a[k].float(), v.float(), alpha).to(v.dtype) if v.is_floating_point() else v
            for k, v in b.items()}


def _crops(x) -> tuple[list, list[str]]:
    """A ``Pool`` or anything with ``images`` and ``labels`` -> (grey crops, labels)."""
    if isinstance(x, Pool):
        return [x.image(i) for i in range(len(x))], list(x.labels)
    return list(x.images), list(x.labels)


def serving_exact_match(predictor, crops: tuple[list, list[str]]) -> float:
    """Exact match of a serving ``Predictor`` (turns, 180-degree check, deskew) on (crops, labels)."""
    from recognizer.metrics import exact_match

    images, labels = crops
    if not labels:
        return 0.0
    preds = predictor.predict_arrays(images)
    return sum(exact_match(p.text, lab) for p, lab in zip(preds, labels)) / len(labels)


def choose_blend(champion: CRNN, tuned: CRNN, tok: CTCTokenizer, val_pool, anchor, alphas: tuple[float, ...],
                 tolerance: float, log: Callable[[str], None] = print
                 ) -> tuple[float, dict[str, torch.Tensor], list[dict]]:
    """Score the blends on val + anchor with the serving predictor; returns (alpha, weights, table).

    The serving path matters: a fine-tune that keeps upright readings can still lose crops
    the predictor rescues by turning or deskewing (its confidences move). Each blend is read
    in memory (no artifact written). Every blend reads the (small) validation pool; the
    anchor (~1,500 crops, most of the cost) is read for the champion (alpha 0: the floor) and
    then for the blends in order of validation exact match until one qualifies: the pick is
    the same as reading them all, and a blend never read shows ``anchor_exact_match`` None.
    """
    from recognizer.predict import Predictor

    a, b = champion.state_dict(), tuned.state_dict()
    val, anc = _crops(val_pool), _crops(anchor)
    rows, readers = [], {}
    for alpha in sorted({0.0, *alphas}):
        probe = CRNN(tuned.cfg).eval()
        probe.load_state_dict(blend(a, b, alpha))
        readers[alpha] = Predictor(None, loaded=(probe, tok, {}))
        rows.append({"alpha": alpha, "val_exact_match": serving_exact_match(readers[alpha], val),
                     "anchor_exact_match": None})
    rows[0]["anchor_exact_match"] = serving_exact_match(readers[0.0], anc)
    floor = rows[0]["anchor_exact_match"] - tolerance
    for r in sorted(rows, key=lambda r: (-r["val_exact_match"], r["alpha"])):
        if r["anchor_exact_match"] is None:
            r["anchor_exact_match"] = serving_exact_match(readers[r["alpha"]], anc)
        if r["anchor_exact_match"] >= floor - 1e-9:
            pick = r
            break
    log("fine-tune blends (alpha: val / anchor): " + ", ".join(
        f"{r['alpha']:.2f}: {r['val_exact_match']:.3f}/{_em(r['anchor_exact_match'])}" for r in rows)
        + f" -> alpha {pick['alpha']:.2f}")
    return pick["alpha"], blend(a, b, pick["alpha"]), rows


def _em(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def finetune(init_dir: str, train_pool: Pool, val_pool: Pool, cfg: FinetuneConfig, out_dir: str,
             meta: dict | None = None, on_eval: Callable[[dict], None] | None = None,
             log: Callable[[str], None] = print, anchor=None, anchor_tolerance: float = 0.0) -> FinetuneResult:
    """Warm start from the artifact ``init_dir``, train on ``train_pool``, keep the best on ``val_pool``.

    Characters in the training labels that the champion lacks are appended to its charset.
    A second call with the same ``out_dir`` resumes from the last checkpoint. With ``anchor``
    (a ``Pool``, or full-size crops with ``images`` and ``labels``) the result is the chosen
    blend of champion and best, losing at most ``anchor_tolerance`` exact match on the anchor
    (module docstring). Deterministic for the same inputs and ``cfg`` on one machine: seeded, and
    run with ``cfg.train.threads`` torch threads.
    """
    with torch_threads(cfg.train.threads):
        return _finetune(init_dir, train_pool, val_pool, cfg, out_dir, meta, on_eval, log, anchor, anchor_tolerance)


def _finetune(init_dir: str, train_pool: Pool, val_pool: Pool, cfg: FinetuneConfig, out_dir: str,
              meta: dict | None, on_eval: Callable[[dict], None] | None, log: Callable[[str], None],
              anchor, anchor_tolerance: float) -> FinetuneResult:
    t0 = time.time()
    seed_everything(cfg.train.seed)
    if cfg.trainable not in TRAINABLE:
        raise ValueError(f"FinetuneConfig.trainable: one of {sorted(TRAINABLE)}, not {cfg.trainable!r}")
    added = chars_missing(CTCTokenizer(read_config(init_dir)["charset"]), train_pool.labels + val_pool.labels)
    model, tok = _warm_start(init_dir, added, cfg)
    meta = {**(meta or {}), "init": init_dir, "added_chars": added, "finetune": asdict(cfg),
            "anchor_tolerance": anchor_tolerance}
    best_dir, ckpt_dir = os.path.join(out_dir, "best"), os.path.join(out_dir, "ckpt")
    model.to(pick_device(cfg.train.device))
    val = lambda m: {k: v for k, v in evaluate_pool(m, tok, val_pool).items() if k != "slices"}  # noqa: E731
    stop = _EarlyStop(tok, best_dir, cfg, meta, on_eval)
    if stop.best_step < 0:                        # step 0: the warm start is the first candidate
        model.eval()
        stop(model, [{"step": 0, "ctc": None, **val(model)}])
    blending = anchor is not None and len(anchor) > 0 and bool(cfg.interpolate)
    champion = None                    # the warm start, kept unchanged: teacher and blend end point
    if cfg.distill > 0 or blending:
        champion = _warm_start(init_dir, added, cfg)[0]
    teacher = Distill(champion, cfg.distill) if cfg.distill > 0 else None
    if TRAINABLE[cfg.trainable]:     # the rest (e.g. the sequence model: what follows what in a code) stays the champion's
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(TRAINABLE[cfg.trainable]) or (bool(added) and name.startswith("fc.")))
    res = fit(model, tok, train_pool, cfg.train, ckpt_dir, evaluate=val, meta=meta, log=log,
              on_eval=stop, max_batch_pixels=cfg.max_batch_pixels,
              train_mode=bn_frozen_train if cfg.freeze_bn else None, distill=teacher)
    why = {"on_eval": f"no gain in {cfg.patience} checks", "seconds": f"the time budget ({cfg.train.seconds} s)",
           "steps": "the step cap"}[res["stopped_by"]]
    log(f"fine-tune: best step {stop.best_step} val exact match {stop.best:.4f}; {res['step']} steps in "
        f"{res['train_s']:.0f} s, stopped by {why}")
    result_dir, alpha, blends, val_em = best_dir, 1.0, [], stop.best
    if blending:
        tuned, _, best_cfg = load_model(best_dir)
        alpha, weights, blends = choose_blend(champion.cpu(), tuned, tok, val_pool, anchor, cfg.interpolate,
                                              anchor_tolerance, log)
        tuned.load_state_dict(weights)
        val_em = next(r["val_exact_match"] for r in blends if r["alpha"] == alpha)
        result_dir = save_model(tuned, tok, os.path.join(out_dir, "final"),
                                {**best_cfg["meta"], "blend_alpha": alpha, "blends": blends,
                                 "val_exact_match": val_em})
    return FinetuneResult(result_dir, stop.best_step, val_em, res["step"], res["stopped_early"], added,
                          res["history"], time.time() - t0, res["img_per_s"], alpha, blends,
                          {"on_eval": "patience"}.get(res["stopped_by"], res["stopped_by"]), res["train_s"])
