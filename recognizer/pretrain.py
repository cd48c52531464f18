"""Train the base model from synthetic data only (``tagloop pretrain``; the pools come from ``synth.pools``)."""
from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from recognizer.checkpoint import load_model
from recognizer.evaluate import evaluate_pool
from recognizer.model import CRNN, ModelConfig
from recognizer.pool import Pool
from recognizer.tokenizer import CTCTokenizer
from recognizer.train import TrainConfig, fit


@dataclass
class PretrainConfig:
    samples: int = field(default=100_000, metadata={"help": "synthetic training crops (rendered in shards)"})
    shard: int = 25_000
    val_samples: int = 1_000        # rendered with held-out fonts and a held-out seed
    seed: int = field(default=1, metadata={"help": "data seed (shard k rendered with seed+k)"})
    workers: int = field(default=2, metadata={"help": "rendering processes"})
    channels: tuple[int, ...] = (32, 64, 96, 128)
    hidden: int = 128
    init: str | None = field(default=None, metadata={
        "help": "warm start from this model directory (a second, lower-LR phase)"})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=12_000))


def pretrain(cfg: PretrainConfig, out_dir: str, train_pool: Pool, val_pool: Pool,
             log: Callable[[str], None] = print) -> dict:
    """Train on ``train_pool`` (validating on ``val_pool``), write the artifact to ``out_dir``."""
    torch.set_num_threads(max(1, os.cpu_count() or 1))
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
