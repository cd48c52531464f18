"""``tagloop status``: where things stand, for the person starting the morning.

The champion and the other aliases (with who promoted them and why), the last retrain runs with their gate
verdicts (from MLflow), the challengers waiting for approval,
and, when a bucket is given, the review queue, the last ingest and who holds the
bucket's lock. Read-only: nothing is created, not even an empty registry.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from bucket.lock import BucketLock
from bucket.storage import Storage
from ingest.state import IngestState
from loop.modelref import registry_configured
from loop.registry import EXPERIMENT, Registry, setup_mlflow

VERSION_TAGS = ("promoted_at", "promotion_reason", "forced_by", "approved_by", "replaced", "rolled_back_at",
                "rolled_back_by")


def _when(ms: int | None) -> str | None:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if ms else None


def registry_status(home: str, n_runs: int) -> dict[str, Any] | None:
    """Aliases with their versions' audit tags, and the last ``n_runs`` retrain runs; None without a registry."""
    if not registry_configured(home):
        return None
    import mlflow

    setup_mlflow(home)
    reg = Registry()
    aliases = {}
    for alias, version in reg.aliases().items():
        tags = reg.version_tags(version) if version else {}
        aliases[alias] = None if version is None else {"version": version,
                                                       **{k: tags[k] for k in VERSION_TAGS if tags.get(k)}}
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT], filter_string="tags.`tagloop.kind` = 'retrain'",
                              order_by=["attributes.start_time DESC"], max_results=n_runs, output_format="list")
    return {"aliases": aliases, "pending_approvals": reg.pending_approvals(), "runs": [_run(r) for r in runs]}


def _run(run: Any) -> dict[str, Any]:
    tags = run.data.tags
    return {"run_id": run.info.run_id, "name": run.info.run_name, "started": _when(run.info.start_time),
            "status": run.info.status, "verdict": tags.get("gate.verdict"), "reason": tags.get("gate.reason"),
            "dataset_version": tags.get("dataset_version") or None, "forced_by": tags.get("gate.forced_by")}


def bucket_status(storage: Storage) -> dict[str, Any]:
    """Review queue, the last ingest and the lock holder, read from the bucket's state objects."""
    state = IngestState.load(storage)
    lock = BucketLock(storage, "status").current()
    last = state.history[-1] if state.history else None
    return {"url": storage.url, "dataset_version": state.dataset_version, "pending_review": len(state.pending_review),
            "processed": len(state.processed), "last_ingest": last,
            "lock": None if lock is None else {k: lock.get(k) for k in ("owner", "acquired_at", "expires")}}
