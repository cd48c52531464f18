"""One cycle end to end on a local bucket: a poisoned batch is refused, --force promotes, rollback undoes."""
from __future__ import annotations

import json
import random

import mlflow
import pytest

from recognizer.checkpoint import base_model_dir
from ingest.pipeline import IngestConfig
from ingest_helpers import add, png_bytes
from loop.config import CycleConfig
from loop.cycle import run_cycle
from loop.mix import MixConfig
from loop.registry import Registry
from loop.regression import RegressionConfig
from recognizer.finetune import FinetuneConfig
from recognizer.train import TrainConfig


def _tiny_cycle(**kw) -> CycleConfig:
    return CycleConfig(
        mix=MixConfig(min_synthetic=24, min_val=16, workers=1, anchor=44),
        finetune=FinetuneConfig(train=TrainConfig(steps=20, batch_size=16, lr=1e-3, warmup=2, eval_every=10,
                                                  ckpt_every=10, workers=0)),
        regression=RegressionConfig(per_family=3, min_per_condition=1),
        ingest=IngestConfig(min_age_s=0, max_failed_share=1.0), embed_evidently=False, **kw)


@pytest.fixture(scope="module")
def poisoned_crops():
    """60 rendered crops whose labels are shuffled among themselves (a poisoned batch)."""
    from synth.dataset import iter_crops

    crops = list(iter_crops(60, seed=21))
    labels = [c.label for c in crops]
    random.Random(0).shuffle(labels)
    return [(png_bytes(c.image), lab) for c, lab in zip(crops, labels)]


@pytest.mark.slow
def test_poisoned_batch_is_refused_then_forced_then_rolled_back(tagloop_home, tmp_path, poisoned_crops):
    from flows.cli import main
    from bucket.storage import open_storage

    storage = open_storage(f"file://{tmp_path / 'bucket'}")
    (tmp_path / "bucket").mkdir()
    for i, (img, lab) in enumerate(poisoned_crops):
        add(storage, f"p{i:03d}", img, lab, confidence=0.5)
    before = {o.name: storage.read(o.name) for o in storage.list("corrections/")}
    logs: list[str] = []
    s = run_cycle(storage, tagloop_home, base_model_dir(), _tiny_cycle(), log=logs.append)
    reg = Registry()
    assert not s.promoted and s.challenger_version == "2" and s.champion_version == "1"
    # refused (a check failed: each named) or, with 12 shuffled held-out crops, no decision (the undecided
    # overall check named with its numbers); never promoted
    failed = [c for c in s.gate["checks"] if c["passed"] is False]
    assert s.verdict == s.gate["verdict"] == ("refused" if failed else "no decision")
    if failed:
        assert s.reason.startswith("not promoted") and all(f"{c['name']} failed" in s.reason for c in failed[:4])
    else:
        assert s.reason.startswith("no decision: keep the champion, n too small: overall ")
        assert "minimum detectable effect at this n" in s.reason
    assert reg.aliases() == {"champion": "1", "challenger": "2", "previous-champion": None}
    out = json.loads(s.to_json())
    for key in ("dataset_version", "n_new", "n_accepted", "n_quarantined", "quarantine_reasons",
                "challenger_version", "promoted", "verdict", "reason", "metrics", "report_uri"):
        assert key in out
    assert out["n_new"] == 60 and set(out["metrics"]) == {"champion", "challenger"}
    assert "regression" in out["metrics"]["champion"]["sets"]
    assert out["metrics"]["champion"]["sets"]["heldout"] == {"n": 0, "exact_match": None, "norm_edit_distance": None}
    assert out["verdict"] == s.verdict and out["gate"]["overall"]["n"] == out["metrics"]["champion"]["overall_real"]["n"]
    run = mlflow.get_run(s.mlflow_run_id)
    assert run.data.tags["gate.promoted"] == "false" and run.data.tags["gate.reason"] == s.reason
    assert run.data.tags["gate.verdict"] == s.verdict and f"**Gate: {s.verdict}.**" in run.data.tags["mlflow.note.content"]
    assert "champion.heldout.exact_match" not in run.data.metrics              # empty: absent, not 0.0
    assert run.data.params["dataset_version"] == s.ingest["dataset_version"] and "mix.new" in run.data.params
    (inp,) = run.inputs.dataset_inputs                                         # the dataset version, as an input
    assert inp.dataset.digest == s.ingest["dataset_version"] and "manifest.parquet" in inp.dataset.source
    history = mlflow.MlflowClient().get_metric_history(s.mlflow_run_id, "val_exact_match")
    assert [m.step for m in history] == [0, 10, 20]
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(s.mlflow_run_id, "reports")}
    assert {"reports/accuracy.json", "reports/accuracy.html", "reports/summary.json"} <= arts
    assert storage.exists(s.report_uri.split(str(tmp_path / "bucket") + "/", 1)[-1] + "accuracy.html")

    forced = run_cycle(storage, tagloop_home, base_model_dir(), _tiny_cycle(forced_by="kim"), log=logs.append)
    assert forced.promoted and "forced by kim" in forced.reason
    assert any("resumed from step 20" in line for line in logs)       # same data + recipe: the run is reused
    assert forced.challenger_version == "2" and reg.versions() == ["1", "2"]   # same candidate: not registered twice
    assert reg.aliases() == {"champion": "2", "challenger": "2", "previous-champion": "1"}
    assert reg.version_tags("2")["forced_by"] == "kim"
    assert mlflow.get_run(forced.mlflow_run_id).data.tags["gate.forced_by"] == "kim"

    assert main(["rollback"]) == 0
    assert reg.aliases()["champion"] == "1"
    assert {o.name: storage.read(o.name) for o in storage.list("corrections/")} == before


def test_old_work_directories_are_pruned(tmp_path):
    import os

    from loop.stages import prune_work_dirs

    work = tmp_path / "work"
    for i in range(5):
        d = work / f"finetune-{i:016d}" / "final"
        d.mkdir(parents=True)
        (d / "model.safetensors").write_bytes(b"x" * 10)
        os.utime(work / f"finetune-{i:016d}", (1000 + i, 1000 + i))
    (work / "other").mkdir()
    removed = prune_work_dirs(str(tmp_path), keep=3)
    assert sorted(os.path.basename(r) for r in removed) == ["finetune-0000000000000000", "finetune-0000000000000001"]
    assert sorted(os.listdir(work)) == ["finetune-0000000000000002", "finetune-0000000000000003",
                                        "finetune-0000000000000004", "other"]
    assert prune_work_dirs(str(tmp_path / "nowhere")) == []
