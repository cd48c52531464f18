"""New items -> one feature row each (the table Great Expectations validates)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from ingest.corrections import MAX_SIDECAR_BYTES, Item, apply_sidecar
from bucket.storage import ObjectInfo, ObjectNotFound, ObjectUnreadable, Storage, UnsafeObjectName
from crops.features import crop_features
from recognizer.tokenizer import normalize_label

MAX_OBJECT_BYTES = 50_000_000     # crops bigger than this are not even downloaded
NO_READ = {"unsafe_name", "missing_image"}


@dataclass(frozen=True)
class Unread:
    reason: str
    detail: str


@dataclass
class Loaded:
    rows: list[dict[str, Any]] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)   # key -> RGB crop (decodable rows)
    blobs: dict[str, dict[str, bytes]] = field(default_factory=dict)  # key -> {object name: bytes}


def parse_ts(text: str | None) -> float | None:
    """ISO-8601 (``Z`` allowed) -> epoch seconds; None when missing or unparseable."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()   # naive = UTC


def _lineage(item: Item) -> dict[str, Any]:
    sc = item.sidecar
    return {"sample_id": item.key, "source_object": item.image_name, "source": item.source,
            "crop_id": sc.get("crop_id"), "predicted_label": sc.get("predicted_label"),
            "sidecar_confidence": item.confidence, "model_version": sc.get("model_version"),
            "sidecar_source": sc.get("source"), "created_at": item.created_at}


def _to_read(item: Item, sizes: dict[str, int]) -> list[str]:
    """Object names of ``item`` worth downloading (sets ``file_too_large`` / ``sidecar_too_large``)."""
    names = [item.sidecar_name] if item.sidecar_name and item.problem != "unsafe_name" else []
    if names and sizes.get(item.sidecar_name, 0) > MAX_SIDECAR_BYTES:
        item.problem = item.problem or "sidecar_too_large"
        names = []
    if item.image_name and item.problem not in NO_READ:
        if sizes.get(item.image_name, 0) > MAX_OBJECT_BYTES:
            item.problem = item.problem or "file_too_large"
        else:
            names.append(item.image_name)
    return names


def load_item(item: Item, blobs: dict[str, bytes], out: Loaded, content: bool = True) -> None:
    """One item and its downloaded objects -> a feature row appended to ``out``.

    ``content=False``: the row of an item whose content could not be processed (no features from it)."""
    out.blobs[item.key] = blobs
    if item.sidecar_name in blobs and not item.problem:
        apply_sidecar(item, blobs[item.sidecar_name])
    data = blobs.get(item.image_name or "", b"")
    label = normalize_label(item.label) if isinstance(item.label, str) else None
    feats, rgb = crop_features(data, label, item.confidence) if content else crop_features(b"", None, None)
    if item.image_name not in blobs:
        feats.update(content_hash=None, decode_status="no_image")
    row = {**_lineage(item), **feats, "label": label, "structure": item.problem or "ok",
           "problem_detail": item.detail or None,
           "created_ts": parse_ts(item.created_at)}
    out.rows.append(row)
    if rgb is not None:
        out.arrays[item.key] = rgb


def read_object(storage: Storage, name: str) -> bytes | Unread:
    """One object's bytes, or why this object alone cannot be read (a symlink, a FIFO, no permission, gone
    since the listing). Bucket-wide faults (unreachable, out of retries) still raise: they are the run's."""
    try:
        return storage.read(name)
    except ObjectUnreadable as e:
        return Unread(e.reason, str(e))
    except UnsafeObjectName as e:
        return Unread("unsafe_name", str(e))
    except ObjectNotFound as e:
        return Unread("object_vanished", str(e))


def load_items(storage: Storage, items: list[Item], listing: list[ObjectInfo], workers: int = 8) -> Loaded:
    """Download the items' objects (``workers`` concurrent reads) and build their feature rows.

    An item whose objects cannot be read, or whose content makes building its row fail in any way,
    gets that as its problem (a quarantine reason) and the batch goes on."""
    sizes = {o.name: o.size for o in listing}
    wanted = {it.key: _to_read(it, sizes) for it in items}
    names = [n for ns in wanted.values() for n in ns]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        data = dict(zip(names, pool.map(lambda n: read_object(storage, n), names)))
    out = Loaded()
    for it in items:
        unread = [data[n] for n in wanted[it.key] if isinstance(data[n], Unread)]
        blobs = {n: data[n] for n in wanted[it.key] if not isinstance(data[n], Unread)}
        if unread and not it.problem:
            it.problem, it.detail = unread[0].reason, unread[0].detail
        try:
            load_item(it, blobs, out)
        except Exception as e:  # noqa: BLE001 - any content-driven failure is this item's, not the batch's
            it.problem, it.detail = "unprocessable_item", f"{type(e).__name__}: {str(e)[:300]}"
            load_item(it, {}, out, content=False)
            out.blobs[it.key] = blobs            # the quarantine copy keeps what was read
    return out


def plain(row: dict[str, Any]) -> dict[str, Any]:
    """numpy scalars -> Python, NaN -> None (rows are stored as JSON and Parquet)."""
    out = {}
    for k, v in row.items():
        v = v.item() if isinstance(v, np.generic) else v
        out[k] = None if isinstance(v, float) and v != v else v
    return out


def add_uniqueness(rows: list[dict[str, Any]], known: dict[str, str]) -> pd.DataFrame:
    """Rows -> table with ``n_labels_for_hash``, ``seen_before`` and ``first_hash`` columns.

    ``known`` maps content hashes already in the dataset (or under review) to their label.
    """
    df = pd.DataFrame(rows)
    # only structurally sound rows with a label take part (a broken sidecar is not a second label)
    hashes = [h if s == "ok" and isinstance(lab, str) else None
              for h, s, lab in zip(df["content_hash"], df["structure"], df["label"])]
    labels: dict[str, set[str]] = {h: {lab} for h, lab in known.items()}
    for h, lab in zip(hashes, df["label"]):
        if h:
            labels.setdefault(h, set()).add(lab)
    first: set[str] = set(known)
    seen, firsts = [], []
    for h in hashes:
        dup = bool(h) and h in first
        seen.append(dup)
        firsts.append(None if (dup or not h) else h)
        if h:
            first.add(h)
    df["n_labels_for_hash"] = [len(labels[h]) if h else 1 for h in hashes]
    df["seen_before"] = seen
    df["first_hash"] = firsts
    return df
