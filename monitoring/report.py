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
from monitoring.accuracy import EvalSet, accuracy_snapshot, accuracy_summary
from monitoring.alerts import AlertConfig, alert_summary
from monitoring.drift import DriftConfig, run_drift
from monitoring.html import accuracy_html, drift_html
from monitoring.publish import add_snapshots, publish_files, report_prefix


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
                  embed_evidently: bool = True) -> MonitorReports:
    """Feature tables (``monitoring.table``) and/or evaluation sets -> reports for run ``run_id``.

    Drift needs both tables (an empty one skips it: ``summary["drift_skipped"]`` says why);
    accuracy needs ``sets``; either part may be left out.
    ``meta`` (dataset version, model versions, ...) is printed on both pages and kept in the summary.
    """
    report_prefix(run_id)   # validate early
    ts = timestamp or datetime.now(timezone.utc)
    meta = {"run_id": run_id, "created_at": ts.isoformat(), **(meta or {})}
    out = MonitorReports(run_id, {**meta, "alerts": [], "should_retrain": False})
    if reference is not None and current is not None and (reference.empty or current.empty):
        out.summary["drift_skipped"] = f"no rows to compare (reference {len(reference)}, current {len(current)})"
    elif reference is not None and current is not None:
        drift, snap = run_drift(reference, current, drift_cfg, timestamp=ts, tags=["drift", run_id])
        alerts = alert_summary(drift, alert_cfg)
        drift_dict = drift.to_dict()
        ev_html = snap.get_html_str(as_iframe=False) if embed_evidently else None
        out.files["drift.json"] = _json({**meta, **drift_dict, **alerts})
        out.files["drift.html"] = drift_html(drift_dict, alerts, meta, ev_html).encode()
        out.snapshots["drift"] = snap
        out.summary.update(dataset_drift=drift.dataset_drift, drift_share=drift.drift_share,
                           drifted_features=drift.drifted_features, correction_rate=drift.correction_rate,
                           reference_correction_rate=drift.reference_correction_rate, **alerts)
    if sets:
        acc = accuracy_summary(sets, gate, models=meta.get("models"))
        out.files["accuracy.json"] = _json({**meta, **acc})
        out.files["accuracy.html"] = accuracy_html(acc, sets, meta).encode()
        out.snapshots["accuracy"] = accuracy_snapshot(sets, timestamp=ts, tags=["accuracy", run_id])
        out.summary["accuracy"] = {r: {k: s[k] for k in ("n", "exact_match", "norm_edit_distance")}
                                   for r, s in acc["overall"].items()}
        out.summary["gate"] = gate
    out.files["summary.json"] = _json(out.summary)
    return out


def publish_reports(reports: MonitorReports, storage: Storage | None = None,
                    workspace_dir: str | None = None) -> dict[str, Any]:
    """Write the files to ``reports/<run-id>/`` and the snapshots to the workspace; returns the summary
    with ``report_uris`` and ``workspace_runs`` added (``summary.json`` in the bucket includes them)."""
    summary = dict(reports.summary)
    if workspace_dir:
        summary["workspace_runs"] = add_snapshots(workspace_dir, reports.snapshots, reports.run_id)
    if storage is not None:
        names = [n for n in reports.files if n != "summary.json"] + ["summary.json"]
        summary["report_uris"] = {n: storage.uri(report_prefix(reports.run_id) + n) for n in names}
        files = {n: reports.files[n] for n in names if n != "summary.json"}
        publish_files(storage, reports.run_id, {**files, "summary.json": _json(summary)})
    return summary
