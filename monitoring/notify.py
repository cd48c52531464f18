"""Notifications that leave the machine: gate decisions, alerts and failures posted to a webhook.

The payload is Slack-compatible (``text`` plus ``blocks``; Slack, Mattermost, Rocket.Chat and
Teams' Slack-style connectors read it) and carries the event as data under ``tagloop`` for a
receiver that routes on it. ``TAGLOOP_WEBHOOK_URL`` sets the URL (``flows.settings``); without
one nothing is sent. A notification never fails the run it reports on: connection errors, 5xx and
429 answers are retried with backoff, other 4xx answers are not (the URL or payload is wrong), and
the outcome is one log line that names the webhook's host, never its URL (a Slack webhook URL is a
secret).
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

Log = Callable[[str], None]

# what a person does next, per outcome: the runbook line every notification and the report page carry
RUNBOOK: dict[str, str] = {
    "promoted": "nothing to do; read the accuracy page when convenient. Undo: tagloop rollback --by NAME",
    "refused": "the champion stays. Read the failed checks on the accuracy page; if the batch itself is bad, "
               "look at the quarantine and the review queue before the next night",
    "no decision": "the champion stays; more corrections will decide. Nothing to do",
    "awaiting approval": "read the accuracy page, then tagloop approve {version} --by NAME "
                         "(or tagloop reject {version} --by NAME)",
    "nothing new": "no new corrections reached the dataset; check that the app is uploading",
    "alert": "read drift.html; a retrain is requested as the retrain line says",
    "failure": "the bucket lock was released and nothing past the last commit was kept; read the flow run's log, "
               "fix the cause, rerun (tagloop retrain, or wait for the next night)",
}

LEVEL_COLOUR = {"good": ":large_green_circle:", "warning": ":large_yellow_circle:", "danger": ":red_circle:",
                "info": ":large_blue_circle:"}


@dataclass
class Event:
    """One notification: a title line, detail lines, a level (good/warning/danger/info), a runbook line, data."""

    kind: str                          # "gate", "alert" or "failure"
    title: str
    lines: list[str]
    level: str = "info"
    runbook: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        return "\n".join([self.title, *self.lines] + ([f"next: {self.runbook}"] if self.runbook else []))

    def payload(self) -> dict[str, Any]:
        """Slack-compatible JSON: ``text`` (the fallback every receiver shows) and ``blocks``."""
        body = "\n".join(self.lines + ([f"*next:* {self.runbook}"] if self.runbook else []))
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn",
                                                                     "text": f"{LEVEL_COLOUR[self.level]} *{self.title}*"}}]
        if body:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body[:2900]}})
        return {"text": self.text()[:3900], "blocks": blocks, "tagloop": {"event": self.kind, "level": self.level,
                                                                         **self.data}}


@dataclass
class WebhookConfig:
    url: str | None = None             # TAGLOOP_WEBHOOK_URL; None: notifications off
    timeout_s: float = 5.0
    attempts: int = 3
    backoff_s: float = 1.0             # doubled after each failed attempt
    max_retry_after_s: float = 30.0    # a 429's Retry-After is honoured up to this


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"


def send(event: Event, cfg: WebhookConfig, log: Log = print, sleep: Callable[[float], None] = time.sleep) -> bool:
    """POST ``event`` to ``cfg.url``; True when the receiver answered 2xx. Never raises."""
    if not cfg.url:
        return False
    if urlsplit(cfg.url).scheme not in ("http", "https"):
        log(f"webhook: not sent ({event.kind}): TAGLOOP_WEBHOOK_URL must be an http(s) URL")
        return False
    body = json.dumps(event.payload(), default=str).encode()
    wait, why = cfg.backoff_s, ""
    for attempt in range(1, cfg.attempts + 1):
        req = urllib.request.Request(cfg.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "tagloop"})
        try:
            with urllib.request.urlopen(req, timeout=cfg.timeout_s) as resp:
                log(f"webhook: {event.kind} notification delivered to {_host(cfg.url)} ({resp.status})")
                return True
        except urllib.error.HTTPError as e:
            why = f"HTTP {e.code}"
            if e.code != 429 and e.code < 500:
                break                                          # the URL or the payload is wrong: retrying won't help
            retry_after = e.headers.get("Retry-After") if e.headers else None
            if e.code == 429 and retry_after and retry_after.isdigit():
                wait = min(float(retry_after), cfg.max_retry_after_s)
        except (urllib.error.URLError, OSError, ValueError) as e:
            why = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
        if attempt < cfg.attempts:
            sleep(wait)
            wait *= 2
    log(f"webhook: {event.kind} notification NOT delivered to {_host(cfg.url)} after {attempt} attempt(s): {why}")
    return False


# -- the events ---------------------------------------------------------------------------

GATE_TITLE = {"promoted": ("PROMOTED", "good"), "refused": ("NOT PROMOTED", "danger"),
              "no decision": ("NO DECISION", "warning"), "awaiting approval": ("WAITING FOR APPROVAL", "warning")}


def gate_event(summary: dict[str, Any]) -> Event:
    """A retrain's outcome, from its ``retrain --json`` summary (``loop.cycle.CycleSummary``)."""
    verdict, champ, chall = summary.get("verdict"), summary.get("champion_version"), summary.get("challenger_version")
    data = {"verdict": verdict or "nothing new", "champion_version": champ, "challenger_version": chall,
            "report_uri": summary.get("report_uri"), "mlflow_run_id": summary.get("mlflow_run_id"),
            "dataset_version": summary.get("dataset_version")}
    if not verdict:
        return Event("gate", f"tagloop retrain: nothing new, champion v{champ} stays", [summary.get("reason", "")],
                     "info", RUNBOOK["nothing new"], data)
    word, level = GATE_TITLE.get(verdict, (verdict.upper(), "info"))
    if verdict == "promoted":
        title = f"tagloop retrain: {word}: v{chall} is the champion (was v{champ})"
    else:
        title = f"tagloop retrain: {word}: challenger v{chall}, champion v{champ} stays"
    overall = (summary.get("gate") or {}).get("overall") or {}
    lines = []
    if overall.get("n"):
        lo, hi = overall.get("ci") or (None, None)
        ci = f", 95% CI {lo:+.3f}..{hi:+.3f}" if lo is not None else ""
        lines.append(f"held-out exact match {overall['champion_exact_match']:.3f} -> {overall['challenger_exact_match']:.3f} "
                     f"({overall['diff']:+.3f}{ci}, n={overall['n']}; {overall['gained']} gained, {overall['lost']} lost)")
    failed = [c for c in (summary.get("gate") or {}).get("checks", []) if c.get("passed") is False]
    lines += [f"failed: {c['name']}: {c['detail']}" for c in failed[:3]]
    ing = [f"{summary[k]} {k.removeprefix('n_')}" for k in ("n_new", "n_accepted", "n_quarantined", "n_review")
           if isinstance(summary.get(k), int)]
    if ing:
        lines.append("ingest: " + ", ".join(ing))
    if summary.get("report_uri"):
        lines.append(f"report: {summary['report_uri']}accuracy.html")
    return Event("gate", title, lines, level, RUNBOOK.get(verdict, "").format(version=chall), data)


