"""One monitoring run: drift + accuracy reports, alerts, and the run summary the flows read.

``build_reports`` is pure (plain inputs in, bytes and snapshots out);
``publish_reports`` writes them to the bucket and the Evidently workspace.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from evidently.core.report import Snapshot

from bucket.storage import Storage
from monitoring import history as hist
from monitoring.accuracy import EvalSet, accuracy_snapshot, accuracy_summary
from monitoring.alerts import AlertConfig, alert_summary
from monitoring.drift import DriftConfig, run_drift
from monitoring.html import accuracy_html, drift_html, index_html
from monitoring.publish import (EVIDENTLY_FILE, publish_files, publish_snapshots, report_prefix, sync_workspace)


@dataclass
class MonitorReports:
    run_id: str
    summary: dict[str, Any]                       # the run summary (also ``summary.json``)
    files: dict[str, bytes] = field(default_factory=dict)       # file name -> content
    snapshots: dict[str, Snapshot] = field(default_factory=dict)  # "drift" / "accuracy" -> Evidently snapshot


def _json(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, default=str).encode()


def build_reports(run_id: str, reference: pd.DataFrame | None = None, current: pd.DataFrame | None = None,
                  sets: list[EvalSet] | None = None, gate: dict[str, Any] | None = None,
                  drift_cfg: DriftConfig | None = None, alert_cfg: AlertConfig | None = None,
                  meta: dict[str, Any] | None = None, timestamp: datetime | None = None,
                  embed_evidently: bool = True, history: list[dict[str, Any]] | None = None) -> MonitorReports:
    """Feature tables (``monitoring.table``) and/or evaluation sets -> reports for run ``run_id``.

    Drift needs both tables (an empty one skips it: ``summary["drift_skipped"]`` says why);
    accuracy needs ``sets``; either part may be left out.
    ``meta`` (dataset version, model versions, links, ...) is printed on the pages and kept in the summary.
    ``history``: trend points of earlier runs (``monitoring.history.read_history``), for the plots over nights.
    ``embed_evidently``: also write Evidently's own interactive report (``evidently.html``, several MB),
    linked from the drift page, never inlined in it.
    """
    report_prefix(run_id)   # validate early
    ts = timestamp or datetime.now(timezone.utc)
    meta = {"run_id": run_id, "created_at": ts.isoformat(), **(meta or {})}
    out = MonitorReports(run_id, {**meta, "kind": meta.get("kind") or ("retrain" if sets else "monitor"),
                                  "alerts": [], "should_retrain": False})
    alerts = None
    if reference is not None and current is not None and (reference.empty or current.empty):
        out.summary["drift_skipped"] = f"no rows to compare (reference {len(reference)}, current {len(current)})"
    elif reference is not None and current is not None:
        drift, snap = run_drift(reference, current, drift_cfg, timestamp=ts, tags=["drift", run_id])
        alerts = alert_summary(drift, alert_cfg)
        drift_dict = drift.to_dict()
        if embed_evidently:
            out.files[EVIDENTLY_FILE] = snap.get_html_str(as_iframe=False).encode()
        out.files["drift.json"] = _json({**meta, **drift_dict, **alerts})
        out.files["drift.html"] = drift_html(drift_dict, alerts, meta, reference, current,
                                             EVIDENTLY_FILE if embed_evidently else None).encode()
        out.snapshots["drift"] = snap
        out.summary.update(dataset_drift=drift.dataset_drift, drift_share=drift.drift_share,
                           drifted_features=drift.drifted_features, correction_rate=drift.correction_rate,
                           reference_correction_rate=drift.reference_correction_rate,
                           n_current_rows=drift.n_current, n_reference_rows=drift.n_reference, **alerts)
    if sets:
        acc = accuracy_summary(sets, gate, models=meta.get("models"))
        out.summary["accuracy"] = {r: {k: s[k] for k in ("n", "exact_match", "norm_edit_distance")}
                                   for r, s in acc["overall"].items()}
        out.summary["exact_match"] = {name: {"n": next(iter(by_role.values()))["n"],
                                             **{r: s["exact_match"] for r, s in by_role.items()}}
                                      for name, by_role in acc["sets"].items()}
        out.summary["gate"] = gate
        points = list(history or []) + [hist.trend_point(out.summary)]
        out.files["accuracy.json"] = _json({**meta, **acc})
        out.files["accuracy.html"] = accuracy_html(acc, sets, {**meta, "alerts": (alerts or {}).get("alerts")},
                                                   points, has_drift="drift.html" in out.files).encode()
        out.snapshots["accuracy"] = accuracy_snapshot(sets, timestamp=ts, tags=["accuracy", run_id])
    out.files["summary.json"] = _json(out.summary)
    return out


def publish_reports(reports: MonitorReports, storage: Storage | None = None,
                    workspace_dir: str | None = None) -> dict[str, Any]:
    """Write the files to ``reports/<run-id>/``, the Evidently snapshots beside them
    (``reports/<run-id>/snapshots/<kind>.json``), rebuild ``reports/index.html`` / ``index.json`` and
    ``reports/latest/`` from every run's summary, and bring the local workspace up to date with the
    bucket's snapshots. Returns the summary with ``report_uris``, ``index_uris`` and ``workspace_runs``
    (``summary.json`` in the bucket has the URIs)."""
    summary = dict(reports.summary)
    if storage is not None:
        names = [n for n in reports.files if n != "summary.json"] + ["summary.json"]
        summary["report_uris"] = {n: storage.uri(report_prefix(reports.run_id) + n) for n in names}
        summary["snapshot_uris"] = publish_snapshots(storage, reports.run_id, reports.snapshots)
        files = {n: reports.files[n] for n in names if n != "summary.json"}
        publish_files(storage, reports.run_id, {**files, "summary.json": _json(summary)})
        points = hist.read_history(storage)
        latest = {n: reports.files[n] for n in ("accuracy.html", "drift.html", "summary.json") if n in reports.files}
        summary["index_uris"] = hist.publish_index(storage, points, index_html(points).encode(), latest)
    if workspace_dir:
        summary["workspace_runs"] = sync_workspace(workspace_dir, reports.snapshots, reports.run_id, storage)
    return summary
