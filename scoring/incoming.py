"""The ``incoming/`` contract (new unlabelled crops) and the batch-predict bookkeeping.

Bucket contract (an addition to DESIGN.md, written by the serving app)::

    incoming/YYYY-MM-DD/<crop_id>.<png|jpg|jpeg>    crop bytes as cropped, not yet labelled

``state/batch_predict/state.json`` holds every incoming key already scored (with its
outcome and run); it is written last by a run, so a run that dies before it leaves
the keys unscored and the next run scores them again (the prediction files are
rewritten by key, so no line is ever duplicated).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bucket.layout import check_day
from bucket.state import JsonState
from bucket.storage import Storage

INCOMING = "incoming/"
_NAME = re.compile(r"^incoming/(\d{4}-\d{2}-\d{2})/([A-Za-z0-9][A-Za-z0-9._-]*)\.(png|jpg|jpeg)$", re.IGNORECASE)


@dataclass(frozen=True)
class IncomingCrop:
    """One crop object under ``incoming/``."""

    key: str        # object name
    crop_id: str
    day: str        # YYYY-MM-DD folder it arrived in
    size: int       # bytes


@dataclass
class ScoreState(JsonState):
    KEY: ClassVar[str] = "state/batch_predict/state.json"

    scored: dict[str, dict[str, Any]] = field(default_factory=dict)   # key -> {outcome, day, run}
    last_run_id: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)       # last run summaries


def list_incoming(storage: Storage, day: str | None = None) -> tuple[list[IncomingCrop], list[str]]:
    """Crops under ``incoming/`` (one day, or all) -> (crops sorted by key, object names off the contract)."""
    prefix = f"{INCOMING}{check_day(day)}/" if day else INCOMING
    crops, odd = [], []
    for o in storage.list(prefix):
        m = _NAME.match(o.name)
        if m:
            crops.append(IncomingCrop(o.name, m.group(2), m.group(1), o.size))
        else:
            odd.append(o.name)
    return crops, odd


def pending(crops: list[IncomingCrop], state: ScoreState) -> list[IncomingCrop]:
    """Crops not scored by an earlier committed run."""
    return [c for c in crops if c.key not in state.scored]


def commit(storage: Storage, state: ScoreState, records: list[dict[str, Any]], run_id: str,
           summary: dict[str, Any]) -> None:
    """Mark ``records`` scored and write the state: the run's commit point (written last)."""
    for r in records:
        state.scored[r["key"]] = {"outcome": "unreadable" if r.get("error") else "scored", "day": r["day"],
                                  "run": run_id}
    state.last_run_id = run_id
    state.history.append(summary)
    state.save(storage)