def alert_event(summary: dict[str, Any]) -> Event | None:
    """The monitor's alerts (None when none fired), with what happens about a retrain."""
    alerts = summary.get("alerts") or []
    if not alerts:
        return None
    retrain = summary.get("retrain") or {}
    lines = [f"{a['name']}: {a['message']}" for a in alerts]
    lines.append(f"retrain: {retrain.get('reason', 'not requested')}")
    drift_page = (summary.get("report_uris") or {}).get("drift.html")
    if drift_page:
        lines.append(f"report: {drift_page}")
    return Event("alert", f"tagloop monitor: {len(alerts)} alert{'s' * (len(alerts) > 1)} "
                          f"({', '.join(a['name'] for a in alerts)})", lines, "warning", RUNBOOK["alert"],
                 {"run_id": summary.get("run_id"), "alerts": alerts, "retrain": retrain})


def failure_event(flow: str, error: BaseException, bucket: str | None = None) -> Event:
    """A flow that stopped with an exception (another run holding the bucket lock: skipped, not failed)."""
    from bucket.lock import LockHeld

    first = (str(error).strip().splitlines() or [""])[0][:500]
    if isinstance(error, LockHeld):
        return Event("failure", f"tagloop {flow} SKIPPED: another run holds the bucket lock", [first], "warning",
                     "nothing to do unless that run is dead: then tagloop retrain --break-lock --forced-by NAME",
                     {"flow": flow, "error_type": "LockHeld", "error": first, "bucket": bucket})
    return Event("failure", f"tagloop {flow} FAILED: {type(error).__name__}", [first] + ([f"bucket: {bucket}"] if bucket
                                                                                       else []),
                 "danger", RUNBOOK["failure"], {"flow": flow, "error_type": type(error).__name__, "error": first,
                                                "bucket": bucket})
