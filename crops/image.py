"""Crop bytes -> pixels: the one decoding rule (serving, ingest validation, evaluation, reports)."""
from __future__ import annotations

import io
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np
from PIL import Image, ImageOps

MAX_PIXELS = 40_000_000   # refuse decompression bombs beyond this many pixels
STRIP_PIXELS = 1 << 22    # ``load_gray`` converts this many pixels at a time (~12 MB of RGB)


class CropError(ValueError):
    """A crop that cannot be used; the message says why."""


def _check_size(im: Image.Image) -> None:
    if im.width * im.height > MAX_PIXELS:
        raise CropError(f"image too large ({im.width}x{im.height} pixels, limit {MAX_PIXELS})")


@contextmanager
def _as_crop_error() -> Iterator[None]:
    """PIL's ways of failing on bad bytes -> ``CropError`` with the reason (one mapping for every reader)."""
    try:
        yield
    except CropError:
        raise
    except Image.DecompressionBombError as e:
        raise CropError(f"image too large: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise CropError(f"not a readable image: {e}") from None


def decode_image(data: bytes, apply_exif: bool = True) -> np.ndarray:
    """Bytes -> H x W x 3 uint8 RGB. Raises ``CropError`` with a reason for bad input."""
    if not data:
        raise CropError("empty file (0 bytes)")
    with _as_crop_error():
        with Image.open(io.BytesIO(data)) as im:
            _check_size(im)
            if apply_exif:
                im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
            arr = np.asarray(im)
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise CropError(f"image too small ({arr.shape[1]}x{arr.shape[0]})")
    return arr


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def _not_regular(mode: int) -> CropError:
    kind = next((name for test, name in _KINDS if test(mode)), "not a plain file")
    return CropError(f"not a regular file ({kind})")


def open_regular(path: str) -> io.BufferedReader:
    """Open a file for reading when it is a regular file (after links); FIFOs, devices and sockets are
    refused with ``CropError`` without blocking (opened non-blocking, checked on the open descriptor)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):       # a socket cannot even be opened: say what it is first
            raise _not_regular(st.st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        raise CropError(f"cannot open file: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):             # replaced between the two looks
            raise _not_regular(mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def load_image(path: str) -> np.ndarray:
    """Read a crop file from disk; ``CropError`` on unreadable content."""
    with open_regular(path) as f:
        data = f.read(MAX_PIXELS * 4 + 1)
    return decode_image(data)


@contextmanager
def opened_crop(path: str) -> Iterator[Image.Image]:
    """A crop file opened with its header read and its size checked, nothing decoded yet (``im.size``
    is what decoding will cost); decode it with ``gray_pixels`` inside the block. ``CropError`` with a
    reason for a file that is not regular, empty, not an image, too large or unreadable."""
    with open_regular(path) as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise CropError("empty file (0 bytes)")
        with _as_crop_error():
            with Image.open(f) as im:
                _check_size(im)
                yield im


@contextmanager
def opened_bytes(data: bytes) -> Iterator[Image.Image]:
    """``opened_crop`` for crop bytes held in memory (an upload): header read, size checked, nothing decoded."""
    if not data:
        raise CropError("empty file (0 bytes)")
    try:
        with _as_crop_error():
            with Image.open(io.BytesIO(data)) as im:
                _check_size(im)
                yield im
    except CropError as e:          # PIL names the buffer object ("<_io.BytesIO object at 0x...>"): say "bytes"
        raise CropError(re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "bytes", str(e))) from None


def gray_pixels(im: Image.Image, apply_exif: bool = True) -> np.ndarray:
    """An opened image -> H x W uint8 grey, the same pixels as ``to_gray(decode_image(bytes))``, holding
    only the decoded image and ``STRIP_PIXELS`` of RGB at a time beside the result (not a full RGB copy)."""
    if apply_exif:
        ImageOps.exif_transpose(im, in_place=True)
    im.load()
    w, h = im.size
    if w < 2 or h < 2:
        raise CropError(f"image too small ({w}x{h})")
    out = np.empty((h, w), np.uint8)
    rows = max(1, STRIP_PIXELS // w)
    for y in range(0, h, rows):
        strip = im.crop((0, y, w, min(h, y + rows)))
        out[y:y + strip.height] = to_gray(np.asarray(strip if strip.mode == "RGB" else strip.convert("RGB")))
    return out


def load_gray(path: str) -> np.ndarray:
    """Read a crop file from disk as grey (``opened_crop`` + ``gray_pixels``); ``CropError`` with a reason."""
    with opened_crop(path) as im:
        return gray_pixels(im)


def to_gray(img: np.ndarray) -> np.ndarray:
    """H x W x 3 RGB (or already H x W) uint8 -> H x W uint8."""
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
