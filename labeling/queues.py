"""What a sprint labels: the review queue and the labeling queue, as one list of ``QueueItem``.

- ``review/queue.jsonl`` (ingest): corrections held for review; the crop is already a correction
  (``corrections/DAY/<id>.<ext>``) and the sprint decides on it (confirm, relabel, reject).
- ``labeling/queue/<day>.jsonl`` (batch-predict): crops under ``incoming/`` the champion read with
  low confidence; nobody has labelled them yet, so the sprint's label becomes a new correction.

Every export is recorded in the bucket as ``labeling/sprints/<sprint>.json`` (the Label Studio
server and project, and every exported item with the facts it was exported with). The import
takes those facts from the record, never from the task data a Label Studio user could edit,
and a later export skips crops an earlier sprint already holds.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from bucket.state import read_json, write_json
from bucket.storage import ObjectNotFound, Storage
from ingest.review import QUEUE as REVIEW_QUEUE
from scoring.outputs import QUEUE as LABELING_QUEUE, parse_lines

SPRINTS = "labeling/sprints/"
Kind = Literal["review", "labeling"]
_SPRINT_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")


@dataclass(frozen=True)
class QueueItem:
    """One crop to label, with what tagloop knew about it when it was queued."""

    kind: Kind
    key: str                        # review: corrections/DAY/<id>; labeling: incoming/DAY/<id>.<ext>
    image: str                      # the crop's object in the bucket
    crop_id: str
    reason: str                     # why it is in the sprint, in words
    prediction: str | None          # the champion's reading
    confidence: float | None
    model_version: str | None
    label: str | None = None        # review: the label the user gave

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _lines(storage: Storage, key: str) -> list[dict[str, Any]]:
    """The JSON lines with a ``key`` of a queue file (none when it does not exist)."""
    try:
        return parse_lines(storage.read(key))[0]
    except ObjectNotFound:
        return []


def _conf(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def review_items(storage: Storage) -> list[QueueItem]:
    """The review queue as sprint items (lines without an image object are skipped)."""
    items = []
    for d in _lines(storage, REVIEW_QUEUE):
        if not isinstance(d.get("source_object"), str):
            continue
        conf = _conf(d.get("champion_confidence"))
        read = d.get("champion_prediction")
        why = ", ".join(d.get("review_reasons") or []) or "held for review"
        seen = f"; the champion reads {read!r} ({conf:.2f})" if isinstance(read, str) and conf is not None else ""
        items.append(QueueItem("review", d["key"], d["source_object"], d["key"].rsplit("/", 1)[-1],
                               f"review ({why}): the user labelled it {d.get('label')!r}{seen}",
                               read if isinstance(read, str) else None, conf, None,
                               d.get("label") if isinstance(d.get("label"), str) else None))
    return items


def labeling_items(storage: Storage, day: str | None = None) -> list[QueueItem]:
    """The labeling queue of ``day`` (or of every day) as sprint items, least confident first per day."""
    keys = [f"{LABELING_QUEUE}{day}.jsonl"] if day else [o.name for o in storage.list(LABELING_QUEUE)
                                                          if o.name.endswith(".jsonl")]
    items = []
    for key in keys:
        for d in _lines(storage, key):
            conf = _conf(d.get("confidence"))
            read = d.get("prediction") if isinstance(d.get("prediction"), str) else None
            crop_id = d.get("crop_id") if isinstance(d.get("crop_id"), str) else d["key"].rsplit("/", 1)[-1]
            shown = f"{conf:.2f}" if conf is not None else "unknown"
            items.append(QueueItem("labeling", d["key"], d["key"], crop_id.rsplit(".", 1)[0],
                                   f"new crop: the champion read it {read!r} with confidence {shown}",
                                   read, conf, str(d["model_version"]) if d.get("model_version") else None))
    return items


@dataclass
class SprintRecord:
    """``labeling/sprints/<sprint>.json``: one export, written once."""

    sprint: str
    label_studio: str               # server URL
    project: int
    created_at: str
    created_by: str
    bucket: str
    images: str                     # inline | local-files
    items: dict[str, dict[str, Any]]    # key -> QueueItem fields

    @property
    def object_key(self) -> str:
        return f"{SPRINTS}{self.sprint}.json"

    def save(self, storage: Storage) -> None:
        write_json(storage, self.object_key, asdict(self))

    def item(self, key: str) -> QueueItem | None:
        doc = self.items.get(key)
        return QueueItem(**doc) if doc else None


def check_sprint_id(sprint: str) -> str:
    if not _SPRINT_ID.match(sprint):
        raise ValueError(f"not a sprint id: {sprint!r}")
    return sprint


def load_sprint(storage: Storage, sprint: str) -> SprintRecord | None:
    doc = read_json(storage, f"{SPRINTS}{check_sprint_id(sprint)}.json")
    return SprintRecord(**doc) if isinstance(doc, dict) else None


def exported_keys(storage: Storage) -> set[str]:
    """Keys of every item an earlier sprint exported."""
    keys: set[str] = set()
    for o in storage.list(SPRINTS):
        doc = read_json(storage, o.name) if o.name.endswith(".json") else None
        if isinstance(doc, dict) and isinstance(doc.get("items"), dict):
            keys |= set(doc["items"])
    return keys
