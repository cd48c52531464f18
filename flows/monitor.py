"""The ``monitor`` flow: dataset version vs new corrections -> drift + correction-rate report, alerts,
and a retrain request when an alert says so.

Reports land in ``reports/<run-id>/`` (bucket) and the Evidently workspace under
``$TAGLOOP_HOME/evidently``. When ``should_retrain`` is set and ``trigger_retrain`` is on,
a run of the ``retrain_deployment`` is started -- only when this flow itself runs from a
deployment (a worker is there to pick it up); otherwise the request is only reported. Inside the
review window (``review_window`` in ``review_timezone``, default 06:00-10:00 Europe/Berlin, when people
read the night's reports and may approve or roll back) the retrain is scheduled for the window's end
instead of starting at once. Alerts and failures go to ``TAGLOOP_WEBHOOK_URL`` (``monitoring.notify``).
"""
from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger

from flows.settings import bucket_url, new_run_id, setup_environment
from monitoring.alerts import AlertConfig
from monitoring.notify import WebhookConfig, alert_event, failure_event, send
from monitoring.publish import default_workspace_dir
from tasks.monitor import build_monitor_reports, load_current, load_reference, publish, request_retrain

RETRAIN_DEPLOYMENT = "retrain/nightly"
REVIEW_WINDOW, REVIEW_TIMEZONE = "06:00-10:00", "Europe/Berlin"     # when people read the night's outcome


def running_from_deployment() -> bool:
    """True when this flow run was created by a deployment (so a worker serves deployments)."""
    from prefect.runtime import deployment

    return deployment.id is not None


@flow(name="monitor")
def monitor(bucket: str | None = None, since: str | None = None, trigger_retrain: bool = True,
            retrain_deployment: str = RETRAIN_DEPLOYMENT, max_drift_share: float | None = AlertConfig.max_drift_share,
            max_correction_rate: float | None = AlertConfig.max_correction_rate,
            max_correction_rate_increase: float | None = AlertConfig.max_correction_rate_increase,
            embed_evidently: bool = True, review_window: str | None = REVIEW_WINDOW,
            review_timezone: str = REVIEW_TIMEZONE) -> dict[str, Any]:
    """One monitoring run; returns the published summary plus ``retrain`` (requested/triggered/why).

    ``review_window`` ("HH:MM-HH:MM" in ``review_timezone``; None: none): a retrain requested inside it is
    scheduled for its end, so a retrain never starts while people review the night's outcome.
    """
    log = get_run_logger()
    settings = setup_environment()
    window = parse_window(review_window)              # a bad window or zone fails before any work
    try:
        ZoneInfo(review_timezone)
    except (KeyError, ValueError):
        raise ValueError(f"review_timezone {review_timezone!r}: not a known time zone (e.g. Europe/Berlin, UTC)") from None
    hook = WebhookConfig(settings.webhook_url)
    try:
        summary = _run(bucket, since, trigger_retrain, retrain_deployment, max_drift_share, max_correction_rate,
                       max_correction_rate_increase, embed_evidently, window, review_timezone, settings, log)
    except Exception as e:
        send(failure_event("monitor", e, bucket or settings.bucket), hook, log.warning)
        raise
    event = alert_event(summary)
    if event is not None:
        send(event, hook, log.info)
    return summary


def _run(bucket, since, trigger_retrain, retrain_deployment, max_drift_share, max_correction_rate,
         max_correction_rate_increase, embed_evidently, window, review_timezone, settings, log) -> dict[str, Any]:
    url = bucket_url(bucket, settings)
    run_id = new_run_id("monitor")
    reference = load_reference(url)
    current = load_current(url, since)
    alerts = AlertConfig(max_drift_share, max_correction_rate, max_correction_rate_increase)
    reports = build_monitor_reports(run_id, reference, current, alerts, embed_evidently)
    summary = publish(reports, url, default_workspace_dir(settings.home))
    for a in summary.get("alerts", []):
        log.warning("alert %s: %s", a["name"], a["message"])
    summary["retrain"] = retrain_decision(summary, url, trigger_retrain, retrain_deployment, window, review_timezone)
    log.info("monitor %s: drift share %s, correction rate %s, retrain %s", run_id, summary.get("drift_share"),
             summary.get("correction_rate"), summary["retrain"])
    return summary


def parse_window(text: str | None) -> tuple[time, time] | None:
    """``"HH:MM-HH:MM"`` -> (start, end); an end before the start spans midnight; None/"" -> None."""
    if not text:
        return None
    try:
        a, b = (datetime.strptime(x.strip(), "%H:%M").time() for x in text.split("-"))
    except ValueError:
        raise ValueError(f"review_window {text!r}: expected HH:MM-HH:MM, e.g. 06:00-10:00") from None
    if a == b:
        raise ValueError(f"review_window {text!r}: start and end are equal")
    return a, b


def window_end(now: datetime, window: tuple[time, time] | None) -> datetime | None:
    """The end of the review window ``now`` (timezone-aware) is in, or None when it is outside it."""
    if window is None:
        return None
    start, end = window
    t, day = now.timetz().replace(tzinfo=None), now.date()
    inside = start <= t < end if start < end else (t >= start or t < end)
    if not inside:
        return None
    end_day = day + timedelta(days=1) if start > end and t >= start else day
    return datetime.combine(end_day, end, tzinfo=now.tzinfo)


def retrain_decision(summary: dict[str, Any], url: str, trigger: bool, deployment: str,
                     window: tuple[time, time] | None = None, timezone: str = REVIEW_TIMEZONE,
                     now: datetime | None = None) -> dict[str, Any]:
    """Start the retrain deployment when the alerts ask for it and this run is deployed (inside the review window:
    schedule it for the window's end); say why not otherwise."""
    out: dict[str, Any] = {"requested": bool(summary.get("should_retrain")), "triggered": False,
                           "deployment": deployment, "flow_run_id": None}
    if not out["requested"]:
        out["reason"] = "no alert asks for a retrain"
    elif not trigger:
        out["reason"] = "trigger_retrain is off"
    elif not running_from_deployment():
        out["reason"] = f"not running from a deployment: run `prefect deployment run {deployment}` to retrain"
    else:
        why = "alerts: " + ", ".join(a["name"] for a in summary["alerts"])
        at = window_end(now or datetime.now(ZoneInfo(timezone)), window)
        if at is not None:
            why += f"; inside the review window, scheduled for {at:%Y-%m-%d %H:%M} {timezone}"
        out.update(triggered=True, flow_run_id=request_retrain(deployment, {"bucket": url}, at), reason=why,
                   scheduled_for=at.isoformat() if at else None)
    return out
