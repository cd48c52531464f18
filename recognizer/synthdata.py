"""Training pools rendered by synth/, preprocessed to model input, in parallel processes."""
from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass

import numpy as np

from recognizer.preprocess import resize_height, to_gray


@dataclass
class Pool:
    """Preprocessed crops: flat uint8 pixels, per-crop widths and offsets, labels."""

    height: int
    pixels: np.ndarray      # concatenated height x W_i arrays, flattened
    widths: np.ndarray      # int32 per crop
    offsets: np.ndarray     # int64 start of each crop in ``pixels``
    labels: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> np.ndarray:
        w = int(self.widths[i])
        start = int(self.offsets[i])
        return self.pixels[start:start + self.height * w].reshape(self.height, w)

    def save(self, path: str) -> None:
        np.savez(path, height=self.height, pixels=self.pixels, widths=self.widths,
                 offsets=self.offsets, labels=np.array(self.labels))

    @classmethod
    def load(cls, path: str) -> "Pool":
        z = np.load(path, allow_pickle=False)
        return cls(int(z["height"]), z["pixels"], z["widths"], z["offsets"], [str(s) for s in z["labels"]])

    @classmethod
    def from_images(cls, images: list[np.ndarray], labels: list[str], height: int = 32) -> "Pool":
        grays = [resize_height(to_gray(im), height) for im in images]
        return cls._pack(grays, labels, height)

    @classmethod
    def _pack(cls, grays: list[np.ndarray], labels: list[str], height: int) -> "Pool":
        widths = np.array([g.shape[1] for g in grays], np.int32)
        offsets = np.concatenate([[0], np.cumsum(widths.astype(np.int64) * height)[:-1]])
        pixels = np.concatenate([g.ravel() for g in grays]) if grays else np.zeros(0, np.uint8)
        return cls(height, pixels, widths, offsets.astype(np.int64), list(labels))

    @classmethod
    def concat(cls, pools: list["Pool"]) -> "Pool":
        grays = [p.image(i) for p in pools for i in range(len(p))]
        return cls._pack(grays, [l for p in pools for l in p.labels], pools[0].height)


def render_shard(job: tuple) -> tuple[list[np.ndarray], list[str]]:
    """One shard job ``(seed, n, cfg_dict, height)`` -> (height-normalised grey crops, labels).

    A pure function of its job, so shards may run anywhere (processes, a Dask cluster)."""
    from synth.render import Renderer, RenderConfig

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
    return Pool._pack(grays, labels, height)


def render_pool(n: int, seed: int, workers: int = 2, cfg_dict: dict | None = None,
                height: int = 32, chunk: int = 500) -> Pool:
    """Render ``n`` crops (deterministic for ``seed`` and ``chunk``) across ``workers`` processes."""
    jobs = shard_jobs(n, seed, cfg_dict, height, chunk)
    if workers > 1:
        with mp.get_context("spawn").Pool(workers) as p:
            parts = p.map(render_shard, jobs)
    else:
        parts = [render_shard(j) for j in jobs]
    return pool_from_shards(parts, height)
