"""Prefect automations for what tagloop's own webhook cannot say: a run that dies or hangs.

tagloop posts gate decisions, alerts and failures it catches itself (``monitoring.notify``). A process
killed by the OOM killer or ``kill -9`` says nothing, and a run that hangs holds the bucket lock for its
time-to-live. Prefect sees both, so two automations watch the tagloop flows on the Prefect server:

- ``tagloop: a run crashed or failed``: a run of ``retrain``, ``monitor`` or ``batch-predict`` entering
  Crashed or Failed -> a notification through the ``tagloop-webhook`` block (Slack-compatible);
- ``tagloop: retrain still running``: a ``retrain`` run that has not finished ``hours`` after it started
  -> a notification, and the run is cancelled (its lock then expires or is broken by the next run).

Apply them once per Prefect server (idempotent: existing automations of the same names are replaced)::

    TAGLOOP_WEBHOOK_URL=https://hooks.slack.com/services/... python -m flows.automations [--hours 4]
    prefect automation ls
"""
from __future__ import annotations

import argparse
import sys
from datetime import timedelta

from prefect.automations import Automation, CancelFlowRun, EventTrigger, Posture, SendNotification
from prefect.blocks.notifications import SlackWebhook

BLOCK = "tagloop-webhook"
FLOWS = ("retrain", "monitor", "batch-predict")
CRASHED, STUCK = "tagloop: a run crashed or failed", "tagloop: retrain still running"
FINISHED = {f"prefect.flow-run.{s}" for s in ("Completed", "Failed", "Crashed", "Cancelled")}
BODY = ("Flow run {{ flow_run.name }} of {{ flow.name }} is {{ flow_run.state.name }}: {{ flow_run.state.message }}. "
        "The bucket lock expires on its own (or the next run breaks it with --break-lock --forced-by NAME); "
        "read the run's log in the Prefect UI.")


def automations(block_id: object, hours: float) -> list[Automation]:
    """The two automations, their notifications sent through the block ``block_id``."""
    def flows(*names: str) -> dict:
        return {"prefect.resource.role": "flow", "prefect.resource.name": list(names)}

    crashed = Automation(
        name=CRASHED, description="tagloop: a flow run died where tagloop's own notification could not speak",
        trigger=EventTrigger(expect={"prefect.flow-run.Crashed", "prefect.flow-run.Failed"},
                             match={"prefect.resource.id": "prefect.flow-run.*"}, match_related=flows(*FLOWS),
                             posture=Posture.Reactive, threshold=1),
        actions=[SendNotification(block_document_id=block_id, subject="tagloop: {{ flow.name }} {{ flow_run.state.name }}",
                                  body=BODY)])
    stuck = Automation(
        name=STUCK, description=f"tagloop: a retrain running for more than {hours:g} h is cancelled",
        trigger=EventTrigger(after={"prefect.flow-run.Running"}, expect=FINISHED, for_each={"prefect.resource.id"},
                             match={"prefect.resource.id": "prefect.flow-run.*"}, match_related=flows("retrain"),
                             posture=Posture.Proactive, threshold=1, within=timedelta(hours=hours)),
        actions=[SendNotification(block_document_id=block_id, subject="tagloop: retrain still running, cancelled",
                                  body=f"Flow run {{{{ flow_run.name }}}} ran for more than {hours:g} h without "
                                       "finishing and is being cancelled. " + BODY.split(". ", 1)[1]),
                 CancelFlowRun()])
    return [crashed, stuck]


def apply_automations(webhook_url: str, hours: float = 4.0) -> dict[str, str]:
    """Save the webhook block and (re)create both automations; returns automation name -> id."""
    if not webhook_url.startswith(("http://", "https://")):
        raise ValueError("the webhook URL must be http(s)://... (TAGLOOP_WEBHOOK_URL)")
    if hours <= 0:
        raise ValueError("--hours must be positive")
    block_id = SlackWebhook(url=webhook_url).save(BLOCK, overwrite=True)
    out = {}
    for automation in automations(block_id, hours):
        while (old := _find(automation.name)) is not None:
            old.delete()
        out[automation.name] = str(automation.create().id)
    return out


def _find(name: str) -> Automation | None:
    try:
        return Automation.read(name=name)
    except ValueError:                   # Prefect: no automation of that name
        return None


def main(argv: list[str] | None = None) -> int:
    from flows.settings import setup_environment

    p = argparse.ArgumentParser(prog="python -m flows.automations", description=__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=float, default=4.0, help="cancel a retrain still running after this long")
    args = p.parse_args(argv)
    settings = setup_environment()
    if not settings.webhook_url:
        print("set TAGLOOP_WEBHOOK_URL to the team's incoming webhook first", file=sys.stderr)
        return 2
    for name, ident in apply_automations(settings.webhook_url, args.hours).items():
        print(f"{name}: {ident}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
