"""Crop decoding and the model's input normalisation (shared by training and inference)."""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, ImageOps

MAX_PIXELS = 40_000_000   # refuse decompression bombs beyond this many pixels
MIN_WIDTH, MAX_WIDTH = 16, 1024


class CropError(ValueError):
    """A crop that cannot be used; the message says why."""


def decode_image(data: bytes, apply_exif: bool = True) -> np.ndarray:
    """Bytes -> H x W x 3 uint8 RGB. Raises ``CropError`` with a reason for bad input."""
    if not data:
        raise CropError("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise CropError(f"image too large ({im.width}x{im.height} pixels, limit {MAX_PIXELS})")
            if apply_exif:
                im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
            arr = np.asarray(im)
    except CropError:
        raise
    except Image.DecompressionBombError as e:
        raise CropError(f"image too large: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise CropError(f"not a readable image: {e}") from None
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise CropError(f"image too small ({arr.shape[1]}x{arr.shape[0]})")
    return arr


def load_image(path: str) -> np.ndarray:
    """Read a crop file from disk; ``CropError`` on unreadable content."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PIXELS * 4 + 1)
    except OSError as e:
        raise CropError(f"cannot open file: {e.strerror}") from None
    return decode_image(data)


def to_gray(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


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
