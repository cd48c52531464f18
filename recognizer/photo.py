"""What a phone does to a tag crop, applied to height-normalised grey training crops.

Renders are clean in ways phone photos are not: the user's box is tight (text touching or
cut by the crop edge), neighbouring lines peek in above and below, print is condensed,
bold or thin, the lens is out of focus, the phone sharpens (halos), messaging apps
re-compress at a smaller size (double JPEG), glossy labels catch glare. ``photo_augment``
draws a random subset of these on a ``32 x W`` uint8 crop; every effect keeps the label
true (nothing is cut beyond a sliver of the outer glyphs' margins).

All randomness comes from the ``random.Random`` passed in, so a seed reproduces a batch.
"""
from __future__ import annotations

import random

import cv2
import numpy as np

from recognizer.preprocess import MAX_WIDTH, MIN_WIDTH


def _dark_text(g: np.ndarray) -> bool:
    """True when the ink is darker than the label (most pixels are label)."""
    return float(np.median(g)) >= float(g.mean())


def neighbour_lines(g: np.ndarray, other: np.ndarray, rng: random.Random) -> np.ndarray:
    """Put a slice of another text line above and/or below ``g`` (tone-matched), as a tight box
    around one line of a multi-line label shows; the result is resized back to ``g``'s height."""
    h, w = g.shape
    o = cv2.resize(other, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    if _dark_text(o) != _dark_text(g):
        o = 255.0 - o
    o = (o - o.mean()) / (o.std() + 1e-3) * g.std() + g.mean()
    ink = np.flatnonzero(np.abs(o - np.median(o)).max(1) > 0.5 * (o.max() - o.min() + 1e-3))
    r0, r1 = (int(ink[0]), int(ink[-1]) + 1) if len(ink) else (0, h)
    k_top = rng.randint(3, int(0.35 * h)) if rng.random() < 0.65 else 0
    k_bot = rng.randint(3, int(0.35 * h)) if rng.random() < 0.65 or not k_top else 0
    gap = rng.randint(0, 3)
    parts = []
    if k_top:     # the lower part of the line above, cut by the top edge
        parts += [o[max(0, r1 - k_top):r1], np.full((gap, w), np.median(g), np.float32)]
    parts.append(g.astype(np.float32))
    if k_bot:     # the upper part of the line below
        parts += [np.full((gap, w), np.median(g), np.float32), o[r0:r0 + k_bot]]
    stacked = np.clip(np.concatenate(parts), 0, 255).astype(np.uint8)
    return cv2.resize(stacked, (w, h), interpolation=cv2.INTER_AREA)


def tight_box(g: np.ndarray, rng: random.Random) -> np.ndarray:
    """Cut the margins: text touching, or slightly cut by, the top/bottom edge; less room at the sides."""
    h, w = g.shape
    top, bot = int(rng.uniform(0, 0.2) * h), int(rng.uniform(0, 0.2) * h)
    side = int(0.12 * h)
    left, right = rng.randint(0, side), rng.randint(0, side)
    if w - left - right < max(MIN_WIDTH, h):
        left = right = 0
    cut = g[top:h - bot, left:w - right]
    return cv2.resize(cut, (cut.shape[1] * h // max(1, cut.shape[0]), h), interpolation=cv2.INTER_LINEAR)


def stroke_weight(g: np.ndarray, rng: random.Random) -> np.ndarray:
    """Bolder or thinner print (at twice the resolution, so the change is sub-pixel at 32 px)."""
    h, w = g.shape
    big = cv2.resize(g, (2 * w, 2 * h), interpolation=cv2.INTER_CUBIC)
    k = np.ones((rng.choice([2, 3]),) * 2, np.uint8)
    bolder = rng.random() < 0.5
    # ink dark: bolder = erode (min filter) the bright label into the ink
    op = cv2.erode if bolder == _dark_text(g) else cv2.dilate
    return cv2.resize(op(big, k), (w, h), interpolation=cv2.INTER_AREA)


def defocus(g: np.ndarray, rng: random.Random) -> np.ndarray:
    return cv2.GaussianBlur(g, (0, 0), rng.uniform(0.6, 1.7))


def motion(g: np.ndarray, rng: random.Random) -> np.ndarray:
    k = rng.randint(3, 6)
    kern = np.zeros((k, k), np.float32)
    kern[k // 2, :] = 1.0 / k
    rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1)
    kern = cv2.warpAffine(kern, rot, (k, k))
    return cv2.filter2D(g, -1, kern / max(float(kern.sum()), 1e-6))


def sharpen(g: np.ndarray, rng: random.Random) -> np.ndarray:
    """Unsharp masking as phone pipelines do: bright/dark halos along strokes."""
    f = g.astype(np.float32)
    blur = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.8, 2.0))
    return np.clip(f + rng.uniform(0.5, 1.6) * (f - blur), 0, 255).astype(np.uint8)


def light(g: np.ndarray, rng: random.Random) -> np.ndarray:
    """A shading gradient across the crop and, sometimes, a specular glare blob."""
    h, w = g.shape
    f = g.astype(np.float32)
    xs = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    ys = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    a, b = rng.uniform(-0.35, 0.35), rng.uniform(-0.25, 0.25)
    f = f * (1 + a * xs + b * ys)
    if rng.random() < 0.5:
        cx, cy = rng.uniform(-1, 1), rng.uniform(-1, 1)
        r = rng.uniform(0.15, 0.6)
        blob = np.exp(-(((xs - cx) * w / h) ** 2 + (ys - cy) ** 2) / (2 * r * r))
        f = f + rng.uniform(40, 110) * blob
    return np.clip(f, 0, 255).astype(np.uint8)


def resample(g: np.ndarray, rng: random.Random) -> np.ndarray:
    """Low resolution: the text was 10-20 px high in the photo."""
    h, w = g.shape
    s = rng.uniform(10, 20) / h
    small = cv2.resize(g, (max(4, int(w * s)), max(4, int(h * s))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def double_jpeg(g: np.ndarray, rng: random.Random) -> np.ndarray:
    """Compressed by the camera, then again smaller by a messaging app."""
    h, w = g.shape
    for q in (rng.randint(50, 90), rng.randint(20, 70)):
        ok, buf = cv2.imencode(".jpg", g, [cv2.IMWRITE_JPEG_QUALITY, q])
        g = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        if rng.random() < 0.5:
            s = rng.uniform(0.6, 0.9)
            g = cv2.resize(cv2.resize(g, (max(4, int(w * s)), max(4, int(h * s))), interpolation=cv2.INTER_AREA),
                           (w, h), interpolation=cv2.INTER_LINEAR)
    return g


def sensor(g: np.ndarray, rng: random.Random) -> np.ndarray:
    """Noise, contrast and gamma of a small sensor in poor light."""
    f = g.astype(np.float32) / 255.0
    f = np.power(np.clip(f, 0, 1), rng.uniform(0.6, 1.6))
    f = (f - 0.5) * rng.uniform(0.5, 1.2) + 0.5 + rng.uniform(-0.15, 0.15)
    f = f * 255.0 + np.random.default_rng(rng.randrange(2**31)).normal(0, rng.uniform(2, 10), f.shape)
    return np.clip(f, 0, 255).astype(np.uint8)


# (effect, probability), applied in this order: framing, print, optics, phone processing, sensor
EFFECTS = ((tight_box, 0.4), (stroke_weight, 0.2), (defocus, 0.3), (motion, 0.08), (resample, 0.12),
           (sharpen, 0.2), (light, 0.3), (double_jpeg, 0.35), (sensor, 0.5))


def photo_augment(g: np.ndarray, rng: random.Random, other: np.ndarray | None = None) -> np.ndarray:
    """A ``32 x W`` uint8 crop as a phone might have photographed it (``other``: another crop
    whose text may appear as a neighbouring line). Returns ``32 x W'`` uint8."""
    h = g.shape[0]
    if rng.random() < 0.5:   # condensed or wide print
        w2 = int(np.clip(g.shape[1] * rng.uniform(0.6, 1.3), MIN_WIDTH, MAX_WIDTH))
        g = cv2.resize(g, (w2, h), interpolation=cv2.INTER_AREA)
    if other is not None and rng.random() < 0.3:
        g = neighbour_lines(g, other, rng)
    for effect, p in EFFECTS:
        if rng.random() < p:
            g = effect(g, rng)
    if g.shape[0] != h:
        g = cv2.resize(g, (g.shape[1], h), interpolation=cv2.INTER_LINEAR)
    w = int(np.clip(g.shape[1], MIN_WIDTH, MAX_WIDTH))
    return g if w == g.shape[1] else cv2.resize(g, (w, h), interpolation=cv2.INTER_LINEAR)
