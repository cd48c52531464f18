"""One learning cycle as plain stage functions (a Prefect flow calls the same stages as tasks).

ingest -> champion -> dataset split -> mix -> fine-tune -> evaluate both models on the
same sets -> gate -> register (+ promote) -> reports. ``run_cycle`` calls them in order.
Consistency: aliases move only after the gate decided and the challenger's registration
succeeded; a fine-tune that died resumes from its checkpoint in the work directory
(keyed by dataset version, champion version and config).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import mlflow
import pandas as pd

from ingest import dataset
from ingest.pipeline import IngestConfig, IngestSummary, run_ingest
from ingest.review import champion_reader
from bucket.storage import Storage
from crops.slices import real_slices
from loop.gate import EvalData, GateConfig, GateDecision, SetScore, decide, force, score_sets
from loop.config import CycleConfig
from loop.mix import Mix, MixConfig, build_mix
from loop.registry import CHALLENGER, CHAMPION, Registry, bootstrap, setup_mlflow
from loop.regression import RegressionConfig, load_suite
from recognizer.checkpoint import weights_sha256
from recognizer.finetune import FinetuneConfig, FinetuneResult, finetune

Log = Callable[[str], None]


@dataclass
class Champion:
    version: str
    model_dir: str
    dataset_version: str | None        # the dataset it was trained on (None: the base model)


@dataclass
class DataSplit:
    """Rows of the current dataset version relative to what the champion was trained on."""

    dataset_version: str | None
    new: pd.DataFrame                  # rows the champion has not seen (train + held-out)
    earlier: pd.DataFrame              # rows of the champion's dataset

    @property
    def n_new_train(self) -> int:
        return int((self.new["split"] == "train").sum())


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

    def to_json(self) -> str:
        """DESIGN.md's ``retrain --json`` object: the ingest keys plus the cycle's."""
        d = {**self.ingest, **{k: v for k, v in asdict(self).items() if k != "ingest"}}
        return json.dumps(d, sort_keys=True, default=str)


# -- stages ----------------------------------------------------------------------------------
def champion_stage(home: str, base_dir: str, registry: Registry | None = None) -> Champion:
    """MLflow set up, the base model registered on first use, the champion downloaded."""
    setup_mlflow(home)
    registry = registry or Registry()
    bootstrap(registry, base_dir)
    version = registry.alias(CHAMPION)
    if version is None:
        raise RuntimeError(f"{registry.name} has versions but no '{CHAMPION}' alias; set one in MLflow")
    tags = registry.version_tags(version)
    return Champion(version, registry.download(version, os.path.join(home, "cache", "models")),
                    tags.get("dataset_version") or None)


def ingest_stage(storage: Storage, cfg: IngestConfig, champion: Champion) -> IngestSummary:
    """``ingest.pipeline.run_ingest`` with the champion screening labels for review."""
    return run_ingest(storage, cfg, champion_reader(champion.model_dir))


def split_stage(storage: Storage, dataset_version: str | None, champion: Champion, since: str | None = None) -> DataSplit:
    """New rows = rows of ``dataset_version`` absent from the champion's dataset (and created since ``since``)."""
    current = dataset.read_manifest(storage, dataset_version)
    seen: set[str] = set()
    if champion.dataset_version and storage.exists(dataset.manifest_path(champion.dataset_version)):
        seen = set(dataset.read_manifest(storage, champion.dataset_version)["sample_id"])
    is_new = ~current["sample_id"].isin(seen)
    if since:
        is_new &= current["created_at"].fillna("").astype(str) >= since
    return DataSplit(dataset_version, current[is_new].reset_index(drop=True),
                     current[current["sample_id"].isin(seen)].reset_index(drop=True))


def mix_stage(storage: Storage, split: DataSplit, cfg: MixConfig) -> Mix:
    return build_mix(split.new, split.earlier, storage.read, cfg)


def finetune_stage(champion: Champion, mix: Mix, cfg: FinetuneConfig, tolerance: float, work_dir: str,
                   on_eval: Callable[[dict], None] | None = None, log: Log = print) -> FinetuneResult:
    """Fine-tune the champion on the mix; the blend may lose at most ``tolerance`` on the anchor
    (the gate's ``regression_tolerance``: one allowance for regression, stated once)."""
    return finetune(champion.model_dir, mix.train, mix.val, cfg, work_dir,
                    meta={"champion_version": champion.version}, on_eval=on_eval, log=log, anchor=mix.anchor,
                    anchor_tolerance=tolerance)


