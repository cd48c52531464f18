"""Train the base model from synthetic data only (``tagloop pretrain``)."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from recognizer.checkpoint import load_model
from recognizer.evaluate import evaluate_pool
from recognizer.model import CRNN, ModelConfig
from recognizer.synthdata import Pool, render_pool
from recognizer.tokenizer import CTCTokenizer
from recognizer.train import TrainConfig, fit


@dataclass
class PretrainConfig:
    samples: int = 100_000          # synthetic training crops rendered (in shards)
    shard: int = 25_000
    val_samples: int = 1_000        # rendered with held-out fonts and a held-out seed
    seed: int = 1                   # data seed: shard k is rendered with seed + k
    workers: int = 2                # rendering processes
    channels: tuple[int, ...] = (32, 64, 96, 128)
    hidden: int = 128
    init: str | None = None         # warm start from this artifact (a second, lower-LR phase)
    train: TrainConfig = field(default_factory=TrainConfig)


def _cached_pool(cache_dir: str, n: int, seed: int, cfg: dict, workers: int,
                 log: Callable[[str], None]) -> Pool:
    key = hashlib.sha256(json.dumps([n, seed, cfg, workers > 1], sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"pool-{key}.npz")
    if os.path.exists(path):
        return Pool.load(path)
    t = time.time()
    pool = render_pool(n, seed, workers=workers, cfg_dict=cfg)
    os.makedirs(cache_dir, exist_ok=True)
    pool.save(path + ".tmp.npz")
    os.replace(path + ".tmp.npz", path)
    log(f"rendered {n} crops (seed {seed}) in {time.time() - t:.0f}s -> {path}")
    return pool


def pretrain(cfg: PretrainConfig, out_dir: str, cache_dir: str,
             log: Callable[[str], None] = print) -> dict:
    """Render (or reuse cached) synthetic pools, train, write the artifact to ``out_dir``."""
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    shards = [
        _cached_pool(cache_dir, min(cfg.shard, cfg.samples - i), cfg.seed + k, {}, cfg.workers, log)
        for k, i in enumerate(range(0, cfg.samples, cfg.shard))
    ]
    train_pool = shards[0] if len(shards) == 1 else Pool.concat(shards)
    val_pool = _cached_pool(cache_dir, cfg.val_samples, 987_654 + cfg.seed, {"fonts": "heldout"}, 1, log)
    if cfg.init:
        model, tok, _ = load_model(cfg.init)
    else:
        tok = CTCTokenizer()
        model = CRNN(ModelConfig(num_classes=tok.num_classes, channels=cfg.channels, hidden=cfg.hidden))
    t = time.time()
    meta = {"recipe": {**{k: v for k, v in asdict(cfg).items() if k != "train"},
                       "machine": f"{platform.machine()} {os.cpu_count()} cpu, "
                                  f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no gpu'}"}}
    result = fit(model, tok, train_pool, cfg.train, out_dir,
                 evaluate=lambda m: {k: v for k, v in evaluate_pool(m, tok, val_pool).items() if k != "slices"},
                 meta=meta, log=log)
    result["wall_s"] = time.time() - t
    return result
