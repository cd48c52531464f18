"""A shopper's accepted or corrected text -> a correction in the bucket (DESIGN.md's contract).

The sidecar's ``predicted_label``, ``confidence`` and ``model_version`` come from the reading of
that crop (``serve.reading.Reading``), never from the client. The correction is checked as ingest
will check it (``ingest.rules.correction_problem``) before anything is written, so the API refuses
what ingest would quarantine, with the same reason. The text is stored as the shopper sent it
(ingest normalises spaces when it reads it; a correction is never rewritten).
Idempotent on ``crop_id``: the same correction again answers with the stored sidecar; another text
for a crop id already corrected is a conflict, and nothing is replaced.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import threading
from datetime import datetime, timedelta, timezone

from bucket.storage import ObjectNotFound, Storage
from crops.features import crop_features
from crops.image import CropError, opened_bytes
from ingest.corrections import CorrectionExists, correction_key, write_correction
from ingest.rules import correction_problem
from recognizer.tokenizer import normalize_label
from serve.reading import Reading

SOURCE = re.compile(r"^[a-z0-9_-]{1,32}$")
_LOCKS = [threading.Lock() for _ in range(64)]     # one correction per crop id at a time in this process


class Refused(ValueError):
    """A correction ingest would quarantine; ``reason`` is the quarantine reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Conflict(ValueError):
    """The crop id already has a correction with another text."""


def crop_bytes(data: bytes) -> tuple[bytes, str]:
    """Crop bytes and the contract's extension: PNG and JPEG as sent; other formats re-encoded to PNG
    (lossless, EXIF orientation applied), since the contract names only ``png`` and ``jpg``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data, "png"
    if data.startswith(b"\xff\xd8\xff"):
        return data, "jpg"
    from PIL import ImageOps

    with opened_bytes(data) as im:
        buf = io.BytesIO()
        ImageOps.exif_transpose(im).save(buf, "PNG")
    return buf.getvalue(), "png"


def _stored(storage: Storage, crop_id: str, day: datetime) -> dict | None:
    """The sidecar already stored for ``crop_id`` under ``day`` or the day before, else None."""
    for d in (day, day - timedelta(days=1)):
        name = correction_key(crop_id, "json", d.strftime("%Y-%m-%d"))
        try:
            doc = json.loads(storage.read(name))
        except ObjectNotFound:
            continue
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise Conflict(f"{name} exists and is not a readable sidecar; nothing was written")
        return doc
    return None


def _same(doc: dict, corrected_label: str) -> dict:
    if doc.get("corrected_label") != corrected_label:
        raise Conflict(f"crop {doc.get('crop_id')} was already corrected to {doc.get('corrected_label')!r}; "
                       "a correction is never rewritten (read the crop again for a new crop id)")
    return doc


def record_correction(storage: Storage, reading: Reading, corrected_label: str, source: str = "web",
                      extra_chars: str = "", now: datetime | None = None) -> tuple[dict, bool]:
    """Check and write one correction; returns (sidecar, created). ``Refused``, ``Conflict`` or
    ``ValueError`` (bad source) when nothing was written."""
    if not SOURCE.match(source):
        raise ValueError(f"source {source[:40]!r}: use 1-32 characters a-z, 0-9, '-' or '_'")
    try:
        data, ext = crop_bytes(reading.data)
    except CropError as e:
        raise Refused("corrupt_image", f"crop {reading.crop_id}: {e}") from None
    features, _ = crop_features(data, normalize_label(corrected_label), reading.confidence)
    reason = correction_problem(features, normalize_label(corrected_label), reading.confidence, extra_chars)
    if reason:
        raise Refused(reason, f"crop {reading.crop_id}: ingest would quarantine this correction ({reason})")
    now = now or datetime.now(timezone.utc)
    lock = _LOCKS[int(hashlib.sha1(reading.crop_id.encode()).hexdigest(), 16) % len(_LOCKS)]
    with lock:
        found = _stored(storage, reading.crop_id, now)
        if found is not None:
            return _same(found, corrected_label), False
        created_at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            write_correction(storage, data, ext, reading.text, reading.confidence, corrected_label,
                             reading.model_version, source, reading.crop_id, created_at, exclusive=True)
        except CorrectionExists:          # another process wrote this crop id first
            found = _stored(storage, reading.crop_id, now)
            if found is None:
                raise Conflict(f"crop {reading.crop_id}: an object of this crop id exists with other "
                               "content") from None
            return _same(found, corrected_label), False
        return json.loads(storage.read(correction_key(reading.crop_id, "json", created_at))), True
