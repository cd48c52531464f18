"""The model's input normalisation (shared by training and inference).

Decoding a crop's bytes is a crop definition (``crops.image``); its names are imported
here because the recognizer's modules read crops through this module.
"""
from __future__ import annotations

import cv2
import numpy as np

from crops.image import CropError, decode_image, load_image, to_gray  # noqa: F401 - re-exported

MIN_WIDTH, MAX_WIDTH = 16, 1024


def resize_height(gray: np.ndarray, height: int = 32) -> np.ndarray:
    """H x W uint8 -> height x W' uint8 keeping aspect, W' clamped to [16, 1024]."""
    h, w = gray.shape[:2]
    new_w = int(np.clip(round(w * height / h), MIN_WIDTH, MAX_WIDTH))
    interp = cv2.INTER_AREA if h > height else cv2.INTER_LINEAR
    return cv2.resize(gray, (new_w, height), interpolation=interp)


def batch_tensor(grays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """List of height x W_i uint8 -> (B x 1 x H x Wmax float32 in [-1, 1], widths B).

    Right padding repeats the mean border value so padding looks like label background.
    """
    h = grays[0].shape[0]
    wmax = max(g.shape[1] for g in grays)
    wmax = (wmax + 3) // 4 * 4
    out = np.empty((len(grays), 1, h, wmax), np.float32)
    for i, g in enumerate(grays):
        w = g.shape[1]
        out[i, 0, :, :w] = g
        out[i, 0, :, w:] = float(np.median(g[:, -2:])) if w < wmax else 0
    out = out / 127.5 - 1.0
    return out, np.array([g.shape[1] for g in grays])


def width_batches(widths: list[int] | np.ndarray, max_batch: int) -> list[list[int]]:
    """Indices grouped into batches whose crops pad to the same width (narrowest first).

    The recurrent layers read right padding as part of the crop, so a crop batched with
    wider ones would read differently than alone. ``batch_tensor`` pads every crop to a
    multiple of 4 anyway; grouping by that padded width makes batched readings equal to
    single-crop (serving) readings.
    """
    order = sorted(range(len(widths)), key=lambda i: int(widths[i]))
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < max_batch and _padded(widths[i]) == _padded(widths[batches[-1][0]]):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _padded(w: int) -> int:
    return (int(w) + 3) // 4 * 4
