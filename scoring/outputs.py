"""What batch prediction writes back: ``predictions/<day>.jsonl`` and ``labeling/queue/<day>.jsonl``.

``<day>`` is the ``incoming/`` folder the crops arrived in. Both files are rewritten
whole by key: lines of crops scored again (after a crash) replace their old lines,
so a key appears at most once per file. The labeling queue of a day is the
``max_count`` least confident readable crops of that day below ``threshold``.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from bucket.storage import ObjectNotFound, Storage

PREDICTIONS = "predictions/"
QUEUE = "labeling/queue/"


@dataclass
class QueueConfig:
    threshold: float = field(default=0.9, metadata={"help": "crops read with less confidence are queued for labeling"})
    max_count: int = field(default=200, metadata={"help": "at most this many crops queued per day"})


def predictions_key(day: str) -> str:
    return f"{PREDICTIONS}{day}.jsonl"


def queue_key(day: str) -> str:
    return f"{QUEUE}{day}.jsonl"


def parse_lines(data: bytes) -> tuple[list[dict[str, Any]], list[str]]:
    """JSON lines -> (records with a ``key``, other non-empty lines kept verbatim)."""
    records, other = [], []
    for line in data.decode("utf-8").splitlines():
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("key"), str):
            records.append(doc)
        else:
            other.append(line)
    return records, other


def merge_records(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Old records not re-scored now, then the new ones; one record per key."""
    fresh = {r["key"]: r for r in new}
    return [r for r in old if r["key"] not in fresh] + list(fresh.values())


def select_for_labeling(records: list[dict[str, Any]], cfg: QueueConfig) -> list[dict[str, Any]]:
    """Readable records below the threshold, least confident first (ties by key), at most ``max_count``."""
    cands = [r for r in records if not r.get("error") and r["confidence"] < cfg.threshold]
    cands.sort(key=lambda r: (r["confidence"], r["key"]))
    return [{k: r[k] for k in ("crop_id", "key", "prediction", "confidence", "model_version", "scored_at")}
            for r in cands[:max(0, cfg.max_count)]]


def _read(storage: Storage, key: str) -> bytes:
    try:
        return storage.read(key)
    except ObjectNotFound:
        return b""


def _jsonl(lines: list[Any]) -> bytes:
    return "".join((x if isinstance(x, str) else json.dumps(x, sort_keys=True)) + "\n" for x in lines).encode()


def write_day(storage: Storage, day: str, records: list[dict[str, Any]], cfg: QueueConfig) -> dict[str, Any]:
    """Merge ``records`` into the day's predictions file, rewrite its queue; returns counts and URIs."""
    old, other = parse_lines(_read(storage, predictions_key(day)))
    merged = merge_records(old, records)
    storage.write(predictions_key(day), _jsonl(other + merged), "application/x-ndjson")
    queue = select_for_labeling(merged, cfg)
    storage.write(queue_key(day), _jsonl(queue), "application/x-ndjson")
    return {"day": day, "n_lines": len(merged), "n_queued": len(queue),
            "predictions": storage.uri(predictions_key(day)), "queue": storage.uri(queue_key(day))}


def by_day(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by their ``day``, days sorted."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        out[r["day"]].append(r)
    return dict(sorted(out.items()))