def _real_set(name: str, rows: pd.DataFrame, read: Callable[[str], bytes]) -> EvalData:
    labels = [str(x) for x in rows["label"]]
    return EvalData(name, list(rows["sample_id"]), labels, [read(o) for o in rows["source_object"]],
                    real_slices(labels, rows))


def eval_sets_stage(storage: Storage, split: DataSplit, home: str, reg_cfg: RegressionConfig) -> tuple[list[EvalData], dict]:
    """Held-out rows the champion had (``heldout``), new held-out rows (``new_batch``), the regression suite."""
    old = split.earlier[split.earlier["split"] == "heldout"]
    new = split.new[split.new["split"] == "heldout"]
    suite, info = load_suite(home, reg_cfg)
    return [_real_set("heldout", old, storage.read), _real_set("new_batch", new, storage.read), suite], info


def read_with(model_dir: str) -> Callable[[list[bytes]], list[tuple[str, float]]]:
    """Encoded crops -> [(text, confidence)] with the serving predictor of ``model_dir``."""
    from recognizer.predict import Predictor
    from crops.image import decode_image

    predictor = Predictor(model_dir)

    def read(images: list[bytes]) -> list[tuple[str, float]]:
        return [(p.text, p.confidence) for p in predictor.predict_arrays([decode_image(b) for b in images])]

    return read


def evaluate_stage(model_dirs: dict[str, str], sets: list[EvalData]) -> dict[str, dict[str, SetScore]]:
    """Each role's model reads every set (fingerprinted as it is read)."""
    return {role: score_sets(read_with(d), sets) for role, d in model_dirs.items()}


def gate_stage(scores: dict[str, dict[str, SetScore]], cfg: GateConfig, forced_by: str | None = None) -> GateDecision:
    decision = decide(scores["champion"], scores["challenger"], cfg)
    return force(decision, forced_by) if forced_by else decision


def register_stage(registry: Registry, model_dir: str, decision: GateDecision, dataset_version: str | None,
                   run_id: str) -> str:
    """Log + register the challenger (alias ``challenger``); promote it when the gate said so.

    Idempotent: a rerun after a crash finds the version already registered for the same dataset
    version and weights (tag ``candidate_key``) and reuses it, so no model is registered twice.
    """
    from loop.pyfunc import log_recognizer

    key = f"{dataset_version or ''}:{weights_sha256(model_dir)}"
    version = registry.find_version("candidate_key", key)
    if version is None:
        info = log_recognizer(model_dir)
        version = registry.register(info.model_uri, {"dataset_version": dataset_version or "", "run_id": run_id,
                                                     "gate_reason": decision.reason[:4000], "candidate_key": key})
    registry.set_alias(CHALLENGER, version)
    if decision.promote and registry.alias(CHAMPION) != version:
        registry.promote(version, decision.reason, decision.forced_by)
    return version


def metrics_of(scores: dict[str, dict[str, SetScore]], real: list[str]) -> dict[str, dict]:
    """Per role: pooled exact match on the real sets and the TextMatch summary of every set."""
    from recognizer.metrics import TextMatch

    out = {}
    for role, sets in scores.items():
        tm = TextMatch()
        for n in real:
            for p, lab in zip(sets[n].predictions, sets[n].labels):
                tm.update(p, lab)
        out[role] = {"overall_real": tm.summary(), "sets": {n: s.summary() for n, s in sets.items()}}
    return out


def report_stage(storage: Storage, run_id: str, split: DataSplit, sets: list[EvalData],
                 scores: dict[str, dict[str, SetScore]], decision: GateDecision, meta: dict,
                 workspace_dir: str, embed_evidently: bool) -> tuple[str, dict[str, bytes]]:
    """Drift (earlier vs new rows) + accuracy (both models on the gate's sets) -> bucket + workspace."""
    from monitoring.accuracy import EvalSet
    from monitoring.report import build_reports, publish_reports
    from monitoring.table import table_from_manifest

    from crops.image import decode_image

    evs = [EvalSet(s.name, s.labels, {r: scores[r][s.name].predictions for r in scores},
                   {r: scores[r][s.name].confidences for r in scores}, s.slices, sample_ids=s.ids,
                   images=[decode_image(b) for b in s.images] if len(s.images) <= 2000 else None)
           for s in sets if s.labels]
    reports = build_reports(run_id, reference=table_from_manifest(split.earlier), current=table_from_manifest(split.new),
                            sets=evs, gate={"promoted": decision.promote, "reason": decision.reason},
                            meta=meta, embed_evidently=embed_evidently)
    publish_reports(reports, storage, workspace_dir)
    return storage.uri(f"reports/{run_id}/"), reports.files


