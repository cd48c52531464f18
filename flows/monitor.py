"""The ``monitor`` flow: dataset version vs new corrections -> drift + correction-rate report, alerts,
and a retrain request when an alert says so.

Reports land in ``reports/<run-id>/`` (bucket) and the Evidently workspace under
``$TAGLOOP_HOME/evidently``. When ``should_retrain`` is set and ``trigger_retrain`` is on,
a run of the ``retrain_deployment`` is started -- only when this flow itself runs from a
deployment (a worker is there to pick it up); otherwise the request is only reported.
"""
from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.settings import bucket_url, new_run_id, setup_environment
from monitoring.alerts import AlertConfig
from monitoring.publish import default_workspace_dir
from tasks.monitor import build_monitor_reports, load_current, load_reference, publish, request_retrain

RETRAIN_DEPLOYMENT = "retrain/nightly"


def running_from_deployment() -> bool:
    """True when this flow run was created by a deployment (so a worker serves deployments)."""
    from prefect.runtime import deployment

    return deployment.id is not None


@flow(name="monitor")
def monitor(bucket: str | None = None, since: str | None = None, trigger_retrain: bool = True,
            retrain_deployment: str = RETRAIN_DEPLOYMENT, max_drift_share: float | None = AlertConfig.max_drift_share,
            max_correction_rate: float | None = AlertConfig.max_correction_rate,
            max_correction_rate_increase: float | None = AlertConfig.max_correction_rate_increase,
            embed_evidently: bool = True) -> dict[str, Any]:
    """One monitoring run; returns the published summary plus ``retrain`` (requested/triggered/why)."""
    log = get_run_logger()
    settings = setup_environment()
    url = bucket_url(bucket, settings)
    run_id = new_run_id("monitor")
    reference = load_reference(url)
    current = load_current(url, since)
    alerts = AlertConfig(max_drift_share, max_correction_rate, max_correction_rate_increase)
    reports = build_monitor_reports(run_id, reference, current, alerts, embed_evidently)
    summary = publish(reports, url, default_workspace_dir(settings.home))
    for a in summary.get("alerts", []):
        log.warning("alert %s: %s", a["name"], a["message"])
    summary["retrain"] = retrain_decision(summary, url, trigger_retrain, retrain_deployment)
    log.info("monitor %s: drift share %s, correction rate %s, retrain %s", run_id, summary.get("drift_share"),
             summary.get("correction_rate"), summary["retrain"])
    return summary


def retrain_decision(summary: dict[str, Any], url: str, trigger: bool, deployment: str) -> dict[str, Any]:
    """Start the retrain deployment when the alerts ask for it and this run is deployed; say why not otherwise."""
    out: dict[str, Any] = {"requested": bool(summary.get("should_retrain")), "triggered": False,
                           "deployment": deployment, "flow_run_id": None}
    if not out["requested"]:
        out["reason"] = "no alert asks for a retrain"
    elif not trigger:
        out["reason"] = "trigger_retrain is off"
    elif not running_from_deployment():
        out["reason"] = f"not running from a deployment: run `prefect deployment run {deployment}` to retrain"
    else:
        out.update(triggered=True, flow_run_id=request_retrain(deployment, {"bucket": url}),
                   reason="alerts: " + ", ".join(a["name"] for a in summary["alerts"]))
    return out
