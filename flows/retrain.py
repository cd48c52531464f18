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

import os
import socket
import time
from dataclasses import fields, replace
from typing import Any, Callable

from prefect import flow, get_run_logger

from flows.batch_predict import bucket_url
from flows.settings import base_model_dir, prune_results, setup_environment
from ingest.pipeline import IngestConfig
from bucket.storage import open_storage
from loop.cycle import STAGE_ORDER, CycleConfig, CycleSummary, run_cycle
from loop.gate import GateConfig
from bucket.lock import DEFAULT_TTL_S, BucketLock, bucket_lock
from loop.mix import MixConfig
from loop.regression import RegressionConfig
from recognizer.finetune import FinetuneConfig
from recognizer.train import TrainConfig
from tasks.retrain import TASK_STAGES

STAGE_TEXT = {"champion": "champion from the registry", "ingest": "ingest + validate new corrections",
              "split": "dataset version: new vs earlier rows", "mix": "training mix (rendering synthetic crops)",
              "finetune": "fine-tune the challenger", "eval_sets": "evaluation sets (held-out + regression suite)",
              "evaluate": "evaluate champion and challenger", "gate": "gate decision",
              "register": "register (+ promote) in MLflow", "report": "drift + accuracy reports"}


def _with(obj: Any, changes: dict[str, Any] | None) -> Any:
    """``dataclasses.replace`` that names the unknown keys instead of a TypeError."""
    if not changes:
        return obj
    unknown = set(changes) - {f.name for f in fields(obj)}
    if unknown:
        raise ValueError(f"unknown {type(obj).__name__} settings: {sorted(unknown)}")
    return replace(obj, **changes)


def cycle_config(since: str | None = None, forced_by: str | None = None, steps: int = 250, batch_size: int = 64,
                 lr: float = 2e-3, eval_every: int = 100, patience: int = 3, mix_new: float = 0.5,
                 mix_replay: float = 0.25, mix_synthetic: float = 0.25, targeted: float = 0.7,
                 min_synthetic: int = 2000, margin: float = 0.005, slice_tolerance: float = 0.03,
                 regression_tolerance: float = 0.005, seed: int = 0, workers: int = 2, device: str = "auto",
                 embed_evidently: bool = True, docs_dir: str | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None) -> CycleConfig:
    """Flow / CLI parameters -> ``CycleConfig``. ``overrides``: ``{section: {field: value}}`` for the rest
    (sections ``mix``, ``train``, ``finetune``, ``gate``, ``regression``, ``ingest``)."""
    o = overrides or {}
    unknown = set(o) - {"mix", "train", "finetune", "gate", "regression", "ingest"}
    if unknown:
        raise ValueError(f"unknown override sections: {sorted(unknown)}")
    train = _with(TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup=min(30, steps // 10),
                              eval_every=eval_every, ckpt_every=eval_every, seed=seed, workers=0, device=device),
                  o.get("train"))
    return CycleConfig(
        mix=_with(MixConfig(new=mix_new, replay=mix_replay, synthetic=mix_synthetic, targeted=targeted,
                            min_synthetic=min_synthetic, seed=seed, workers=workers), o.get("mix")),
        finetune=_with(FinetuneConfig(train=train, patience=patience), o.get("finetune")),
        gate=_with(GateConfig(margin=margin, slice_tolerance=slice_tolerance,
                              regression_tolerance=regression_tolerance), o.get("gate")),
        regression=_with(RegressionConfig(), o.get("regression")),
        ingest=_with(IngestConfig(docs_dir=docs_dir), o.get("ingest")),
        since=since, forced_by=forced_by, embed_evidently=embed_evidently)


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
            steps: int = 250, batch_size: int = 64, lr: float = 2e-3, eval_every: int = 100, patience: int = 3,
            mix_new: float = 0.5, mix_replay: float = 0.25, mix_synthetic: float = 0.25, targeted: float = 0.7,
            min_synthetic: int = 2000, margin: float = 0.005, slice_tolerance: float = 0.03,
            regression_tolerance: float = 0.005, seed: int = 0, workers: int = 2, device: str = "auto",
            embed_evidently: bool = True, overrides: dict[str, dict[str, Any]] | None = None,
            lock_ttl_s: float = DEFAULT_TTL_S, break_lock: bool = False, keep_results_days: float = 7.0,
            progress: bool = False) -> CycleSummary:
    """One learning cycle on ``bucket`` (default ``TAGLOOP_BUCKET``); returns the ``retrain --json`` summary.

    ``since``: only corrections created on/after YYYY-MM-DD count as new. ``force`` + ``forced_by``:
    promote whatever the gate says (audited). ``break_lock`` + ``forced_by``: take over another
    run's live bucket lock (audited, ``bucket.lock``). ``keep_results_days``: persisted task results
    (mix, scores; only a re-run after a crash needs them) older than this are deleted first. ``steps``: length of the fine-tune LR schedule
    (validation every ``eval_every`` steps, early stopping after ``patience`` checks without gain).
    ``mix_*``: shares of new corrections / replayed earlier crops / fresh synthetic crops.
    """
    if force and not forced_by:
        raise ValueError("force needs forced_by (the person's name is recorded on the model version)")
    if break_lock and not forced_by:
        raise ValueError("break_lock needs forced_by (the person's name is recorded with the broken lock)")
    logger = get_run_logger()
    settings = setup_environment()
    url = bucket_url(bucket)
    cfg = cycle_config(since=since, forced_by=forced_by if force else None, steps=steps, batch_size=batch_size,
                       lr=lr, eval_every=eval_every, patience=patience, mix_new=mix_new, mix_replay=mix_replay,
                       mix_synthetic=mix_synthetic, targeted=targeted, min_synthetic=min_synthetic, margin=margin,
                       slice_tolerance=slice_tolerance, regression_tolerance=regression_tolerance, seed=seed,
                       workers=workers, device=device, embed_evidently=embed_evidently,
                       docs_dir=settings.path("reports", "validation"), overrides=overrides)
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
    logger.info("retrain: champion v%s, challenger %s: %s", summary.champion_version,
                summary.challenger_version or "none", summary.reason)
    return summary


def _flow_run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id or "no-flow-run")
