"""Per-crop features, computed once at ingest and reused by validation, the gate's slices and drift reports.

Image statistics are measured on the grayscale crop downscaled so its longer
side is at most ``STATS_SIDE`` pixels (cheap, and comparable across sizes).
"""
from __future__ import annotations

import hashlib
from typing import Any

import cv2
import numpy as np

from crops.codes import CODE_CHARSET
from crops.image import CropError, decode_image, to_gray

STATS_SIDE = 256
FEATURE_COLUMNS = [
    "content_hash", "phash", "decodable", "decode_status", "decode_error", "width", "height",
    "aspect", "brightness", "contrast", "blur", "label_length", "charset_ok", "confidence",
]


def content_hash(data: bytes) -> str:
    """sha256 of the raw bytes, hex."""
    return hashlib.sha256(data).hexdigest()


def perceptual_hash(gray: np.ndarray) -> str:
    """64-bit DCT perceptual hash (hex) of an H x W uint8 image; near-duplicates differ in few bits."""
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].flatten()
    bits = low > np.median(low[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hamming(a: str, b: str) -> int:
    """Bit distance between two hex perceptual hashes."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def decode_status(err: CropError) -> str:
    """Map a ``CropError`` message to a short status used as a quarantine reason."""
    msg = str(err)
    for key, status in (("empty file (0 bytes)", "empty_image"), ("image too large", "image_too_large"),
                        ("image too small", "image_too_small")):
        if msg.startswith(key):     # not a substring test: "(10 bytes not processed)" is no empty file
            return status
    return "corrupt_image"


BLANK_CONTRAST = 3.0    # grey-level std below this is a blank crop (ingest quarantines it as blank_image)


def image_stats(rgb: np.ndarray) -> dict[str, Any]:
    """H x W x 3 uint8 -> brightness (mean, 0-255), contrast (std), blur (Laplacian variance)."""
    gray = to_gray(rgb)
    h, w = gray.shape
    scale = STATS_SIDE / max(h, w)
    if scale < 1:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return {"brightness": float(gray.mean()), "contrast": float(gray.std()),
            "blur": float(cv2.Laplacian(gray, cv2.CV_64F).var()), "phash": perceptual_hash(gray)}


def label_features(label: str | None, charset: str = CODE_CHARSET) -> dict[str, Any]:
    text = label or ""
    return {"label_length": len(text), "charset_ok": bool(text) and all(c in charset for c in text)}


def crop_features(data: bytes, label: str | None, confidence: float | None = None) -> tuple[dict[str, Any], np.ndarray | None]:
    """Raw crop bytes + label -> (feature row, decoded RGB array or None when undecodable)."""
    row: dict[str, Any] = {c: None for c in FEATURE_COLUMNS}
    row.update(content_hash=content_hash(data), confidence=confidence, decodable=False,
               decode_status="ok", decode_error="", **label_features(label))
    try:
        rgb = decode_image(data)
    except CropError as e:
        row.update(decode_status=decode_status(e), decode_error=str(e))
        return row, None
    h, w = rgb.shape[:2]
    row.update(decodable=True, width=w, height=h, aspect=w / h, **image_stats(rgb))
    return row, rgb


def char_classes(label: str | None) -> str:
    """Which character classes a label uses, as a fixed-order signature.

    ``A`` letters, ``9`` digits, ``-`` dash, ``_`` space, ``.`` other punctuation;
    ``DD1391-100`` -> ``A9-``, ``SN 149337 COLOR:WSL`` -> ``A9_.``; empty -> ``""``.
    """
    text = label or ""
    present = [any(c.isalpha() for c in text), any(c.isdigit() for c in text), "-" in text, " " in text,
               any(not c.isalnum() and c not in "- " for c in text)]
    return "".join(sig for sig, on in zip("A9-_.", present) if on)


def digit_share(label: str | None) -> float:
    """Share of digits among the label's characters (0 for an empty label)."""
    text = label or ""
    return sum(c.isdigit() for c in text) / len(text) if text else 0.0
