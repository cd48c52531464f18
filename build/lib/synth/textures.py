"""Procedural label surfaces: paper, woven fabric, cardboard, lighting.

Each function returns a float32 ``H x W`` multiplicative texture around 1.0;
the renderer multiplies it into an RGB base colour. A per-process ``TextureBank``
precomputes large tiles once and serves random crops, which keeps rendering fast.
"""
from __future__ import annotations

import numpy as np
import cv2

TILE = 384


def paper(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    fine = rng.normal(0, 1, (h, w)).astype(np.float32)
    coarse = cv2.resize(rng.normal(0, 1, (h // 16 + 2, w // 16 + 2)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC)
    return 1.0 + 0.025 * fine + 0.03 * coarse


def fabric(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Woven texture: two perpendicular thread gratings with jitter."""
    period = rng.uniform(2.5, 6.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    jitter = cv2.GaussianBlur(rng.normal(0, 1.5, (h, w)).astype(np.float32), (0, 0), 3)
    warp = np.sin((xx + jitter) * 2 * np.pi / period)
    weft = np.sin((yy - jitter) * 2 * np.pi / period)
    weave = np.where(((xx // period) + (yy // period)) % 2 == 0, warp, weft)
    amp = rng.uniform(0.04, 0.14)
    return 1.0 + amp * weave + 0.02 * rng.normal(0, 1, (h, w)).astype(np.float32)


def cardboard(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    fibres = rng.normal(0, 1, (h, w)).astype(np.float32)
    fibres = cv2.GaussianBlur(fibres, (0, 0), sigmaX=rng.uniform(4, 9), sigmaY=0.8)
    blotch = cv2.resize(rng.normal(0, 1, (h // 24 + 2, w // 24 + 2)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC)
    return 1.0 + 0.25 * fibres + 0.05 * blotch


def knit(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Ribbed/knit fabric: vertical ribs plus strong fibre noise (printed fabric tags)."""
    period = rng.uniform(3, 8)
    xx = np.arange(w, dtype=np.float32)[None, :]
    ribs = np.abs(np.sin(xx * np.pi / period))
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.0)
    return 0.92 + 0.12 * ribs + 0.06 * noise


KINDS = {"paper": paper, "fabric": fabric, "cardboard": cardboard, "knit": knit}


class TextureBank:
    """Precomputed tiles per kind; ``sample`` returns a random crop of the right size."""

    def __init__(self, seed: int, per_kind: int = 3) -> None:
        rng = np.random.default_rng(seed)
        self.tiles = {k: [f(rng, TILE, TILE) for _ in range(per_kind)] for k, f in KINDS.items()}

    def sample(self, rng: np.random.Generator, kind: str, h: int, w: int) -> np.ndarray:
        tile = self.tiles[kind][int(rng.integers(len(self.tiles[kind])))]
        if h > TILE or w > TILE:
            reps = (h // TILE + 1, w // TILE + 1)
            tile = np.tile(tile, reps)
        y = int(rng.integers(0, tile.shape[0] - h + 1))
        x = int(rng.integers(0, tile.shape[1] - w + 1))
        return tile[y:y + h, x:x + w]


def lighting(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth illumination: a linear gradient, optionally a hard shadow edge."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    g = (np.cos(ang) * xx / max(w, 1) + np.sin(ang) * yy / max(h, 1))
    field = 1.0 + rng.uniform(-0.35, 0.35) * (g - g.mean())
    if rng.random() < 0.35:  # cast shadow with soft edge
        edge = np.cos(ang + 1.3) * (xx - rng.uniform(0, w)) + np.sin(ang + 1.3) * (yy - rng.uniform(0, h))
        soft = rng.uniform(1.0, 8.0)
        field *= 1.0 - rng.uniform(0.2, 0.55) / (1.0 + np.exp(-edge / soft))
    return field.astype(np.float32)


def highlight(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Additive specular glare blob (0..1) from a glossy label or plastic sleeve."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    sx, sy = rng.uniform(0.1, 0.5) * w, rng.uniform(0.2, 0.9) * h
    blob = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
    return (rng.uniform(0.25, 0.6) * blob).astype(np.float32)
