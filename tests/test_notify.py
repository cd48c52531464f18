"""Webhook notifications (Slack-compatible) against a local HTTP receiver, and the monitor's review window."""
from __future__ import annotations

import socket
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from monitoring.notify import WebhookConfig, alert_event, failure_event, gate_event, send
from webhook_helpers import Receiver

SUMMARY = {"verdict": "refused", "champion_version": "3", "challenger_version": "4", "reason": "not promoted: ...",
           "report_uri": "gs://tags/reports/retrain-x/", "mlflow_run_id": "abc", "dataset_version": "v0007",
           "n_new": 640, "n_accepted": 600, "n_quarantined": 5, "n_review": 35,
           "gate": {"overall": {"n": 252, "champion_exact_match": 0.5, "challenger_exact_match": 0.46, "diff": -0.04,
                                "ci": [-0.07, -0.01], "gained": 3, "lost": 13},
                    "checks": [{"name": "overall", "passed": False, "detail": "0.460 vs 0.500 ..."},
                               {"name": "set heldout", "passed": True, "detail": "fine"}]}}


def test_a_gate_decision_reaches_the_receiver_as_slack_json():
    logs = []
    with Receiver() as r:
        assert send(gate_event(SUMMARY), WebhookConfig(r.url), logs.append)
    (body,) = r.bodies
    assert body["text"].startswith("tagloop retrain: NOT PROMOTED: challenger v4, champion v3 stays")
    assert "0.500 -> 0.460 (-0.040, 95% CI -0.070..-0.010, n=252; 3 gained, 13 lost)" in body["text"]
    assert "failed: overall: 0.460 vs 0.500" in body["text"] and "set heldout" not in body["text"]
    assert "report: gs://tags/reports/retrain-x/accuracy.html" in body["text"]
    assert "next: the champion stays" in body["text"]
    assert [b["type"] for b in body["blocks"]] == ["section", "section"] and ":red_circle:" in str(body["blocks"][0])
    assert body["tagloop"]["event"] == "gate" and body["tagloop"]["verdict"] == "refused"
    assert logs == ["webhook: gate notification delivered to 127.0.0.1 (200)"]


def test_each_outcome_says_what_to_do_next():
    waiting = gate_event({**SUMMARY, "verdict": "awaiting approval"})
    assert "tagloop approve 4 --by NAME" in waiting.text() and waiting.level == "warning"
    promoted = gate_event({**SUMMARY, "verdict": "promoted"})
    assert promoted.title == "tagloop retrain: PROMOTED: v4 is the champion (was v3)" and "rollback" in promoted.runbook
    nothing = gate_event({"verdict": None, "champion_version": "3", "reason": "nothing to learn: ..."})
    assert nothing.title == "tagloop retrain: nothing new, champion v3 stays"
    assert alert_event({"alerts": []}) is None
    alert = alert_event({"run_id": "monitor-1", "alerts": [{"name": "dataset_drift", "message": "60% of features drifted"}],
                         "retrain": {"reason": "alerts: dataset_drift; inside the review window, scheduled for 10:00"},
                         "report_uris": {"drift.html": "gs://tags/reports/monitor-1/drift.html"}})
    assert alert.title == "tagloop monitor: 1 alert (dataset_drift)"
    assert "scheduled for 10:00" in alert.text() and "gs://tags/reports/monitor-1/drift.html" in alert.text()
    from bucket.lock import LockHeld

    assert "SKIPPED" in failure_event("retrain", LockHeld("held by host-a")).title
    crash = failure_event("retrain", OSError("disk full\ntraceback..."), "gs://tags")
    assert crash.title == "tagloop retrain FAILED: OSError" and crash.lines == ["disk full", "bucket: gs://tags"]


def test_server_errors_are_retried_client_errors_are_not_and_nothing_raises():
    naps, logs = [], []
    with Receiver([500, 503]) as r:                          # two failures, then 200
        assert send(gate_event(SUMMARY), WebhookConfig(r.url, backoff_s=0.5), logs.append, naps.append)
    assert r.attempts == 3 and len(r.bodies) == 1 and naps == [0.5, 1.0]
    with Receiver([429], {"Retry-After": "7"}) as r:        # rate limited: wait as told
        naps.clear()
        assert send(gate_event(SUMMARY), WebhookConfig(r.url), logs.append, naps.append) and naps == [7.0]
    with Receiver([404]) as r:                               # wrong URL: one attempt
        logs.clear()
        assert not send(gate_event(SUMMARY), WebhookConfig(r.url), logs.append, naps.append)
    assert r.attempts == 1 and "NOT delivered to 127.0.0.1 after 1 attempt(s): HTTP 404" in logs[0]
    assert "secret-token" not in logs[0]                     # the URL is a secret: only the host is logged
    with socket.socket() as s:                               # nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logs.clear()
    assert not send(gate_event(SUMMARY), WebhookConfig(f"http://127.0.0.1:{port}/x", attempts=2, timeout_s=1),
                    logs.append, naps.append)
    assert "after 2 attempt(s)" in logs[0]
    assert not send(gate_event(SUMMARY), WebhookConfig("file:///etc/passwd"), logs.append)
    assert not send(gate_event(SUMMARY), WebhookConfig(None), logs.append)


def test_review_window_schedules_the_retrain_for_its_end(monkeypatch):
    import flows.monitor as m

    assert m.parse_window(None) is None and m.parse_window("06:00-10:00")
    for bad in ("6-10", "06:00", "10:00-10:00", "25:00-02:00"):
        with pytest.raises(ValueError, match="review_window"):
            m.parse_window(bad)
    berlin = ZoneInfo("Europe/Berlin")
    w = m.parse_window("06:00-10:00")
    assert m.window_end(datetime(2026, 11, 29, 6, 30, tzinfo=berlin), w) == datetime(2026, 11, 29, 10, 0, tzinfo=berlin)
    assert m.window_end(datetime(2026, 11, 29, 10, 0, tzinfo=berlin), w) is None
    night = m.parse_window("22:00-02:00")                    # spans midnight
    assert m.window_end(datetime(2026, 11, 29, 23, 0, tzinfo=berlin), night) == datetime(2026, 11, 30, 2, 0, tzinfo=berlin)
    assert m.window_end(datetime(2026, 11, 30, 1, 0, tzinfo=berlin), night) == datetime(2026, 11, 30, 2, 0, tzinfo=berlin)
    assert m.window_end(datetime(2026, 11, 29, 12, 0, tzinfo=berlin), night) is None

    asked = []
    monkeypatch.setattr(m, "running_from_deployment", lambda: True)
    monkeypatch.setattr(m, "request_retrain", lambda dep, params, at: asked.append(at) or "run-1")
    summary = {"should_retrain": True, "alerts": [{"name": "dataset_drift"}]}
    inside = m.retrain_decision(summary, "gs://b", True, "retrain/nightly", w, "Europe/Berlin",
                                now=datetime(2026, 11, 29, 6, 30, tzinfo=berlin))
    assert inside["triggered"] and inside["scheduled_for"] == "2026-11-29T10:00:00+01:00"
    assert "inside the review window, scheduled for 2026-11-29 10:00 Europe/Berlin" in inside["reason"]
    outside = m.retrain_decision(summary, "gs://b", True, "retrain/nightly", w, "Europe/Berlin",
                                 now=datetime(2026, 11, 29, 3, 0, tzinfo=berlin))
    assert outside["triggered"] and outside["scheduled_for"] is None and asked == [asked[0], None]
