"""Crop bytes -> pixels: the one decoding rule (serving, ingest validation, evaluation, reports)."""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, ImageOps

MAX_PIXELS = 40_000_000   # refuse decompression bombs beyond this many pixels


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
    """H x W x 3 RGB (or already H x W) uint8 -> H x W uint8."""
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
