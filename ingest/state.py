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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar

from bucket.state import JsonState, read_json, write_json
from bucket.storage import Storage

CURRENT = "state/ingest/current_run.json"


@dataclass
class IngestState(JsonState):
    KEY: ClassVar[str] = "state/ingest/state.json"

    processed: dict[str, dict[str, Any]] = field(default_factory=dict)       # key -> {outcome, run}
    pending_review: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> manifest row + review info
    dataset_version: str | None = None
    last_run_id: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)              # last run summaries


def start_run(storage: Storage, state: IngestState) -> str:
    """Resume the unfinished run's id if there is one, else start a new run id."""
    try:
        current = (read_json(storage, CURRENT) or {}).get("run_id")
    except json.JSONDecodeError:
        current = None
    if current and current != state.last_run_id:
        return current
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    write_json(storage, CURRENT, {"run_id": run_id, "started_at": datetime.now(timezone.utc).isoformat()})
    return run_id
