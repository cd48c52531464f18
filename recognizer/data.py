"""Datasets over preprocessed crops, cheap online augmentation, width-bucketed batches."""
from __future__ import annotations

import random

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from recognizer.photo import photo_augment
from recognizer.preprocess import MAX_WIDTH, MIN_WIDTH, batch_tensor
from recognizer.pool import Pool
from recognizer.tokenizer import CTCTokenizer


def augment(g: np.ndarray, rng: random.Random) -> np.ndarray:
    """Light, label-preserving jitter on a height x W uint8 crop (heavy effects are rendered)."""
    h, w = g.shape
    if rng.random() < 0.5:  # aspect jitter
        w2 = int(np.clip(w * rng.uniform(0.8, 1.25), MIN_WIDTH, MAX_WIDTH))
        g = cv2.resize(g, (w2, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.4:  # looser / tighter vertical framing
        top, bot = rng.randint(-3, 5), rng.randint(-3, 5)
        g = _pad_or_crop(g, top, bot, axis=0)
        g = cv2.resize(g, (g.shape[1], h), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.4:
        g = _pad_or_crop(g, rng.randint(-2, 6), rng.randint(-2, 6), axis=1)
    g = g.astype(np.float32)
    if rng.random() < 0.5:
        g = g * rng.uniform(0.55, 1.3) + rng.uniform(-45, 45)
    if rng.random() < 0.08:
        g = 255.0 - g
    if rng.random() < 0.1:
        g = cv2.GaussianBlur(g, (0, 0), rng.uniform(0.4, 1.0))
    if rng.random() < 0.2:
        g = g + np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(3, 12), g.shape)
    return np.clip(g, 0, 255).astype(np.uint8)


def _pad_or_crop(g: np.ndarray, a: int, b: int, axis: int) -> np.ndarray:
    n = g.shape[axis]
    if a < 0:
        g = g[-a:] if axis == 0 else g[:, -a:]
    if b < 0 and n + min(a, 0) + b > 8:
        g = g[:b] if axis == 0 else g[:, :b]
    pads = [(0, 0), (0, 0)]
    pads[axis] = (max(a, 0), max(b, 0))
    return np.pad(g, pads, mode="edge")


class PoolDataset(Dataset):
    """Items: (uint8 height x W crop, label ids). Labels must fit the tokenizer.

    ``photo``: share of training crops given phone-photo effects (``recognizer.photo``)
    instead of the light jitter; another crop of the pool may appear as a neighbouring line.
    """

    def __init__(self, pool: Pool, tok: CTCTokenizer, train: bool, seed: int = 0, photo: float = 0.0) -> None:
        self.pool, self.tok, self.train, self.photo = pool, tok, train, photo
        self.rng = random.Random(seed)
        self.targets = [tok.encode(l) for l in pool.labels]

    def __len__(self) -> int:
        return len(self.pool)

    def __getitem__(self, i: int) -> tuple[np.ndarray, list[int]]:
        g = self.pool.image(i)
        if self.train and self.photo and self.rng.random() < self.photo:
            g = photo_augment(g, self.rng, self.pool.image(self.rng.randrange(len(self.pool))))
        elif self.train:
            g = augment(g, self.rng)
        return g, self.targets[i]


class WidthBucketSampler(Sampler[list[int]]):
    """Shuffled batches of crops with similar widths (less padding, bounded memory).

    With ``max_pixels``, a batch of wide crops is cut short so that
    ``len(batch) x widest crop x height`` stays within ``max_pixels`` (one crop at least).
    """

    def __init__(self, widths: np.ndarray, batch_size: int, seed: int = 0, shuffle: bool = True,
                 max_pixels: int | None = None, height: int = 32) -> None:
        self.widths, self.bs, self.shuffle = np.asarray(widths), batch_size, shuffle
        self.max_pixels, self.height = max_pixels, height
        self.rng = np.random.default_rng(seed)

    def _split(self, part: np.ndarray) -> list[list[int]]:
        """Width-sorted indices -> batches of at most ``bs`` crops and ``max_pixels`` padded pixels."""
        if self.max_pixels is None:
            return [part[i:i + self.bs].tolist() for i in range(0, len(part), self.bs)]
        out, cur = [], []
        for i in part.tolist():
            w = (int(self.widths[i]) + 3) // 4 * 4
            if cur and (len(cur) >= self.bs or (len(cur) + 1) * w * self.height > self.max_pixels):
                out.append(cur)
                cur = []
            cur.append(i)
        return out + ([cur] if cur else [])

    def __iter__(self):
        n = len(self.widths)
        idx = self.rng.permutation(n) if self.shuffle else np.arange(n)
        chunk = self.bs * 50
        batches = []
        for s in range(0, n, chunk):
            part = idx[s:s + chunk]
            part = part[np.argsort(self.widths[part], kind="stable")]
            batches += self._split(part)
        if self.shuffle:
            self.rng.shuffle(batches)
        return iter(batches)

    def __len__(self) -> int:
        """Batches per pass (a lower bound when ``max_pixels`` cuts wide batches short)."""
        return (len(self.widths) + self.bs - 1) // self.bs


def collate(items: list[tuple[np.ndarray, list[int]]]) -> dict[str, torch.Tensor]:
    """-> images B x 1 x 32 x Wmax, widths B, flat targets, target lengths B."""
    x, widths = batch_tensor([g for g, _ in items])
    targets = [t for _, t in items]
    return {"images": torch.from_numpy(x), "widths": torch.from_numpy(widths),
            "targets": torch.tensor([c for t in targets for c in t], dtype=torch.long),
            "target_lengths": torch.tensor([len(t) for t in targets], dtype=torch.long)}
