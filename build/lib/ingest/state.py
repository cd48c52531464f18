"""Ingest bookkeeping under ``state/ingest/`` in the bucket.

``state.json`` is the commit point, written last by a run: the set of item keys
already processed (with their outcome), items pending review, the current
dataset version and the id of the last finished run. ``current_run.json`` is
written first; a run that finds an unfinished one (its id is not
``last_run_id``) resumes that id, so a re-run after a crash rewrites the same
``quarantine/<run>/`` objects instead of duplicating them.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ingest.storage import ObjectNotFound, Storage

STATE = "state/ingest/state.json"
CURRENT = "state/ingest/current_run.json"


@dataclass
class IngestState:
    processed: dict[str, dict[str, Any]] = field(default_factory=dict)       # key -> {outcome, run}
    pending_review: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> manifest row + review info
    dataset_version: str | None = None
    last_run_id: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)              # last run summaries


def load_state(storage: Storage) -> IngestState:
    try:
        doc = json.loads(storage.read(STATE))
    except ObjectNotFound:
        return IngestState()
    return IngestState(**{k: doc[k] for k in IngestState.__dataclass_fields__ if k in doc})


def save_state(storage: Storage, state: IngestState) -> None:
    state.history = state.history[-50:]
    storage.write(STATE, json.dumps(asdict(state), sort_keys=True, default=str).encode(), "application/json")


def start_run(storage: Storage, state: IngestState) -> str:
    """Resume the unfinished run's id if there is one, else start a new run id."""
    try:
        current = json.loads(storage.read(CURRENT)).get("run_id")
    except (ObjectNotFound, json.JSONDecodeError):
        current = None
    if current and current != state.last_run_id:
        return current
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    storage.write(CURRENT, json.dumps({"run_id": run_id, "started_at": datetime.now(timezone.utc).isoformat()}).encode(),
                  "application/json")
    return run_id
