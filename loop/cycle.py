"""One learning cycle: the stage list, written once, and the sequence that runs it.

``Stages`` lists the stages in data-path order (``loop.stages`` holds the functions, the
field metadata says what each does); ``run_cycle`` is the one sequence. The retrain flow
runs the same sequence with every stage wrapped as a Prefect task (``tasks.retrain``), so
the flow and the plain cycle cannot drift apart. MLflow records go through ``loop.tracking``.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

from bucket.storage import Storage
from ingest.dataset import manifest_path
from ingest.pipeline import IngestSummary
from loop import tracking
from loop.config import CycleConfig
from loop.registry import Registry, setup_mlflow
from loop.stages import (Champion, DataSplit, champion_stage, eval_sets_stage, evaluate_stage, finetune_stage, gate_stage,
                         ingest_stage, metrics_of, mix_stage, prune_work_dirs, register_stage, report_stage, split_stage,
                         work_dir)

Log = Callable[[str], None]


def _stage(fn: Callable[..., Any], text: str) -> Any:
    return field(default=fn, metadata={"text": text})


@dataclass(frozen=True)
class Stages:
    """The stages one cycle calls, in data-path order; the metadata is the progress line of each."""

    champion: Callable[..., Champion] = _stage(champion_stage, "champion from the registry")
    ingest: Callable[..., IngestSummary] = _stage(ingest_stage, "ingest + validate new corrections")
    split: Callable[..., DataSplit] = _stage(split_stage, "dataset version: new vs earlier rows")
    mix: Callable[..., Any] = _stage(mix_stage, "training mix (rendering synthetic crops)")
    finetune: Callable[..., Any] = _stage(finetune_stage, "fine-tune the challenger")
    eval_sets: Callable[..., Any] = _stage(eval_sets_stage, "evaluation sets (held-out + regression suite)")
    evaluate: Callable[..., Any] = _stage(evaluate_stage, "evaluate champion and challenger")
    gate: Callable[..., Any] = _stage(gate_stage, "gate decision")
    register: Callable[..., str] = _stage(register_stage, "register (+ promote) in MLflow")
    report: Callable[..., Any] = _stage(report_stage, "drift + accuracy reports")

    def wrapped(self, wrap: Callable[[str, Callable[..., Any]], Callable[..., Any]]) -> "Stages":
        """The same stages, each replaced by ``wrap(name, function)`` (e.g. a Prefect task)."""
        return Stages(**{name: wrap(name, getattr(self, name)) for name in STAGE_ORDER})


STAGE_ORDER: tuple[str, ...] = tuple(f.name for f in fields(Stages))
STAGE_TEXT: dict[str, str] = {f.name: f.metadata["text"] for f in fields(Stages)}
PLAIN = Stages()


@dataclass
class CycleSummary:
    ingest: dict[str, Any]
    champion_version: str
    challenger_version: str | None
    promoted: bool
    reason: str
    metrics: dict[str, dict]
    report_uri: str | None
    mlflow_run_id: str | None = None
    mix: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    finetune: dict[str, Any] = field(default_factory=dict)   # best step, blend weight and the blend table
    verdict: str | None = None     # the gate's: "promoted", "refused" or "no decision" (None: no challenger)

    def to_json(self) -> str:
        """DESIGN.md's ``retrain --json`` object: the ingest keys plus the cycle's."""
        d = {**self.ingest, **{k: v for k, v in asdict(self).items() if k != "ingest"}}
        return json.dumps(d, sort_keys=True, default=str)


def _ignore(stage: str) -> None:
    return None


def run_cycle(storage: Storage, home: str, base_dir: str, cfg: CycleConfig | None = None, log: Log = print,
              stages: Stages = PLAIN, on_stage: Callable[[str], None] = _ignore) -> CycleSummary:
    """One full cycle, stage by stage down the data path. Returns the ``retrain --json`` summary.

    ``stages``: the stage functions (plain, or wrapped as Prefect tasks by the flow);
    ``on_stage(name)`` is called before each stage starts (progress, lock heartbeat).
    """
    cfg, clock, s = cfg or CycleConfig(), tracking.Clock(), stages

    def stage(name: str) -> Callable[..., Any]:
        on_stage(name)
        return getattr(s, name)

    setup_mlflow(home)
    registry = Registry()
    champion = stage("champion")(home, base_dir, registry)
    clock.lap("registry")
    ing = stage("ingest")(storage, cfg.ingest, champion)
    clock.lap("ingest")
    split = stage("split")(storage, ing.dataset_version, champion, cfg.since)
    log(f"cycle: champion v{champion.version}, dataset {split.dataset_version}: {split.n_new_train} new train rows, "
        f"{len(split.earlier)} earlier rows")
    if split.n_new_train == 0:
        return _nothing_new(ing, champion, clock)
    manifest = storage.uri(manifest_path(split.dataset_version)) if split.dataset_version else None
    with tracking.cycle_run(f"retrain-{ing.run_id}", split, champion, manifest) as run:
        mix = stage("mix")(storage, split, cfg.mix)
        tracking.log_mix(mix, split, champion, cfg)
        clock.lap("mix")
        ft = stage("finetune")(champion, mix, cfg.finetune, cfg.gate.regression_tolerance,
                               work_dir(home, split, champion, cfg), tracking.log_eval, log)
        tracking.log_finetune(ft)
        clock.lap("finetune")
        sets, suite_info = stage("eval_sets")(storage, split, home, cfg.regression)
        scores = stage("evaluate")({"champion": champion.model_dir, "challenger": ft.model_dir}, sets)
        tracking.log_eval_sets(sets)
        clock.lap("evaluate")
        decision = stage("gate")(scores, cfg.gate, cfg.forced_by)
        log(f"gate: {decision.reason}")
        metrics = metrics_of(scores, [x.name for x in sets if x.name != "regression" and x.labels])
        tracking.log_decision(decision, metrics, suite_info)
        clock.lap("gate")
        version = stage("register")(registry, ft.model_dir, decision, split.dataset_version, run.info.run_id)
        _keep_recent_work_dirs(home, ft.model_dir, log)
        clock.lap("register")
        meta = {"dataset_version": split.dataset_version, "models": {"champion": champion.version, "challenger": version},
                **tracking.run_links(run), "ingest_run_id": ing.run_id, "n_quarantined": ing.n_quarantined,
                "n_review": ing.n_review, "quarantine_reasons": ing.quarantine_reasons}
        uri, files = stage("report")(storage, f"retrain-{ing.run_id}", split, sets, scores, decision, meta,
                                     os.path.join(home, "evidently"), cfg.embed_evidently, cfg.gate.alpha)
        tracking.log_reports(files)
        clock.lap("reports")
        tracking.log_timings(clock.times)
    return CycleSummary(json.loads(ing.to_json()), champion.version, version, decision.promote, decision.reason,
                        metrics, uri, run.info.run_id, mix.info["counts"], decision.to_dict(), clock.times,
                        {"best_step": ft.best_step, "steps": ft.steps, "stopped_by": ft.stopped_by,
                         "train_s": round(ft.train_s, 1), "blend_alpha": ft.alpha, "blends": ft.blends},
                        decision.verdict)


def _nothing_new(ing: IngestSummary, champion: Champion, clock: tracking.Clock) -> CycleSummary:
    reason = f"nothing to learn: no new accepted train-split corrections since champion v{champion.version}"
    return CycleSummary(json.loads(ing.to_json()), champion.version, None, False, reason, {}, None,
                        timings_s=clock.times)


def _keep_recent_work_dirs(home: str, model_dir: str, log: Log) -> None:
    """This cycle's work directory becomes the most recent; older ones beyond the newest 3 go."""
    os.utime(os.path.dirname(model_dir))
    for gone in prune_work_dirs(home):
        log(f"cycle: removed old work directory {gone}")
