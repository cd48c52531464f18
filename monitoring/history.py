"""The trend across nights, kept in the bucket where the team is.

Every run writes ``reports/<run-id>/summary.json``; those files are the history. This module
reads them back (the last ``limit`` runs, oldest first) and turns each into a *trend point*:
exact match per set and role, the gate's verdict, the correction rate and the share of drifted
features. ``reports/index.json`` and ``reports/index.html`` are rebuilt from the summaries
every run (never appended to: two runs publishing at once cannot lose each other's entry),
and ``reports/latest/`` holds a copy of the newest run's pages.
"""
from __future__ import annotations

import json
from typing import Any

from bucket.storage import Storage, StorageError
from monitoring.publish import CONTENT_TYPES, content_type

REPORTS = "reports/"
LATEST = "latest"
SKIP_DIRS = {LATEST}


def summary_keys(storage: Storage) -> list[str]:
    """``reports/<run-id>/summary.json`` objects (``latest/`` is a copy, not a run)."""
    keys = []
    for o in storage.list(REPORTS):
        parts = o.name[len(REPORTS):].split("/")
        if len(parts) == 2 and parts[1] == "summary.json" and parts[0] not in SKIP_DIRS:
            keys.append(o.name)
    return keys


def read_history(storage: Storage, limit: int = 60, exclude: str | None = None) -> list[dict[str, Any]]:
    """Trend points of the last ``limit`` published runs, oldest first (unreadable summaries are skipped)."""
    points = []
    for key in summary_keys(storage):
        try:
            summary = json.loads(storage.read(key))
        except (StorageError, ValueError):
            continue
        if isinstance(summary, dict) and summary.get("run_id") and summary.get("run_id") != exclude:
            points.append(trend_point(summary))
    points.sort(key=lambda p: (p.get("created_at") or "", p["run_id"]))
    return points[-limit:]


def trend_point(summary: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one run that the trend plots and the index need (missing ones are None)."""
    gate = summary.get("gate") or {}
    return {"run_id": summary["run_id"], "created_at": summary.get("created_at"),
            "kind": summary.get("kind") or ("retrain" if summary.get("exact_match") else "monitor"),
            "verdict": gate.get("verdict") or (("promoted" if gate.get("promoted") else "refused") if gate else None),
            "models": summary.get("models") or {}, "dataset_version": summary.get("dataset_version"),
            "exact_match": summary.get("exact_match") or {},
            "correction_rate": summary.get("correction_rate"), "n_current": summary.get("n_current_rows"),
            "drift_share": summary.get("drift_share"), "dataset_drift": summary.get("dataset_drift"),
            "alerts": [a.get("name") for a in summary.get("alerts") or []],
            "files": sorted(summary.get("report_uris") or {})}


def night_label(point: dict[str, Any]) -> str:
    """``11-29 03:00`` from the run's ``created_at`` (ISO); the run id when there is none."""
    ts = point.get("created_at") or ""
    return f"{ts[5:10]} {ts[11:16]}" if len(ts) >= 16 else point["run_id"][:16]


def em_series(points: list[dict[str, Any]]) -> dict[tuple[str, str], list[float | None]]:
    """(set, role) -> exact match per point (None where that run did not score that set)."""
    keys: list[tuple[str, str]] = []
    for p in points:
        for s, roles in p["exact_match"].items():
            keys += [(s, r) for r in roles if r != "n" and (s, r) not in keys]
    return {k: [(p["exact_match"].get(k[0]) or {}).get(k[1]) for p in points] for k in keys}


def publish_index(storage: Storage, history: list[dict[str, Any]], index_html: bytes,
                  latest: dict[str, bytes]) -> dict[str, str]:
    """Write ``reports/index.json``, ``reports/index.html`` and ``reports/latest/<file>``; returns name -> URI."""
    out = {}
    storage.write(REPORTS + "index.json", json.dumps({"runs": history}, indent=1, default=str).encode(),
                  CONTENT_TYPES[".json"])
    storage.write(REPORTS + "index.html", index_html, CONTENT_TYPES[".html"])
    out["index.html"] = storage.uri(REPORTS + "index.html")
    for name, data in latest.items():
        key = f"{REPORTS}{LATEST}/{name}"
        storage.write(key, data, content_type(name))
        out[f"latest/{name}"] = storage.uri(key)
    return out
