"""Tasks of the monitor flow: the two windows, the reports, publishing, the retrain trigger."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from bucket.storage import open_storage
from monitoring.alerts import AlertConfig
from monitoring.report import MonitorReports, build_reports, publish_reports
from monitoring.windows import Window, current_window, reference_window
from tasks.retry import API_RETRIES, IO_RETRIES


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def load_reference(bucket: str) -> Window:
    """Bucket read: features of the current dataset version (stored at ingest)."""
    storage = open_storage(bucket)
    storage.check()
    return reference_window(storage)


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def load_current(bucket: str, since: str | None) -> Window:
    """Bucket read + featurize: corrections not in a dataset version yet (or since a date)."""
    return current_window(open_storage(bucket), since)


@task(cache_policy=NO_CACHE)
def build_monitor_reports(run_id: str, reference: Window, current: Window, alerts: AlertConfig,
                          embed_evidently: bool) -> MonitorReports:
    """Pure: drift + correction-rate report and alerts (no accuracy sets: nothing was evaluated here)."""
    meta = {"dataset_version": reference.dataset_version, "n_reference": reference.n_items,
            "n_current": current.n_items, "current_skipped": current.skipped, "kind": "monitor"}
    return build_reports(run_id, reference.table, current.table, alert_cfg=alerts, meta=meta,
                         embed_evidently=embed_evidently)


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def publish(reports: MonitorReports, bucket: str, workspace_dir: str) -> dict[str, Any]:
    """Bucket + workspace write: ``reports/<run-id>/`` and the Evidently trend snapshots."""
    return publish_reports(reports, open_storage(bucket), workspace_dir)


@task(cache_policy=NO_CACHE, **API_RETRIES)
def request_retrain(deployment: str, parameters: dict[str, Any], scheduled_time: datetime | None = None) -> str:
    """Prefect API write: a run of the retrain deployment, now or at ``scheduled_time`` (not waited for); its id."""
    from prefect.deployments import run_deployment

    run = run_deployment(deployment, parameters=parameters, timeout=0, as_subflow=False, scheduled_time=scheduled_time)
    return str(run.id)
