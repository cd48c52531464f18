"""What a cycle records in MLflow: its recipe, the fine-tune's curve, the gate's decision, reports, stage times."""
from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, Iterator

import mlflow

from loop.config import CycleConfig
from loop.gate import EvalData, GateDecision
from loop.mix import Mix
from loop.stages import Champion, DataSplit
from recognizer.finetune import FinetuneResult
from recognizer.train import DEFAULT_THREADS


class Clock:
    """Wall time per step of the cycle, seconds (``lap(name)`` closes a step)."""

    def __init__(self) -> None:
        self.t, self.times = time.perf_counter(), {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = round(self.times.get(name, 0.0) + now - self.t, 2)
        self.t = now


@contextmanager
def cycle_run(run_name: str, split: DataSplit, champion: Champion, manifest_uri: str | None = None) -> Iterator[Any]:
    """The MLflow run a cycle records into (tagged with the dataset and champion versions; the dataset
    version is also the run's input, ``log_dataset``)."""
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags({"tagloop.kind": "retrain", "dataset_version": split.dataset_version or "",
                         "champion_version": champion.version})
        if split.dataset_version and manifest_uri:
            log_dataset(split.dataset_version, manifest_uri)
        yield run


def run_links(run: Any) -> dict[str, str]:
    """Where the report finds this MLflow run: its id, the tracking URI and, on an MLflow server, the run's page."""
    uri = mlflow.get_tracking_uri()
    out = {"mlflow_run_id": run.info.run_id, "mlflow_tracking_uri": uri}
    if uri.startswith(("http://", "https://")):
        out["mlflow_run_url"] = f"{uri.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    return out


def log_dataset(dataset_version: str, manifest_uri: str) -> None:
    """The dataset version as the run's MLflow input (context ``training``): name ``corrections``, digest the
    version (the manifest's content hash), source the manifest in the bucket. Only its description is
    logged, not its rows (they stay in the bucket)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():         # a plain path "can be interpreted in multiple ways": all local
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(manifest_uri)
    mlflow.log_input(MetaDataset(source, name="corrections", digest=dataset_version), context="training",
                     tags={"dataset_version": dataset_version})


def _flat(prefix: str, d: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(f"{prefix}{k}.", v))
        else:
            out[f"{prefix}{k}"] = v
    return out


def log_mix(mix: Mix, split: DataSplit, champion: Champion, cfg: CycleConfig) -> None:
    mlflow.log_params(_flat("", {"dataset_version": split.dataset_version, "champion_version": champion.version,
                                 "mix": mix.info["config"], "mix_counts": mix.info["counts"],
                                 "train": asdict(cfg.finetune.train), "patience": cfg.finetune.patience,
                                 "torch_threads": cfg.finetune.train.threads or DEFAULT_THREADS,
                                 "gate": asdict(cfg.gate), "since": cfg.since}))
    mlflow.log_dict(mix.info, "mix.json")


def log_eval(rec: dict) -> None:
    """One validation check of the fine-tune (its ``on_eval`` hook)."""
    mlflow.log_metrics({f"val_{k}": float(v) for k, v in rec.items() if k in ("exact_match", "norm_edit_distance")}
                       | ({"train_ctc": float(rec["ctc"])} if rec.get("ctc") is not None else {}), step=int(rec["step"]))


def log_finetune(ft: FinetuneResult) -> None:
    mlflow.log_metrics({"best_step": ft.best_step, "steps_run": ft.steps, "train_s": ft.train_s,
                        "train_img_per_s": ft.img_per_s, "blend_alpha": ft.alpha})
    mlflow.set_tag("finetune.stopped_by", ft.stopped_by)
    if ft.blends:
        mlflow.log_dict({"blends": ft.blends, "alpha": ft.alpha}, "blends.json")


def log_eval_sets(sets: list[EvalData]) -> None:
    mlflow.set_tags({f"eval.{x.name}.fingerprint": x.fingerprint() for x in sets})


def log_decision(decision: GateDecision, metrics: dict[str, dict], suite_info: dict) -> None:
    """Exact match per role and set (an empty set logs nothing: absent, never 0.0), the overall paired
    test's numbers (``gate.*``), tags and ``gate.json``."""
    em = {f"{role}.{n}.exact_match": x["exact_match"] for role, m in metrics.items() for n, x in m["sets"].items()}
    ov = decision.to_dict()["overall"]
    test = {"gate.n": ov.get("n"), "gate.diff": ov.get("diff"), "gate.p": ov.get("p"), "gate.mde": ov.get("mde"),
            **dict(zip(("gate.ci_low", "gate.ci_high"), ov.get("ci") or ()))}
    mlflow.log_metrics({k: float(v) for k, v in {**em, **test}.items() if v is not None})
    _tag_decision(decision)
    mlflow.log_dict({**decision.to_dict(), "regression_suite": suite_info}, "gate.json")


_MARK = {True: "ok", False: "FAILED", None: "not judged"}


def _tag_decision(decision: GateDecision) -> None:
    tags = {"gate.promoted": str(decision.promote).lower(), "gate.verdict": decision.verdict,
            "gate.reason": decision.reason[:5000],
            "mlflow.note.content": f"**Gate: {decision.verdict}.** {decision.reason}\n\n"
                                   + "\n".join(f"- {_MARK[c.passed]} {c.name}: {c.detail}" for c in decision.checks)}
    if decision.forced_by:
        tags["gate.forced_by"] = decision.forced_by
    mlflow.set_tags(tags)


def log_reports(files: dict[str, bytes]) -> None:
    for name, data in files.items():
        mlflow.log_text(data.decode("utf-8", "replace"), f"reports/{name}")


def log_timings(times: dict[str, float]) -> None:
    mlflow.log_metrics({f"stage_s.{k}": v for k, v in times.items()})
