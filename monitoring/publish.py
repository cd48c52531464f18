"""Publishing: report files under ``reports/<run-id>/`` in the bucket, the run's Evidently snapshots
beside them (``reports/<run-id>/snapshots/<kind>.json``), and an Evidently workspace built from them.

The bucket is where every worker and reader reaches the snapshots; a workspace directory
(``$TAGLOOP_HOME/evidently`` on a worker, anywhere on a reader's laptop) is a cache of them:
``sync_workspace`` adds every bucket snapshot it does not hold yet, so each worker's workspace
shows every night, whichever worker ran it. ``python -m monitoring.workspace`` does the same
for a reader; then ``evidently ui --workspace DIR`` (see monitoring/README.md).
"""
from __future__ import annotations

import os
import re

from evidently.core.report import Snapshot
from evidently.sdk.models import PanelMetric
from evidently.sdk.panels import bar_plot_panel, counter_panel
from evidently.ui.workspace import Project, Workspace

from bucket.storage import Storage

PROJECT = "tagloop"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json"}
EVIDENTLY_FILE = "evidently.html"    # Evidently's own interactive report, linked from drift.html
SNAPSHOTS = "snapshots/"


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(name)[1], "application/octet-stream")
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
        storage.write(key, data, content_type(name))
        uris[name] = storage.uri(key)
    return uris


def default_workspace_dir(home: str) -> str:
    """``$TAGLOOP_HOME/evidently``."""
    return os.path.join(home, "evidently")


MEAN = "evidently:metric_v2:MeanValue"
DRIFTED = "evidently:metric_v2:DriftedColumnsCount"


def _em(role: str) -> PanelMetric:
    return PanelMetric(legend=f"{role}", metric=MEAN, metric_labels={"column": f"{role}_exact_match"})


def trend_panels() -> list:
    """The dashboard: tonight's numbers as counters (they show from the first night on) and one bar per
    night for exact match on the held-out corrections, the correction rate and the drifted share."""
    rate = PanelMetric(legend="correction rate", metric=MEAN, metric_labels={"column": "corrected_share"})
    drift = PanelMetric(legend="drifted share", metric=DRIFTED, metric_labels={"value_type": "share"})
    return [
        counter_panel("Champion exact match, held-out corrections (last night)", [_em("champion")], size="half"),
        counter_panel("Challenger exact match, held-out corrections (last night)", [_em("challenger")], size="half"),
        counter_panel("Correction rate (last night)", [rate], size="half"),
        counter_panel("Share of drifted features (last night)", [drift], size="half"),
        bar_plot_panel("Exact match per night, held-out corrections", [_em("champion"), _em("challenger")]),
        bar_plot_panel("Correction rate per night (share of crops users corrected)", [rate], size="half"),
        bar_plot_panel("Share of drifted features per night", [drift], size="half"),
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


def snapshot_key(run_id: str, kind: str) -> str:
    return f"{report_prefix(run_id)}{SNAPSHOTS}{kind}.json"


def publish_snapshots(storage: Storage, run_id: str, snapshots: dict[str, Snapshot]) -> dict[str, str]:
    """Each snapshot (kind -> snapshot) as ``reports/<run-id>/snapshots/<kind>.json``; returns kind -> URI."""
    out = {}
    for kind, snap in snapshots.items():
        storage.write(snapshot_key(run_id, kind), snap.dumps().encode(), CONTENT_TYPES[".json"])
        out[kind] = storage.uri(snapshot_key(run_id, kind))
    return out


def bucket_snapshots(storage: Storage) -> dict[str, str]:
    """Run name (``<run-id>-<kind>``) -> object key of every snapshot published in the bucket."""
    out = {}
    for o in storage.list("reports/"):
        parts = o.name.split("/")
        if len(parts) == 4 and parts[2] == SNAPSHOTS.rstrip("/") and parts[3].endswith(".json"):
            out[f"{parts[1]}-{parts[3][:-5]}"] = o.name
    return out


def run_names(ws: Workspace, project: Project) -> set[str]:
    """Names of the runs a workspace project holds."""
    names = set()
    for sid in ws.list_runs(project.id):
        model = ws.get_run(project.id, sid)
        if model is not None and model.name:
            names.add(model.name)
    return names


def sync_workspace(workspace_dir: str, snapshots: dict[str, Snapshot] | None = None, run_id: str | None = None,
                   storage: Storage | None = None, project: str = PROJECT) -> dict[str, str]:
    """Add to the workspace every run it lacks: this run's ``snapshots`` (kind -> snapshot, named
    ``<run-id>-<kind>``) and, with ``storage``, every snapshot published in the bucket. A run already
    there (by name) is not added twice. Returns run name -> workspace run id of the runs added."""
    os.makedirs(workspace_dir, exist_ok=True)
    ws = Workspace(workspace_dir)
    proj = ensure_project(ws, project)
    have = run_names(ws, proj)
    added = {}
    for kind, snap in (snapshots or {}).items():
        name = f"{run_id}-{kind}"
        if name not in have:
            added[name] = str(ws.add_run(proj.id, snap, name=name).id)
            have.add(name)
    if storage is not None:
        for name, key in sorted(bucket_snapshots(storage).items()):
            if name not in have:
                snap = Snapshot.loads(storage.read(key).decode())
                added[name] = str(ws.add_run(proj.id, snap, name=name).id)
                have.add(name)
    return added
