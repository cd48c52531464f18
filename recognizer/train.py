"""Training loop: CTC + orientation loss, cosine LR, bf16 on CUDA, checkpoints, resume."""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from recognizer.checkpoint import load_train_state, save_model, save_train_state
from recognizer.data import PoolDataset, WidthBucketSampler, collate
from recognizer.decode import collapse_mask
from recognizer.model import CRNN
from recognizer.pool import Pool
from recognizer.tokenizer import CTCTokenizer


@dataclass
class TrainConfig:
    steps: int = field(default=20000, metadata={"help": "optimizer steps at most (the LR schedule's length)"})
    stop_at: int | None = field(default=None, metadata={"help": "stop at this step, keeping the schedule of steps"})
    seconds: float | None = field(default=None, metadata={
        "help": "training wall-time budget in seconds, evaluations included (0/None: none); the cosine ends at "
                "whichever of steps and seconds comes first, and training stops there (a resumed run continues "
                "its clock)"})
    batch_size: int = field(default=64, metadata={"help": "crops per step"})
    lr: float = field(default=1.5e-3, metadata={"help": "peak learning rate"})
    min_lr_frac: float = 0.03
    warmup: int = field(default=300, metadata={"help": "linear warm-up steps"})
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    orient_frac: float = 0.25      # share of each batch also fed upside down (orientation head)
    orient_weight: float = 0.2
    photo: float = 0.0             # share of crops given phone-photo effects (recognizer.photo)
    seed: int = field(default=0, metadata={"help": "seed for init, shuffling and augmentation"})
    eval_every: int = field(default=1000, metadata={"help": "steps between validation checks"})
    ckpt_every: int = 500
    workers: int = 1
    device: str = field(default="auto", metadata={"help": "auto (CUDA with bf16 autocast when present), cpu or cuda"})
    threads: int = 0               # CPU intra-op threads while training (0: DEFAULT_THREADS); see torch_threads


# torch's intra-op thread count when this module is first imported: the machine's default (physical
# cores, or OMP_NUM_THREADS), taken before anything in the process (a test, pretrain) changed it.
DEFAULT_THREADS = torch.get_num_threads()


@contextmanager
def torch_threads(n: int = 0):
    """Run the block with ``n`` torch intra-op threads (0: ``DEFAULT_THREADS``), restoring the count after.

    CPU kernels split their sums by thread, so the thread count changes the last bits of every
    gradient, and a short fine-tune's trajectory with them (its best step, its blend, the gate's
    decision). A fixed count makes training reproducible whatever the process did before.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n or DEFAULT_THREADS)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_at(step: int, cfg: TrainConfig, elapsed: float = 0.0) -> float:
    """Linear warm-up over ``cfg.warmup`` steps, then a cosine to ``min_lr_frac``. Its progress is the
    share of the remaining steps done or, when the run is time-boxed (``cfg.seconds``), of the time
    budget spent (``elapsed`` seconds), whichever is further: the schedule ends where the run will."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    if cfg.seconds:
        p = max(p, min(1.0, elapsed / cfg.seconds))
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


@dataclass
class Distill:
    """Keep a teacher's readings where they are right (fine-tuning without forgetting).

    On every crop of a batch that the ``teacher`` (the champion) reads exactly right, the
    student is also pulled towards the teacher's per-frame distribution (KL divergence,
    weight ``weight``); crops the teacher misreads are learnt from their labels alone.
    """

    teacher: CRNN
    weight: float = 1.0


def teacher_right(logp: torch.Tensor, lens: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor,
                  blank: int = 0) -> torch.Tensor:
    """Bool per crop: the greedy reading of ``logp`` (T x B x K) equals the crop's target ids."""
    best = logp.argmax(-1).cpu().numpy()
    want = np.split(targets.cpu().numpy(), np.cumsum(target_lengths.cpu().numpy())[:-1])
    out = []
    for b in range(best.shape[1]):
        ids = best[: int(lens[b]), b]
        read = ids[collapse_mask(ids, blank)]
        out.append(read.shape == want[b].shape and bool((read == want[b]).all()))
    return torch.tensor(out, dtype=torch.bool)


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, lens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean per-frame KL(teacher || student) over the valid frames of the masked crops."""
    t = student.shape[0]
    valid = (torch.arange(t, device=student.device)[:, None] < lens.to(student.device)[None, :]) \
        & mask.to(student.device)[None, :]
    kl = (teacher.exp() * (teacher - student)).sum(-1)
    return (kl * valid).sum() / valid.sum().clamp(min=1)


def turned_180(x: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Crops of a right-padded batch turned 180 degrees each within its own width, padding still on the right
    (as a crop turned before batching is read). Turning the padded tensor whole put the padding on the left of
    every turned crop: a cue the upside-down head could learn and never meets when reading."""
    out = torch.flip(x, dims=(2, 3))
    for i, w in enumerate(widths.tolist()):
        pad = x.shape[3] - int(w)
        if pad > 0:
            out[i] = torch.cat([out[i, :, :, pad:], out[i, :, :, :pad]], dim=2)
    return out


