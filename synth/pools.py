"""Synthetic training pools: rendered crops preprocessed to model input, in parallel processes.

``render_pool`` renders in shards (deterministic for ``n``, ``seed`` and ``chunk``, whatever the
number of processes); ``flows.fanout`` runs the same shard jobs as Prefect tasks (Dask).
``cached_pool`` keeps a rendered pool on disk; ``pretrain_pools`` renders the pools
``recognizer.pretrain`` trains on.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import time
from typing import TYPE_CHECKING, Callable, TypeVar

import numpy as np

from crops.image import to_gray
from recognizer.pool import Pool
from recognizer.preprocess import resize_height
from synth.render import Renderer, RenderConfig

if TYPE_CHECKING:                       # render workers import this module: no torch for them
    from recognizer.pretrain import PretrainConfig

T, R = TypeVar("T"), TypeVar("R")


def render_shard(job: tuple) -> tuple[list[np.ndarray], list[str]]:
    """One shard job ``(seed, n, cfg_dict, height)`` -> (height-normalised grey crops, labels).

    A pure function of its job, so shards may run anywhere (processes, a Dask cluster)."""
    seed, n, cfg_dict, height = job
    renderer = Renderer(RenderConfig(**cfg_dict), seed=seed)
    rng = np.random.default_rng(seed)
    grays, labels = [], []
    for _ in range(n):
        crop = renderer.render(rng)
        grays.append(resize_height(to_gray(crop.image), height))
        labels.append(crop.label)
    return grays, labels


def shard_jobs(n: int, seed: int, cfg_dict: dict | None = None, height: int = 32, chunk: int = 500) -> list[tuple]:
    """The shard jobs ``render_pool`` runs for (n, seed, chunk): ``(seed', n', cfg_dict, height)``."""
    return [(seed * 1_000_003 + i, min(chunk, n - i * chunk), cfg_dict or {}, height)
            for i in range((n + chunk - 1) // chunk)]


def pool_from_shards(parts: list[tuple[list[np.ndarray], list[str]]], height: int = 32) -> Pool:
    """Shard results, in job order -> one Pool."""
    grays = [g for gs, _ in parts for g in gs]
    labels = [l for _, ls in parts for l in ls]
    return Pool.pack(grays, labels, height)


def run_shards(fn: Callable[[T], R], jobs: list[T], workers: int,
               on_done: Callable[[int], None] | None = None) -> list[R]:
    """``[fn(job) for job in jobs]``, in order, across ``workers`` spawned processes when there is more
    than one job: every renderer's fan-out (a shard's result depends on its job alone, not on ``workers``).
    ``on_done(i)`` is called as each job finishes (in order; a progress bar)."""
    tick = on_done or (lambda i: None)
    out: list[R] = []
    if workers > 1 and len(jobs) > 1:
        with mp.get_context("spawn").Pool(workers) as p:
            for r in p.imap(fn, jobs):
                out.append(r)
                tick(len(out) - 1)
        return out
    for j in jobs:
        out.append(fn(j))
        tick(len(out) - 1)
    return out


def render_pool(n: int, seed: int, workers: int = 2, cfg_dict: dict | None = None,
                height: int = 32, chunk: int = 500) -> Pool:
    """Render ``n`` crops (deterministic for ``seed`` and ``chunk``) across ``workers`` processes."""
    return pool_from_shards(run_shards(render_shard, shard_jobs(n, seed, cfg_dict, height, chunk), workers), height)


def cached_pool(cache_dir: str, n: int, seed: int, cfg: dict, workers: int,
                log: Callable[[str], None] = print) -> Pool:
    """``render_pool(n, seed, workers, cfg)`` kept under ``cache_dir`` (the same arguments read it back)."""
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


def pretrain_pools(cfg: PretrainConfig, cache_dir: str, log: Callable[[str], None] = print) -> tuple[Pool, Pool]:
    """The (train, validation) pools ``recognizer.pretrain`` trains on: ``cfg.samples`` crops in shards
    (shard k rendered with ``cfg.seed + k``), ``cfg.val_samples`` in held-out fonts and a held-out seed."""
    shards = [cached_pool(cache_dir, min(cfg.shard, cfg.samples - i), cfg.seed + k, {}, cfg.workers, log)
              for k, i in enumerate(range(0, cfg.samples, cfg.shard))]
    train = shards[0] if len(shards) == 1 else Pool.concat(shards)
    return train, cached_pool(cache_dir, cfg.val_samples, 987_654 + cfg.seed, {"fonts": "heldout"}, 1, log)
