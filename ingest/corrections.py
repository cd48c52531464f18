"""The corrections contract (DESIGN.md) plus the original service's legacy layout.

Current layout, written by the serving app::

    corrections/YYYY-MM-DD/<crop_id>.<png|jpg>   crop bytes
    corrections/YYYY-MM-DD/<crop_id>.json        sidecar (written last)

Legacy layout (assumption): the original service's objects, named
``{uuid}_{label}_{timestamp}`` (optionally ``.png``), grayscale PNG bytes and no
sidecar, are copied as-is under ``legacy/`` in the same bucket. The label is
everything between the first and the last ``_`` (it may contain ``/``);
the timestamp is epoch seconds/milliseconds or ``YYYYMMDD[T]HHMMSS[Z]``.
"""
from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bucket.storage import ObjectInfo, Storage, is_unsafe_name

CORRECTIONS = "corrections/"
LEGACY = "legacy/"
IMAGE_EXTS = ("png", "jpg", "jpeg")
_CURRENT = re.compile(r"^corrections/(\d{4}-\d{2}-\d{2})/([^/]+)\.(png|jpg|jpeg|json)$", re.IGNORECASE)
_LEGACY = re.compile(r"^legacy/([0-9A-Fa-f-]{8,36})_(.*)_([0-9TZ:\-]{8,20})(?:\.png)?$", re.DOTALL)


@dataclass
class Item:
    """One correction as found in the bucket; ``problem`` is set when its objects are unusable."""

    key: str                         # stable id: corrections/DATE/crop_id or the legacy object name
    source: str                      # "correction" or "legacy"
    image_name: str | None = None
    sidecar_name: str | None = None
    updated: datetime | None = None  # newest object time
    problem: str = ""                # structural reason: missing_sidecar, bad_sidecar_json, ...
    detail: str = ""                 # what exactly went wrong, when the reason alone does not say
    sidecar: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    confidence: float | None = None
    created_at: str | None = None

    @property
    def objects(self) -> list[str]:
        return [n for n in (self.image_name, self.sidecar_name) if n]


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class CorrectionExists(ValueError):
    """``write_correction(exclusive=True)``: an object of this crop id is already in the bucket with other
    content (``name``); nothing was written over it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} already exists with other content; a correction is never rewritten")
        self.name = name


def correction_key(crop_id: str, ext: str, created_at: str) -> str:
    """Object name of a correction's image (``ext``) or sidecar (``json``)."""
    return f"{CORRECTIONS}{created_at[:10]}/{crop_id}.{ext}"


def write_correction(storage: Storage, image: bytes, ext: str, predicted_label: str, confidence: float,
                     corrected_label: str, model_version: str, source: str = "web",
                     crop_id: str | None = None, created_at: str | None = None, exclusive: bool = False,
                     extra: dict[str, Any] | None = None) -> str:
    """What the serving app calls: crop bytes first, then the sidecar. Returns the crop id.

    ``exclusive``: each object is created only if absent (atomically); an image already there with the
    same bytes is kept, anything else raises ``CorrectionExists`` and nothing is replaced.
    ``extra``: more sidecar fields (a labeling sprint's annotator, ...); the contract's fields win."""
    ext = ext.lower().lstrip(".")
    if ext not in IMAGE_EXTS:
        raise ValueError(f"crop extension must be one of {IMAGE_EXTS}, got {ext!r}")
    crop_id = crop_id or uuid.uuid4().hex
    created_at = created_at or now_iso()
    sidecar = {**(extra or {}), "crop_id": crop_id, "image": f"{crop_id}.{ext}", "predicted_label": predicted_label,
               "confidence": confidence, "corrected_label": corrected_label,
               "model_version": str(model_version), "created_at": created_at, "source": source}
    objects = [(correction_key(crop_id, ext, created_at), image, "image/png" if ext == "png" else "image/jpeg"),
               (correction_key(crop_id, "json", created_at), json.dumps(sidecar).encode(), "application/json")]
    for name, data, content_type in objects:
        if not exclusive:
            storage.write(name, data, content_type)
        elif not storage.create(name, data, content_type) and storage.read(name) != data:
            raise CorrectionExists(name)
    return crop_id


