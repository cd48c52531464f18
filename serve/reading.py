"""Crops in a request -> readings, and the readings a correction can refer to.

A request carries crops as multipart files or as JSON with base64 text; each becomes an
``Upload`` (its bytes, or why there are none). ``read_uploads`` reads them with the served model
under the limits ``tagloop predict`` applies (``crops.image``: 40 Mpixel per crop, refused from
its header; decoded to grey in chunks of ``recognizer.predict.DECODE_BUDGET`` bytes of pixels),
and a crop that cannot be read gets its reason and the others go on.
``ReadingCache`` keeps the crops read recently (bounded in bytes and age), so a correction
needs only the crop id.
"""
from __future__ import annotations

import base64
import binascii
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from serve.models import Served

CROP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")   # becomes an object name in the bucket
MAX_CROPS = 64                     # crops per request
MAX_BODY_BYTES = 64 << 20          # request body (multipart or JSON)
MAX_CROP_BYTES = 16 << 20          # one encoded crop


@dataclass
class Upload:
    crop_id: str
    data: bytes = b""
    error: str = ""


@dataclass(frozen=True)
class Reading:
    """One crop as read: what a correction of it records (``model_version``, prediction, confidence)."""

    crop_id: str
    data: bytes
    text: str
    confidence: float
    rotation: int
    model_version: str
    read_at: float


def new_crop_id() -> str:
    return uuid.uuid4().hex


def check_crop_id(crop_id: str | None) -> str:
    """A client's crop id (letters, digits, ``-``, ``_``, at most 64), or a new one; ``ValueError`` otherwise."""
    if crop_id is None or crop_id == "":
        return new_crop_id()
    if not isinstance(crop_id, str) or not CROP_ID.match(crop_id):
        raise ValueError(f"crop_id {str(crop_id)[:80]!r}: use 1-64 letters, digits, '-' or '_'")
    return crop_id


def from_base64(text: object) -> bytes:
    """Base64 text (standard or URL-safe alphabet, padding optional) -> bytes; ``ValueError`` otherwise."""
    if not isinstance(text, str) or not text:
        raise ValueError("image: expected base64 text")
    s = "".join(text.split())
    s += "=" * (-len(s) % 4)
    try:
        return base64.b64decode(s.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("image: not valid base64 text") from None


def upload_from_base64(text: object, crop_id: str) -> Upload:
    try:
        data = from_base64(text)
    except ValueError as e:
        return Upload(crop_id, error=str(e))
    if len(data) > MAX_CROP_BYTES:
        return Upload(crop_id, error=f"crop larger than {MAX_CROP_BYTES} bytes")
    return Upload(crop_id, data)


def read_uploads(served: Served, uploads: list[Upload]) -> list[Reading | str]:
    """Each upload -> its ``Reading``, or the reason it could not be read (a message), in order."""
    todo = [i for i, u in enumerate(uploads) if not u.error]
    preds = served.predictor.predict_blobs([uploads[i].data for i in todo]) if todo else []
    out: list[Reading | str] = [u.error for u in uploads]
    now = time.time()
    for i, p in zip(todo, preds):
        u = uploads[i]
        out[i] = p.error or Reading(u.crop_id, u.data, p.text, round(float(p.confidence), 6), p.rotation,
                                    served.version, now)
    return out


class ReadingCache:
    """Crops read recently, by crop id: at most ``max_bytes`` of crop bytes, each for ``ttl_s`` seconds,
    least recently read dropped first. Thread-safe."""

    def __init__(self, max_bytes: int = 256 << 20, ttl_s: float = 3600.0) -> None:
        self.max_bytes, self.ttl_s = max_bytes, ttl_s
        self._items: OrderedDict[str, Reading] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, reading: Reading) -> None:
        with self._lock:
            old = self._items.pop(reading.crop_id, None)
            self._bytes -= len(old.data) if old else 0
            self._items[reading.crop_id] = reading
            self._bytes += len(reading.data)
            while self._items and (self._bytes > self.max_bytes
                                   or next(iter(self._items.values())).read_at < time.time() - self.ttl_s):
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.data)

    def get(self, crop_id: str) -> Reading | None:
        with self._lock:
            r = self._items.get(crop_id)
            if r is None or r.read_at < time.time() - self.ttl_s:
                return None
            return r

    def __len__(self) -> int:
        return len(self._items)
