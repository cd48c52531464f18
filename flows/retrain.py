"""The ``retrain`` flow: one learning cycle, nightly (``retrain/nightly``) or manual (``tagloop retrain``).

bucket -> champion -> ingest (validate, quarantine, dataset version) -> dataset split ->
training mix (synthetic rendering included) -> fine-tune -> evaluation sets -> evaluate
both models -> gate -> register (+ promote) -> reports.

The sequence is ``loop.cycle.run_cycle``; this flow runs it with every stage wrapped as a
Prefect task (``tasks.retrain.TASK_STAGES``), so the flow and the plain function are one
code path. Around it: the bucket lock (``bucket.lock``: two retrains never overlap, whoever
started them; the deployment's ``concurrency_limit: 1`` queues scheduled runs too), a lock
heartbeat and a progress line per stage.

A run that dies leaves a consistent state: ingest commits last (``state/ingest/state.json``),
aliases move only after the gate and a successful registration, registration is idempotent,
reports are written under a new run folder. The next run resumes: the mix and the scores
come from Prefect's result cache, the fine-tune from its work directory.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import replace
from typing import Callable

from prefect import flow, get_run_logger

from flows.settings import bucket_url, prune_results, setup_environment
from bucket.storage import open_storage
from loop.config import CycleConfig
from loop.cycle import STAGE_ORDER, STAGE_TEXT, CycleSummary, run_cycle
from monitoring.notify import WebhookConfig, failure_event, gate_event, send
from bucket.lock import DEFAULT_TTL_S, BucketLock, bucket_lock
from recognizer.checkpoint import base_model_dir
from tasks.retrain import TASK_STAGES

def stage_hook(lock: BucketLock, log: Callable[[str], None], progress: bool) -> Callable[[str], None]:
    """Before each stage: refresh the lock's expiry, log (and print) ``[k/n] stage (last one took s)``."""
    state = {"t": time.perf_counter(), "last": ""}

    def on_stage(name: str) -> None:
        lock.refresh()
        now = time.perf_counter()
        took = f" ({state['last']} took {now - state['t']:.1f}s)" if state["last"] else ""
        line = f"[{STAGE_ORDER.index(name) + 1}/{len(STAGE_ORDER)}] {STAGE_TEXT[name]}{took}"
        state.update(t=now, last=name)
        log(line)
        if progress:
            print(line, flush=True)

    return on_stage


@flow(name="retrain")
def retrain(bucket: str | None = None, since: str | None = None, force: bool = False, forced_by: str | None = None,
            config: CycleConfig | None = None, lock_ttl_s: float = DEFAULT_TTL_S, break_lock: bool = False,
            keep_results_days: float = 7.0, progress: bool = False) -> CycleSummary:
    """One learning cycle on ``bucket`` (default ``TAGLOOP_BUCKET``); returns the ``retrain --json`` summary.

    ``config``: the recipe (``loop.config.CycleConfig``; fields left out keep their defaults).
    ``since``: only corrections created on/after YYYY-MM-DD count as new. ``force`` + ``forced_by``:
    promote whatever the gate says (audited). ``break_lock`` + ``forced_by``: take over another
    run's live bucket lock (audited, ``bucket.lock``). ``keep_results_days``: persisted task results
    (mix, scores; only a re-run after a crash needs them) older than this are deleted first.
    """
    if force and not forced_by:
        raise ValueError("force needs forced_by (the person's name is recorded on the model version)")
    if break_lock and not forced_by:
        raise ValueError("break_lock needs forced_by (the person's name is recorded with the broken lock)")
    logger = get_run_logger()
    settings = setup_environment()
    hook = WebhookConfig(settings.webhook_url)
    try:
        summary = _cycle(bucket, since, force, forced_by, config, lock_ttl_s, break_lock, keep_results_days, progress,
                         settings, logger)
    except Exception as e:                   # told to the team, then raised as before (the run fails)
        send(failure_event("retrain", e, bucket or settings.bucket), hook, logger.warning)
        raise
    send(gate_event(json.loads(summary.to_json())), hook, logger.info)
    logger.info("retrain: champion v%s, challenger %s: %s", summary.champion_version,
                summary.challenger_version or "none", summary.reason)
    return summary


def _cycle(bucket, since, force, forced_by, config, lock_ttl_s, break_lock, keep_results_days, progress, settings,
           logger) -> CycleSummary:
    """The flow's body: settings applied to the recipe, old results pruned, the cycle under the bucket lock."""
    url = bucket_url(bucket, settings)
    cfg = config or CycleConfig()
    cfg = replace(cfg, since=since or cfg.since, forced_by=forced_by if force else None,
                  ingest=replace(cfg.ingest, docs_dir=cfg.ingest.docs_dir or settings.path("reports", "validation"),
                                 extra_chars=cfg.ingest.extra_chars or settings.extra_chars))
    removed, freed = prune_results(settings, keep_results_days)
    if removed:
        logger.info("removed %d cached task results older than %.0f days (%.1f MB)", removed, keep_results_days,
                    freed / 1e6)
    storage = open_storage(url)
    storage.check()
    owner = f"{socket.gethostname()}:{os.getpid()}:{_flow_run_id()}"
    with bucket_lock(storage, owner, lock_ttl_s, logger.info, forced_by if break_lock else None) as lock:
        summary = run_cycle(storage, settings.home, base_model_dir(), cfg, log=logger.info, stages=TASK_STAGES,
                            on_stage=stage_hook(lock, logger.info, progress))
    return summary


def _flow_run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id or "no-flow-run")