def parse_legacy_timestamp(ts: str) -> str | None:
    """Legacy name timestamp -> ISO-8601 UTC, or None when it cannot be parsed."""
    try:
        if ts.isdigit() and len(ts) in (10, 13):
            secs = int(ts) / (1000 if len(ts) == 13 else 1)
            return datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        digits = re.sub(r"[^0-9]", "", ts)
        if len(digits) == 14:
            return datetime.strptime(digits, "%Y%m%d%H%M%S").strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return None
    return None


def group_objects(objects: list[ObjectInfo]) -> list[Item]:
    """Listing of ``corrections/`` and ``legacy/`` -> items (image + sidecar paired by crop id)."""
    items: dict[str, Item] = {}
    for o in objects:
        if is_unsafe_name(o.name):
            items[o.name] = Item(o.name, "correction", image_name=o.name, updated=o.updated, problem="unsafe_name")
            continue
        if o.name.startswith(LEGACY):
            _add_legacy(items, o)
            continue
        m = _CURRENT.match(o.name)
        if not m:
            items[o.name] = Item(o.name, "correction", image_name=o.name, updated=o.updated, problem="unexpected_name")
            continue
        key = f"{CORRECTIONS}{m.group(1)}/{m.group(2)}"
        it = items.setdefault(key, Item(key, "correction"))
        if m.group(3).lower() == "json":
            it.sidecar_name = o.name
        elif it.image_name:
            it.problem = "multiple_images"
        else:
            it.image_name = o.name
        it.updated = max(filter(None, [it.updated, o.updated]))
    for it in items.values():
        if not it.problem and it.source == "correction":
            it.problem = "missing_image" if not it.image_name else "missing_sidecar" if not it.sidecar_name else ""
    return sorted(items.values(), key=lambda i: i.key)


def _add_legacy(items: dict[str, Item], o: ObjectInfo) -> None:
    m = _LEGACY.match(o.name)
    it = Item(o.name, "legacy", image_name=o.name, updated=o.updated)
    if not m:
        it.problem = "unexpected_name"
    else:
        it.label = m.group(2)
        it.created_at = parse_legacy_timestamp(m.group(3))
        it.sidecar = {"crop_id": m.group(1), "corrected_label": it.label, "created_at": it.created_at,
                      "source": "legacy"}
    items[o.name] = it


MAX_SIDECAR_BYTES = 64 * 1024     # a sidecar is ~250 bytes; bigger ones are not downloaded


def _confidence(value: Any) -> tuple[float | None, bool]:
    """Sidecar ``confidence`` -> (value, ok): absent is fine; a bool, a string, NaN, infinity or a number
    too large for a float is not."""
    if value is None:
        return None, True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, False
    try:
        conf = float(value)
    except OverflowError:
        return None, False
    return (conf, True) if math.isfinite(conf) else (None, False)


def _names_agree(item: Item, doc: dict[str, Any]) -> bool:
    """The sidecar's ``crop_id`` and ``image`` (when given) name the objects it sits beside."""
    crop_id = item.key.rsplit("/", 1)[-1]
    image = (item.image_name or "").rsplit("/", 1)[-1]
    return doc.get("crop_id") in (None, crop_id) and doc.get("image") in (None, image)


def apply_sidecar(item: Item, raw: bytes) -> None:
    """Parse sidecar bytes into ``item``; sets ``problem`` on bad JSON, missing or bad fields, or names that
    do not match the objects. Never raises on content: a hostile sidecar is this item's problem only."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):   # bad UTF-8 or JSON, integers over Python's digit limit, deep nesting
        item.problem = "bad_sidecar_json"
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("corrected_label"), str):
        item.problem = "bad_sidecar_fields"
        return
    if not _names_agree(item, doc):
        item.problem = "sidecar_mismatch"
        return
    item.sidecar = doc
    item.label = doc["corrected_label"]
    item.confidence, ok = _confidence(doc.get("confidence"))
    if not ok:
        item.problem = "bad_sidecar_fields"
    item.created_at = doc.get("created_at") if isinstance(doc.get("created_at"), str) else None