# -- the whole cycle without Prefect --------------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.t, self.times = time.perf_counter(), {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = round(self.times.get(name, 0.0) + now - self.t, 2)
        self.t = now


def work_dir(home: str, split: DataSplit, champion: Champion, cfg: CycleConfig) -> str:
    """Fine-tune directory keyed by dataset version, champion and recipe (a rerun resumes there)."""
    key = json.dumps([split.dataset_version, champion.version, asdict(cfg.mix), asdict(cfg.finetune),
                      cfg.gate.regression_tolerance, cfg.since],
                     sort_keys=True, default=str)
    return os.path.join(home, "work", "finetune-" + hashlib.sha256(key.encode()).hexdigest()[:16])


def prune_work_dirs(home: str, keep: int = 3) -> list[str]:
    """Delete all but the ``keep`` most recently used fine-tune work directories; returns those removed.

    A work directory matters only to a rerun of its own cycle (resume, the Prefect cache); its
    result is registered in MLflow by then. Called after a cycle registered its challenger.
    """
    import shutil

    root = os.path.join(home, "work")
    if not os.path.isdir(root):
        return []
    dirs = sorted((os.path.join(root, d) for d in os.listdir(root) if d.startswith("finetune-")),
                  key=os.path.getmtime, reverse=True)
    for d in dirs[keep:]:
        shutil.rmtree(d, ignore_errors=True)
    return dirs[keep:]


def _flat(prefix: str, d: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(f"{prefix}{k}.", v))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _log_eval(rec: dict) -> None:
    mlflow.log_metrics({f"val_{k}": float(v) for k, v in rec.items() if k in ("exact_match", "norm_edit_distance")}
                       | ({"train_ctc": float(rec["ctc"])} if rec.get("ctc") is not None else {}), step=int(rec["step"]))


def _nothing_new(ing: IngestSummary, champion: Champion, clock: _Clock) -> CycleSummary:
    reason = f"nothing to learn: no new accepted train-split corrections since champion v{champion.version}"
    return CycleSummary(json.loads(ing.to_json()), champion.version, None, False, reason, {}, None,
                        timings_s=clock.times)


@dataclass(frozen=True)
class Stages:
    """The stage functions one cycle calls, in data-path order.

    ``run_cycle`` is the one sequence; the Prefect flow passes the same functions wrapped as
    tasks (``tasks.retrain.TASK_STAGES``), so the flow and the plain cycle cannot drift apart.
    """

    champion: Callable[..., Champion] = champion_stage
    ingest: Callable[..., IngestSummary] = ingest_stage
    split: Callable[..., DataSplit] = split_stage
    mix: Callable[..., Mix] = mix_stage
    finetune: Callable[..., FinetuneResult] = finetune_stage
    eval_sets: Callable[..., tuple[list[EvalData], dict]] = eval_sets_stage
    evaluate: Callable[..., dict[str, dict[str, SetScore]]] = evaluate_stage
    gate: Callable[..., GateDecision] = gate_stage
    register: Callable[..., str] = register_stage
    report: Callable[..., tuple[str, dict[str, bytes]]] = report_stage


PLAIN = Stages()
STAGE_ORDER = ("champion", "ingest", "split", "mix", "finetune", "eval_sets", "evaluate", "gate", "register", "report")


def _ignore(stage: str) -> None:
    return None


