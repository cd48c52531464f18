"""Time-boxed training on a stream of freshly rendered crops (the GPU pretraining recipe).

Each DataLoader worker renders its own crops into a replay buffer, replaces a
share of it before every batch, and yields augmented, width-bucketed batches,
so rendering, augmentation and the GPU step all overlap. The learning rate
follows a cosine over the wall-clock budget, so a run of ``seconds`` always
finishes its schedule whatever the machine's speed.

    python -m recognizer.stream_train --out runs/gpu --seconds 480 --init recognizer/base_model

On a machine with several GPUs the command re-starts itself under torchrun, one process
per GPU (``--gpus N`` to choose, ``--gpus 1`` for one): each rank renders its own stream
(its own seeds), DDP averages the gradients, rank 0's clock drives the schedule of all
ranks and rank 0 alone evaluates and writes the artifact (``recognizer.distributed``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from recognizer import distributed
from recognizer.checkpoint import load_model, save_model
from recognizer.data import augment, collate
from recognizer.evaluate import evaluate_pool
from recognizer.model import CRNN, ModelConfig
from recognizer.preprocess import resize_height, to_gray
from synth.pools import render_pool
from recognizer.tokenizer import CTCTokenizer
from recognizer.train import TrainConfig, seed_everything, train_step


@dataclass
class StreamConfig:
    seconds: float = 480.0        # wall-clock training budget (the LR schedule spans it)
    batch_size: int = 256
    lr: float = 1.5e-3
    min_lr_frac: float = 0.02
    warmup_s: float = 10.0
    buffer: int = 2000            # crops held per worker
    fresh_per_batch: int = 24     # crops each worker renders before yielding a batch
    workers: int = 14
    seed: int = 100
    eval_every: int = 2000
    val_samples: int = 2000
    init: str | None = None


class StreamingSynth(IterableDataset):
    """Endless augmented batches drawn from a per-worker buffer of rendered crops."""

    def __init__(self, cfg: StreamConfig, tok: CTCTokenizer, height: int = 32, rank: int = 0) -> None:
        self.cfg, self.tok, self.height, self.rank = cfg, tok, height, rank

    def __iter__(self):
        from synth.render import RenderConfig, Renderer

        info = get_worker_info()
        wid = info.id if info is not None else 0
        seed = self.cfg.seed * 1000 + self.rank * 100 + wid   # every rank and worker its own stream
        renderer, rng, prng = Renderer(RenderConfig(), seed=seed), np.random.default_rng(seed), random.Random(seed)

        def fresh() -> tuple[np.ndarray, list[int]]:
            crop = renderer.render(rng)
            return resize_height(to_gray(crop.image), self.height), self.tok.encode(crop.label)

        buf = [fresh() for _ in range(self.cfg.buffer)]
        bs = self.cfg.batch_size
        while True:
            for _ in range(self.cfg.fresh_per_batch):
                buf[prng.randrange(len(buf))] = fresh()
            cand = sorted(prng.sample(range(len(buf)), min(len(buf), 4 * bs)), key=lambda i: buf[i][0].shape[1])
            start = prng.randrange(0, max(1, len(cand) - bs + 1))
            yield collate([(augment(buf[i][0], prng), buf[i][1]) for i in cand[start:start + bs]])


def lr_at_time(elapsed: float, cfg: StreamConfig) -> float:
    if elapsed < cfg.warmup_s:
        return cfg.lr * max(0.02, elapsed / cfg.warmup_s)
    p = min(1.0, (elapsed - cfg.warmup_s) / max(1e-9, cfg.seconds - cfg.warmup_s))
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def stream_train(cfg: StreamConfig, out_dir: str, log=print) -> dict:
    """Train until ``cfg.seconds`` have passed; checkpoint to ``out_dir`` at every evaluation.

    Under torchrun every rank runs this function; see the module docstring.
    """
    d = distributed.setup("auto")
    seed_everything(cfg.seed)               # same seed on every rank: identical initial weights
    device = d.device
    if cfg.init:
        model, tok, _ = load_model(cfg.init)
    else:
        tok = CTCTokenizer()
        model = CRNN(ModelConfig(num_classes=tok.num_classes))
    val = render_pool(cfg.val_samples, 987_654 + cfg.seed, workers=min(8, cfg.workers) or 1,
                      cfg_dict={"fonts": "heldout"}) if d.main else None
    model.to(device).train()
    net = distributed.wrap(model, d)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    tcfg = TrainConfig(batch_size=cfg.batch_size, seed=cfg.seed)
    loader = DataLoader(StreamingSynth(cfg, tok, rank=d.rank), batch_size=None, num_workers=cfg.workers,
                        pin_memory=device.type == "cuda", prefetch_factor=4 if cfg.workers else None)
    history, step, seen, ema = [], 0, 0, None
    meta = {"recipe": {"stream": asdict(cfg), "machine": _machine(), "world_size": d.world}}
    t0 = None
    for batch in loader:
        if t0 is None:
            t0 = time.time()  # the clock starts once the buffers are filled
        elapsed = distributed.from_main(time.time() - t0, d)
        parts = train_step(net, opt, batch, tcfg, device, lr_at_time(elapsed, cfg))
        step += 1
        seen += batch["images"].shape[0] * d.world
        ema = parts["ctc"] if ema is None else 0.98 * ema + 0.02 * parts["ctc"]
        done = elapsed >= cfg.seconds
        if step % 200 == 0 and d.main:
            log(f"step {step} t {elapsed:.0f}s ctc {ema:.3f} lr {lr_at_time(elapsed, cfg):.2e} "
                f"{seen / max(elapsed, 1e-9):.0f} img/s on {d.world} rank(s)")
        if (step % cfg.eval_every == 0 or done) and d.main:
            model.eval()
            res = {k: v for k, v in evaluate_pool(model, tok, val).items() if k != "slices"}
            model.train()
            history.append({"step": step, "t": round(elapsed, 1), "ctc": ema, **res})
            log(f"eval {json.dumps(history[-1])}")
            save_model(model, tok, out_dir, {**meta, "step": step, "history": history,
                                             "images_seen": seen, "wall_s": elapsed})
        if done:
            break
    sha = distributed.params_sha(model)
    if d.active:
        log(f"rank {d.rank}/{d.world} weights {sha}")
    distributed.teardown(d)
    return {"step": step, "images_seen": seen, "img_per_s": seen / max(1e-9, time.time() - t0),
            "history": history, "world_size": d.world, "weights_sha": sha}


def _machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no gpu"
    return f"{platform.machine()} {os.cpu_count()} cpu, {gpu}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="artifact directory (written at every evaluation)")
    ap.add_argument("--seconds", type=float, default=480, help="training budget in seconds")
    ap.add_argument("--batch-size", type=int, default=256, help="crops per step")
    ap.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2), help="render workers")
    ap.add_argument("--fresh-per-batch", type=int, default=24, help="new renders per worker per batch")
    ap.add_argument("--buffer", type=int, default=2000, help="crops buffered per worker")
    ap.add_argument("--eval-every", type=int, default=2000, help="steps between evaluations/checkpoints")
    ap.add_argument("--seed", type=int, default=100, help="data and init seed")
    ap.add_argument("--init", default=None, help="warm start from this artifact")
    ap.add_argument("--val-samples", type=int, default=2000, help="held-out-font crops scored at each evaluation")
    ap.add_argument("--gpus", type=int, default=None,
                    help="processes under torchrun (default: every GPU when there are several; 1: no torchrun; "
                         "on a machine without GPUs N CPU processes, gloo)")
    a = ap.parse_args()
    relaunch = distributed.relaunch_argv("recognizer.stream_train", sys.argv[1:], a.gpus)
    if relaunch:
        print("running on every GPU: " + " ".join(relaunch), flush=True)
        raise SystemExit(subprocess.call(relaunch))
    cfg = StreamConfig(seconds=a.seconds, batch_size=a.batch_size, lr=a.lr, workers=a.workers,
                       fresh_per_batch=a.fresh_per_batch, buffer=a.buffer, eval_every=a.eval_every,
                       seed=a.seed, init=a.init, val_samples=a.val_samples)
    res = stream_train(cfg, a.out, log=lambda s: print(s, flush=True))
    if not distributed.under_torchrun() or int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in res.items() if k != "history"}))


if __name__ == "__main__":
    main()