def loss_on_batch(model: CRNN, batch: dict[str, torch.Tensor], cfg: TrainConfig,
                  device: torch.device, distill: Distill | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """CTC loss on upright crops + BCE for the upside-down head on a flipped subset (+ distillation)."""
    x = batch["images"].to(device, non_blocking=True)
    b = x.shape[0]
    k = int(round(b * cfg.orient_frac))
    flipped = turned_180(x[:k], batch["widths"][:k])
    inp = torch.cat([x, flipped]) if k else x
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logp, orient = model(inp)                              # T x (B+k) x K, (B+k)
    logp = logp.float()[:, :b]
    t = logp.shape[0]
    in_lens = torch.clamp((batch["widths"] + 3) // 4, max=t)
    ctc = F.ctc_loss(logp, batch["targets"].to(device), in_lens, batch["target_lengths"],
                     blank=0, reduction="mean", zero_infinity=True)
    target = torch.cat([torch.zeros(b), torch.ones(k)]).to(device)
    ori = F.binary_cross_entropy_with_logits(orient.float(), target)
    loss = ctc + cfg.orient_weight * ori
    parts = {"ctc": float(ctc.detach()), "orient": float(ori.detach())}
    if distill is not None and distill.weight > 0:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            teacher = distill.teacher(x)[0].float()
        mask = teacher_right(teacher, in_lens, batch["targets"], batch["target_lengths"])
        kd = distill_loss(logp, teacher, in_lens, mask)
        loss = loss + distill.weight * kd
        parts.update(kd=float(kd.detach()), kd_share=float(mask.float().mean()))
    return loss, parts


def train_step(model: CRNN, opt: torch.optim.Optimizer, batch: dict[str, torch.Tensor], cfg: TrainConfig,
               device: torch.device, lr: float, distill: Distill | None = None) -> dict[str, float]:
    """One optimizer step at learning rate ``lr``; returns the loss parts."""
    for g in opt.param_groups:
        g["lr"] = lr
    loss, parts = loss_on_batch(model, batch, cfg, device, distill)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return parts


def fit(model: CRNN, tok: CTCTokenizer, train_pool: Pool, cfg: TrainConfig, out_dir: str,
        evaluate: Callable[[CRNN], dict] | None = None, meta: dict | None = None,
        log: Callable[[str], None] = print, on_eval: Callable[[CRNN, list[dict]], bool] | None = None,
        max_batch_pixels: int | None = None, train_mode: Callable[[CRNN], None] | None = None,
        distill: Distill | None = None) -> dict:
    """Train for ``cfg.steps`` optimizer steps; resumes from ``out_dir`` when a state is there.

    ``on_eval(model, history)`` runs after each evaluation; returning True stops training early
    (a checkpoint is written first). ``max_batch_pixels`` caps padded pixels per batch
    (``WidthBucketSampler``), so batches of very wide crops stay within memory. ``train_mode``
    replaces ``model.train()`` (e.g. to keep BatchNorm statistics frozen while fine-tuning).
    ``distill`` adds the teacher term of ``Distill`` (the teacher stays in eval mode).
    """
    train_mode = train_mode or (lambda m: m.train())
    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    train_mode(model.to(device))
    if distill is not None:
        distill.teacher.to(device).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, history, clock0 = 0, [], 0.0
    state = load_train_state(out_dir)
    if state is not None:
        from recognizer.checkpoint import load_model

        model.load_state_dict(load_model(out_dir)[0].state_dict())
        train_mode(model.to(device))
        opt.load_state_dict(state["optimizer"])
        step, history = int(state["step"]), list(state["extra"].get("history", []))
        clock0 = float(state["extra"].get("train_s", 0.0))
        log(f"resumed from step {step}")
    ds = PoolDataset(train_pool, tok, train=True, seed=cfg.seed + step, photo=cfg.photo)
    t0, seen, ema = time.time(), 0, None
    sampler = WidthBucketSampler(train_pool.widths, cfg.batch_size, seed=cfg.seed + step,
                                 max_pixels=max_batch_pixels, height=train_pool.height)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.workers,
                        persistent_workers=cfg.workers > 0, pin_memory=device.type == "cuda")
    last = min(cfg.steps, cfg.stop_at or cfg.steps)
    stopped, timed_out = False, False
    clock = lambda: clock0 + time.time() - t0  # noqa: E731  training wall time, across resumes
    while step < last and not stopped:
        for batch in loader:  # each pass reshuffles (the sampler's generator advances)
            parts = train_step(model, opt, batch, cfg, device, lr_at(step, cfg, clock()), distill)
            step += 1
            if cfg.seconds and clock() >= cfg.seconds and step < last:
                last, timed_out = step, True  # the time box is over: evaluate, save and stop here
            seen += batch["images"].shape[0]
            ema = parts["ctc"] if ema is None else 0.98 * ema + 0.02 * parts["ctc"]
            if step % 100 == 0:
                rate = seen / (time.time() - t0)
                kd = f" kd {parts['kd']:.3f} on {parts['kd_share']:.0%}" if "kd" in parts else ""
                lr = lr_at(step, cfg, clock())
                log(f"step {step} ctc {ema:.3f} orient {parts['orient']:.3f}{kd} lr {lr:.2e} {rate:.0f} img/s")
            if evaluate is not None and (step % cfg.eval_every == 0 or step == last):
                model.eval()
                res = evaluate(model)
                train_mode(model)
                history.append({"step": step, "ctc": ema, "train_s": round(clock(), 1), **res})
                log(f"eval step {step}: {res}")
                stopped = bool(on_eval and on_eval(model, history))
            if step % cfg.ckpt_every == 0 or step == last or stopped:
                info = {**(meta or {}), "train": asdict(cfg), "step": step, "history": history,
                        "images_seen": seen, "wall_s": time.time() - t0}
                save_model(model, tok, out_dir, info)
                save_train_state(out_dir, step, opt, {"history": history, "train_s": clock()})
            if step >= last or stopped:
                break
    model.eval()
    return {"step": step, "history": history, "img_per_s": seen / max(1e-9, time.time() - t0),
            "stopped_early": stopped, "stopped_by": "on_eval" if stopped else "seconds" if timed_out else "steps",
            "train_s": clock()}
