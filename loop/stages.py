"""The learning cycle's stages: plain functions, one per arrow of the data path.

champion -> ingest -> dataset split -> training mix -> fine-tune -> evaluation sets ->
evaluate both models -> gate -> register (+ promote) -> reports. ``loop.cycle`` calls them
in that order (and the retrain flow calls the same functions wrapped as Prefect tasks).
Consistency: aliases move only after the gate decided and the challenger's registration
succeeded; a fine-tune that died resumes from its checkpoint in its work directory
(keyed by dataset version, champion version and recipe).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Callable

import pandas as pd

from bucket.storage import Storage
from crops.slices import real_slices
from ingest import dataset
from ingest.pipeline import IngestConfig, IngestSummary, run_ingest
from ingest.review import champion_reader
from loop.config import CycleConfig
from loop.gate import (AWAITING, REGRESSION, EvalData, GateConfig, GateDecision, Reader, SetScore, await_approval, decide,
                       force, score_sets)
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
    """Held-out rows the champion had (``heldout``), new held-out rows (``new_batch``), the regression suite,
    each crop downloaded and decoded once."""
    old = split.earlier[split.earlier["split"] == "heldout"]
    new = split.new[split.new["split"] == "heldout"]
    suite, info = load_suite(home, reg_cfg)
    sets = [_real_set("heldout", old, storage.read), _real_set("new_batch", new, storage.read), suite]
    for x in sets:
        x.arrays()                     # read and decoded once: both models and the report use these
    return sets, info


def read_with(model_dir: str) -> Reader:
    """An evaluation set -> [(text, confidence)] per crop, with the serving predictor of ``model_dir``."""
    from recognizer.predict import Predictor

    predictor = Predictor(model_dir)

    def read(data: EvalData) -> list[tuple[str, float]]:
        return [(p.text, p.confidence) for p in predictor.predict_arrays(data.arrays())]

    return read


def evaluate_stage(model_dirs: dict[str, str], sets: list[EvalData]) -> dict[str, dict[str, SetScore]]:
    """Each role's model reads every set (fingerprinted as it is read)."""
    return {role: score_sets(read_with(d), sets) for role, d in model_dirs.items()}


def gate_stage(scores: dict[str, dict[str, SetScore]], cfg: GateConfig, forced_by: str | None = None) -> GateDecision:
    decision = decide(scores["champion"], scores["challenger"], cfg)
    if forced_by:
        return force(decision, forced_by)
    return await_approval(decision) if cfg.require_approval else decision


def register_stage(registry: Registry, model_dir: str, decision: GateDecision, dataset_version: str | None,
                   run_id: str) -> str:
    """Log + register the challenger (alias ``challenger``); promote it when the gate said so, or, in approval
    mode, tag it ``approval=pending`` with the champion it was judged against (``Registry.approve``).

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
    if decision.verdict == AWAITING:
        registry.await_approval(version, decision.reason)
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
                 workspace_dir: str, embed_evidently: bool, alpha: float = 0.05) -> tuple[str, dict[str, bytes]]:
    """Drift (earlier vs new rows) + accuracy (both models on the gate's sets, the gate's checks with their
    ``1 - alpha`` intervals, earlier nights from the bucket) -> bucket (pages, index, snapshots) + workspace."""
    from monitoring.accuracy import EvalSet
    from monitoring.history import read_history
    from monitoring.report import build_reports, publish_reports
    from monitoring.table import table_from_manifest

    evs = [EvalSet(s.name, s.labels, {r: scores[r][s.name].predictions for r in scores},
                   {r: scores[r][s.name].confidences for r in scores}, s.slices, sample_ids=s.ids,
                   images=s.arrays() if len(s.images) <= 2000 else None, synthetic=s.name == REGRESSION)
           for s in sets if s.labels]
    reference, meta = drift_reference(split, sets, meta)
    reports = build_reports(run_id, reference=reference, current=table_from_manifest(split.new),
                            sets=evs, gate=gate_evidence(decision, alpha), meta=meta, embed_evidently=embed_evidently,
                            history=read_history(storage, exclude=run_id))
    publish_reports(reports, storage, workspace_dir)
    return storage.uri(f"reports/{run_id}/"), reports.files


def gate_evidence(decision: GateDecision, alpha: float = 0.05) -> dict:
    """The gate's decision as the report shows it: verdict, reason, the overall test and every check, each
    check with numbers given its ``1 - alpha`` interval of the difference (``loop.paired.effect_ci``)."""
    from loop.paired import Paired, effect_ci

    d = decision.to_dict()
    checks = []
    for c in d["checks"]:
        s = c["stats"]
        if s.get("n") and s.get("ci") is None and s.get("gained") is not None:
            pair = Paired(s["n"], round(s["champion_exact_match"] * s["n"]), round(s["challenger_exact_match"] * s["n"]),
                          s["gained"], s["lost"])
            s = {**s, "ci": list(effect_ci(pair, alpha) or ())}
        checks.append({**c, "stats": s})
    return {"promoted": decision.promote, "verdict": decision.verdict, "reason": decision.reason,
            "forced_by": decision.forced_by, "overall": d["overall"], "checks": checks, "alpha": alpha}


def drift_reference(split: DataSplit, sets: list[EvalData], meta: dict, min_rows: int = 200) -> tuple[pd.DataFrame, dict]:
    """What tonight's corrections are compared with: the previous window, i.e. the champion's dataset rows of the
    latest ingest runs (as many runs, newest first, as make ``min_rows``; all earlier rows when they carry no
    ingest run); on the first night (no earlier rows) the synthetic regression suite, rendered like the crops
    the champion was trained on. ``meta["drift_reference"]`` says which."""
    from monitoring.table import table_from_crops, table_from_manifest

    if not split.earlier.empty:
        rows, what = previous_window(split.earlier, min_rows)
        return table_from_manifest(rows), {**meta, "drift_reference": what}
    suite = next((s for s in sets if s.name == REGRESSION and s.labels), None)
    if suite is None:
        return table_from_manifest(split.earlier), meta
    table = table_from_crops(suite.arrays(), suite.labels, sample_ids=suite.ids)
    return table, {**meta, "drift_reference": f"first night: the synthetic regression suite ({len(table)} renders, "
                                              "the champion's training distribution)"}


def previous_window(earlier: pd.DataFrame, min_rows: int = 200) -> tuple[pd.DataFrame, str]:
    """The rows of the latest ingest runs of ``earlier`` (newest first until ``min_rows``) and a line saying so."""
    runs = earlier["ingest_run"].dropna().astype(str) if "ingest_run" in earlier else pd.Series(dtype=str)
    if runs.empty:
        return earlier, f"earlier corrections ({len(earlier)})"
    counts = runs.value_counts()
    chosen: list[str] = []
    for run in sorted(counts.index, reverse=True):       # run ids start with their UTC time stamp
        chosen.append(run)
        if counts[chosen].sum() >= min_rows:
            break
    rows = earlier[earlier["ingest_run"].astype(str).isin(chosen)].reset_index(drop=True)
    span = chosen[0] if len(chosen) == 1 else f"{chosen[-1]} .. {chosen[0]}"
    return rows, f"previous window: {len(rows)} corrections of ingest run{'s' if len(chosen) > 1 else ''} {span}"


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
