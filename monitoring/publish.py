"""Publishing: report files under ``reports/<run-id>/`` in the bucket, snapshots in a local
Evidently workspace (``$TAGLOOP_HOME/evidently``) whose dashboard shows the trend across nights.

Open it with ``evidently ui --workspace $TAGLOOP_HOME/evidently`` (see monitoring/README.md).
"""
from __future__ import annotations

import os
import re

from evidently.core.report import Snapshot
from evidently.sdk.models import PanelMetric
from evidently.sdk.panels import line_plot_panel
from evidently.ui.workspace import Project, Workspace

from bucket.storage import Storage

PROJECT = "tagloop"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json"}
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def report_prefix(run_id: str) -> str:
    """``reports/<run-id>/``; run ids are plain names (no ``/``) so nothing lands elsewhere."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r}: use letters, digits, '.', '_' or '-' (max 128)")
    return f"reports/{run_id}/"


def publish_files(storage: Storage, run_id: str, files: dict[str, bytes]) -> dict[str, str]:
    """Write ``files`` (name -> bytes) under ``reports/<run-id>/``; returns name -> object URI."""
    prefix = report_prefix(run_id)
    uris = {}
    for name, data in files.items():
        key = prefix + name
        storage.write(key, data, CONTENT_TYPES.get(os.path.splitext(name)[1], "application/octet-stream"))
        uris[name] = storage.uri(key)
    return uris


def default_workspace_dir(home: str) -> str:
    """``$TAGLOOP_HOME/evidently``."""
    return os.path.join(home, "evidently")


def trend_panels() -> list:
    """Line plots over runs: exact match per role, correction rate, share of drifted features."""
    mean = "evidently:metric_v2:MeanValue"
    return [
        line_plot_panel("Exact match on the gate's sets", [
            PanelMetric(legend=role, metric=mean, metric_labels={"column": f"{role}_exact_match"})
            for role in ("champion", "challenger")], size="half"),
        line_plot_panel("Correction rate (share of crops users corrected)", [
            PanelMetric(legend="correction rate", metric=mean, metric_labels={"column": "corrected_share"})],
            size="half"),
        line_plot_panel("Share of drifted features", [
            PanelMetric(legend="drift share", metric="evidently:metric_v2:DriftedColumnsCount",
                        metric_labels={"value_type": "share"})], size="half"),
    ]


def ensure_project(ws: Workspace, name: str = PROJECT) -> Project:
    """The workspace project called ``name``, created with the trend dashboard on first use."""
    found = ws.search_project(name)
    if found:
        return found[0]
    project = ws.create_project(name, description="tagloop nightly drift and accuracy reports")
    for panel in trend_panels():
        project.dashboard.add_panel(panel)
    return project


def add_snapshots(workspace_dir: str, snapshots: dict[str, Snapshot], run_id: str,
                  project: str = PROJECT) -> dict[str, str]:
    """Add each snapshot (kind -> snapshot) as a run named ``<run-id>-<kind>``; returns kind -> run id."""
    os.makedirs(workspace_dir, exist_ok=True)
    ws = Workspace(workspace_dir)
    proj = ensure_project(ws, project)
    return {kind: str(ws.add_run(proj.id, snap, name=f"{run_id}-{kind}").id) for kind, snap in snapshots.items()}
