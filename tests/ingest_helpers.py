"""Helpers for the ingest tests: crop bytes, seeding a bucket, fault-injecting storage wrappers."""
from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
from PIL import Image

from ingest.corrections import write_correction
from bucket.storage import ObjectInfo, Storage, TransientStorageError

DAY = "2026-11-20"
CREATED = "2026-11-20T03:12:09Z"


def png_bytes(rgb: np.ndarray, gray: bool = False) -> bytes:
    im = Image.fromarray(rgb)
    buf = io.BytesIO()
    (im.convert("L") if gray else im).save(buf, format="PNG")
    return buf.getvalue()


def huge_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A PNG header declaring width x height (pixel data truncated): a decompression-bomb stand-in."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")


def add(storage: Storage, crop_id: str, image: bytes, label: str, confidence: float = 0.6, **kw) -> str:
    """Write one correction through the serving-app writer."""
    return write_correction(storage, image, "png", predicted_label=kw.pop("predicted", label), confidence=confidence,
                            corrected_label=label, model_version="7", crop_id=crop_id,
                            created_at=kw.pop("created_at", CREATED), **kw)


def raw(storage: Storage, name: str, data: bytes) -> None:
    storage.write(name, data)


def sidecar(crop_id: str, label: str, **extra) -> bytes:
    doc = {"crop_id": crop_id, "image": f"{crop_id}.png", "predicted_label": label, "confidence": 0.5,
           "corrected_label": label, "model_version": "7", "created_at": CREATED, "source": "web", **extra}
    return json.dumps(doc).encode()


class EchoReader:
    """A stand-in champion: returns a fixed (text, confidence) per call, or echoes nothing."""

    def __init__(self, answers: dict[int, tuple[str, float]] | None = None) -> None:
        self.answers = answers or {}
        self.calls = 0

    def __call__(self, images: list[np.ndarray]) -> list[tuple[str, float]]:
        self.calls += 1
        return [self.answers.get(img.shape[1], ("", 0.1)) for img in images]


class Faulty(Storage):
    """Wraps a Storage; injects transient errors or a crash on chosen writes/reads/listings."""

    def __init__(self, inner: Storage, transient_reads: int = 0, crash_on_write: str | None = None,
                 extra_listing: list[ObjectInfo] | None = None) -> None:
        super().__init__(inner.retry)
        self.inner, self.url = inner, inner.url
        self.transient_reads, self.crash_on_write = transient_reads, crash_on_write
        self.extra_listing = extra_listing or []

    def _check(self) -> None:
        self.inner.check()

    def _list(self, prefix: str) -> list[ObjectInfo]:
        return self.inner.list(prefix) + [o for o in self.extra_listing if o.name.startswith(prefix)]

    def _read(self, name: str) -> bytes:
        if self.transient_reads > 0:
            self.transient_reads -= 1
            raise TransientStorageError("503 Service Unavailable (injected)")
        return self.inner.read(name)

    def _write(self, name: str, data: bytes, content_type: str) -> None:
        if self.crash_on_write and name.startswith(self.crash_on_write):
            raise RuntimeError(f"injected crash writing {name}")
        self.inner.write(name, data, content_type)

    def _exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def _create(self, name: str, data: bytes, content_type: str) -> bool:
        return self.inner._create(name, data, content_type)

    def _delete(self, name: str) -> None:
        self.inner._delete(name)