def run_cycle(storage: Storage, home: str, base_dir: str, cfg: CycleConfig | None = None, log: Log = print,
              stages: Stages = PLAIN, on_stage: Callable[[str], None] = _ignore) -> CycleSummary:
    """One full cycle; see the module docstring. Returns the ``retrain --json`` summary.

    ``stages``: the stage functions (plain, or wrapped as Prefect tasks by the flow);
    ``on_stage(name)`` is called before each stage starts (progress, lock heartbeat).
    """
    cfg, clock, s = cfg or CycleConfig(), _Clock(), stages
    setup_mlflow(home)
    registry = Registry()
    on_stage("champion")
    champion = s.champion(home, base_dir, registry)
    clock.lap("registry")
    on_stage("ingest")
    ing = s.ingest(storage, cfg.ingest, champion)
    clock.lap("ingest")
    on_stage("split")
    split = s.split(storage, ing.dataset_version, champion, cfg.since)
    log(f"cycle: champion v{champion.version}, dataset {split.dataset_version}: {split.n_new_train} new train rows, "
        f"{len(split.earlier)} earlier rows")
    if split.n_new_train == 0:
        return _nothing_new(ing, champion, clock)
    with mlflow.start_run(run_name=f"retrain-{ing.run_id}") as run:
        mlflow.set_tags({"tagloop.kind": "retrain", "dataset_version": split.dataset_version or "",
                         "champion_version": champion.version})
        on_stage("mix")
        mix = s.mix(storage, split, cfg.mix)
        _log_mix(mix, split, champion, cfg)
        clock.lap("mix")
        on_stage("finetune")
        ft = s.finetune(champion, mix, cfg.finetune, cfg.gate.regression_tolerance,
                        work_dir(home, split, champion, cfg), _log_eval, log)
        mlflow.log_metrics({"best_step": ft.best_step, "train_img_per_s": ft.img_per_s, "blend_alpha": ft.alpha})
        if ft.blends:
            mlflow.log_dict({"blends": ft.blends, "alpha": ft.alpha}, "blends.json")
        clock.lap("finetune")
        on_stage("eval_sets")
        sets, suite_info = s.eval_sets(storage, split, home, cfg.regression)
        on_stage("evaluate")
        scores = s.evaluate({"champion": champion.model_dir, "challenger": ft.model_dir}, sets)
        mlflow.set_tags({f"eval.{x.name}.fingerprint": x.fingerprint() for x in sets})
        clock.lap("evaluate")
        on_stage("gate")
        decision = s.gate(scores, cfg.gate, cfg.forced_by)
        log(f"gate: {decision.reason}")
        metrics = metrics_of(scores, [x.name for x in sets if x.name != "regression" and x.labels])
        _log_decision(decision, metrics, suite_info)
        clock.lap("gate")
        on_stage("register")
        version = s.register(registry, ft.model_dir, decision, split.dataset_version, run.info.run_id)
        os.utime(os.path.dirname(ft.model_dir))       # this cycle's work directory: the most recent
        for gone in prune_work_dirs(home):
            log(f"cycle: removed old work directory {gone}")
        clock.lap("register")
        on_stage("report")
        meta = {"dataset_version": split.dataset_version, "models": {"champion": champion.version, "challenger": version}}
        uri, files = s.report(storage, f"retrain-{ing.run_id}", split, sets, scores, decision, meta,
                              os.path.join(home, "evidently"), cfg.embed_evidently)
        for name, data in files.items():
            mlflow.log_text(data.decode("utf-8", "replace"), f"reports/{name}")
        clock.lap("reports")
        mlflow.log_metrics({f"stage_s.{k}": v for k, v in clock.times.items()})
    return CycleSummary(json.loads(ing.to_json()), champion.version, version, decision.promote, decision.reason,
                        metrics, uri, run.info.run_id, mix.info["counts"], decision.to_dict(), clock.times,
                        {"best_step": ft.best_step, "steps": ft.steps, "blend_alpha": ft.alpha, "blends": ft.blends})


def _log_mix(mix: Mix, split: DataSplit, champion: Champion, cfg: CycleConfig) -> None:
    mlflow.log_params(_flat("", {"dataset_version": split.dataset_version, "champion_version": champion.version,
                                 "mix": mix.info["config"], "mix_counts": mix.info["counts"],
                                 "train": asdict(cfg.finetune.train), "patience": cfg.finetune.patience,
                                 "gate": asdict(cfg.gate), "since": cfg.since}))
    mlflow.log_dict(mix.info, "mix.json")


def _log_decision(decision: GateDecision, metrics: dict[str, dict], suite_info: dict) -> None:
    mlflow.log_metrics({f"{role}.{n}.exact_match": x["exact_match"] for role, m in metrics.items()
                        for n, x in m["sets"].items()})
    _tag_decision(decision)
    mlflow.log_dict({**decision.to_dict(), "regression_suite": suite_info}, "gate.json")


def _tag_decision(decision: GateDecision) -> None:
    tags = {"gate.promoted": str(decision.promote).lower(), "gate.reason": decision.reason[:5000],
            "mlflow.note.content": f"**Gate: {'promoted' if decision.promote else 'not promoted'}.** {decision.reason}\n\n"
                                   + "\n".join(f"- {'ok' if c.passed else 'FAILED'} {c.name}: {c.detail}"
                                               for c in decision.checks)}
    if decision.forced_by:
        tags["gate.forced_by"] = decision.forced_by
    mlflow.set_tags(tags)
