"""End to end on the GCS emulator: two nightly retrain flow runs, and a bucket outage mid-run.

Night 1 (corrections from a new print domain) promotes; night 2 (a poisoned batch) does not;
the registry, the reports, the quarantine and the summaries agree. The outage test stops the
emulator between the dataset manifest and ingest's commit: the run fails with a clear error,
no alias moves, no dataset version becomes current; once the bucket is back the next run
processes every correction exactly once and registers one model.
"""
from __future__ import annotations

import json
import socket
import time
import uuid
from dataclasses import replace

import pytest

from flows.simulate import DOT_MATRIX_DOMAIN, seed_corrections
from ingest.pipeline import IngestConfig
from loop.config import CycleConfig, cycle_config
from loop.gate import GateConfig
from loop.mix import MixConfig
from loop.regression import RegressionConfig
from recognizer.finetune import FinetuneConfig
from recognizer.checkpoint import base_model_dir

pytestmark = pytest.mark.slow

# Small but real: 150 adapter steps (the nightly LR, 2e-3) on 400 corrections from the new domain, with
# 30 % of their product codes held out (about 100 crops), so the first night wins by a margin no noise
# crosses: +0.107 (0.466 vs 0.359, n=103: 11 crops) where the gate needs +0.005 (1 crop). The fine-tune
# runs with 2 torch threads whatever the machine or the tests before did, so this is the same on every
# run (issue 19); other rounding (the same night with 1 thread) measured +0.049, so the test asks for +0.03.
# The regression suite is tiny here (6 crops per brand family, ~70 crops, one crop = 1.5 points),
# so its overall tolerance is wide and its slices are reported, not checked (min_slice_n);
# the strict defaults are covered by tests/test_loop_gate.py. The poisoned night is kept out on
# the real sets (held-out, overall), not on the suite: the overall paired test finds no win, so the
# verdict is "no decision" (or "refused" had a check failed). The first night's win is significant
# (exact McNemar). The blend choice (recognizer.finetune) gets the same wide tolerance on its
# 110-crop anchor.
GATE = CycleConfig(gate=GateConfig(min_slice_n=1000), regression=RegressionConfig(per_family=6, min_per_condition=1),
                   ingest=IngestConfig(min_age_s=0, heldout_share=0.3), mix=MixConfig(min_val=30, anchor=110),
                   finetune=FinetuneConfig(train=replace(FinetuneConfig().train, threads=2, seconds=None)),
                   embed_evidently=False)
NIGHT = dict(batch_size=32, lr=2e-3, eval_every=50, patience=3, mix_new=0.5, mix_replay=0.1, mix_synthetic=0.4,
             min_synthetic=300, workers=1, regression_tolerance=0.15)
SMALL = {"config": cycle_config(GATE, **{**NIGHT, "steps": 150})}
SHORT = {"config": cycle_config(GATE, **{**NIGHT, "steps": 40, "eval_every": 20})}   # the orchestration is tested


def _new_bucket(project: str = "tagloop-e2e"):
    from google.cloud import storage as gcs

    from bucket.storage import open_storage

    name = f"e2e-{uuid.uuid4().hex[:10]}"
    gcs.Client(project=project).create_bucket(name)
    return open_storage(f"gs://{name}")


def _quarantined(storage, run_id: str) -> dict[str, str]:
    """item key -> primary reason, from ``quarantine/<run>/*/reasons.json``."""
    docs = [json.loads(storage.read(o.name)) for o in storage.list(f"quarantine/{run_id}/")
            if o.name.endswith("/reasons.json")]
    return {d["key"]: d["reasons"][0] for d in docs}


def _check_run_agrees(storage, s) -> dict:
    """Quarantine and the published reports say what the summary says; returns the accuracy report."""
    q = _quarantined(storage, s.ingest["run_id"])
    assert len(q) == s.ingest["n_quarantined"]
    assert {r: list(q.values()).count(r) for r in set(q.values())} == s.ingest["quarantine_reasons"]
    prefix = s.report_uri.split(storage.url + "/", 1)[1]
    acc = json.loads(storage.read(prefix + "accuracy.json"))
    assert storage.exists(prefix + "accuracy.html") and storage.exists(prefix + "summary.json")
    assert acc["gate"]["promoted"] == s.promoted and acc["gate"]["reason"] == s.reason
    assert acc["gate"]["verdict"] == s.verdict
    return acc


def test_two_nights_first_promotes_second_refuses_poison(prefect_api, tagloop_home, gcs_emulator, capsys, monkeypatch):
    """Served by the CRNN alone (``TAGLOOP_PHOTO_READER=off``): with the photo reader serving, the champion
    already reads this domain at ~0.56-0.59 and one small night of adapters adds +0.01..+0.03 (n=121-241:
    "no decision", measured 2026-11-29), so the orchestration of a promotion is tested where a night's
    lift is unambiguous; what the loop gains with the photo reader serving is a benchmark
    (``benchmarks.domain_curve``, README "Learning loop") and the demo (``tagloop demo``)."""
    from flows.retrain import retrain

    monkeypatch.setenv("TAGLOOP_PHOTO_READER", "off")
    from loop.registry import Registry
    from synth.render import RenderConfig

    storage = _new_bucket()
    seed_corrections(storage, 400, "2026-11-20", 1, RenderConfig(**DOT_MATRIX_DOMAIN), base_model_dir(), n_bad=5)
    first = retrain(bucket=storage.url, progress=True, **SMALL)
    out = capsys.readouterr().out
    at = [out.index(f"[{k}/10] ") for k in range(1, 11)]            # every stage, in data-path order
    assert at == sorted(at)
    reg = Registry()
    assert first.promoted, first.reason
    assert (first.champion_version, first.challenger_version) == ("1", "2")
    assert reg.aliases() == {"champion": "2", "challenger": "2", "previous-champion": "1"}
    assert first.ingest["n_new"] == 405 and first.ingest["n_quarantined"] == 5
    assert set(first.ingest["quarantine_reasons"]) >= {"empty_image", "corrupt_image", "bad_sidecar_json",
                                                       "label_charset"}
    champ, chall = (first.metrics[r]["sets"]["new_batch"] for r in ("champion", "challenger"))
    assert champ["n"] >= 80 and chall["exact_match"] - champ["exact_match"] >= 0.03, (champ, chall)  # a real margin
    assert first.finetune["blend_alpha"] > 0                            # the fine-tuned weights serve
    acc = _check_run_agrees(storage, first)
    assert acc["models"] == {"champion": "1", "challenger": "2"}
    assert acc["dataset_version"] == first.ingest["dataset_version"]

    champion_dir = Registry().download("2", f"{tagloop_home}/cache/models")
    seed_corrections(storage, 120, "2026-11-21", 2, RenderConfig(**DOT_MATRIX_DOMAIN), champion_dir, n_bad=5,
                     poison=True)
    second = retrain(bucket=storage.url, **SHORT)
    # never promoted: refused (a check failed, named) or no decision (the undecided overall check named with its
    # numbers; measured: the two-path challenger read all ~145 held-out crops as the champion did, +0.000)
    assert not second.promoted and second.verdict in ("refused", "no decision")
    assert second.reason.startswith("not promoted" if second.verdict == "refused" else
                                    "no decision: keep the champion, n too small: overall ")
    assert (second.champion_version, second.challenger_version) == ("2", "3")
    assert reg.aliases() == {"champion": "2", "challenger": "3", "previous-champion": "1"}
    assert second.ingest["n_new"] == 125 and second.ingest["dataset_version"] != first.ingest["dataset_version"]
    assert _check_run_agrees(storage, second)["models"] == {"champion": "2", "challenger": "3"}
    assert reg.version_tags("3")["dataset_version"] == second.ingest["dataset_version"]
    assert "promoted_at" not in reg.version_tags("3") and "promoted_at" in reg.version_tags("2")
    assert not storage.exists("state/retrain/lock.json")


@pytest.fixture()
def restartable_emulator(tmp_path, monkeypatch):
    """An emulator that keeps its objects on disk, so it can be stopped (outage) and started again."""
    from gcp_storage_emulator.server import create_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    state = {"server": None}

    def start() -> None:
        state["server"] = create_server("127.0.0.1", port, in_memory=False, data_dir=str(tmp_path / "gcs"))
        state["server"].start()

    def stop() -> None:
        if state["server"] is not None:
            state["server"].stop()
            state["server"] = None

    start()
    yield start, stop
    stop()


def test_bucket_outage_mid_run_fails_cleanly_then_resumes(prefect_api, tagloop_home, restartable_emulator,
                                                          monkeypatch):
    from bucket.storage import RetryPolicy, open_storage
    from flows.retrain import retrain
    from ingest import dataset, pipeline
    from ingest.state import IngestState
    from bucket.lock import LockHeld
    from loop.registry import Registry
    from synth.render import RenderConfig
    from tasks import retrain as retrain_tasks

    start, stop = restartable_emulator
    # the outage must fail fast here: short client backoff, no waiting between task retries
    fast = RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.02)
    real_open = open_storage
    monkeypatch.setattr("flows.retrain.open_storage", lambda url, retry=None: real_open(url, retry or fast))
    monkeypatch.setattr(retrain_tasks.TASK_STAGES.ingest, "retry_delay_seconds", [0, 0, 0])
    storage = _new_bucket()
    seeded = seed_corrections(storage, 120, "2026-11-20", 7, RenderConfig(**DOT_MATRIX_DOMAIN), base_model_dir(),
                              n_bad=5)
    corrections_before = {o.name: storage.read(o.name) for o in storage.list("corrections/")}

    real_write_version = dataset.write_version

    def write_version_then_outage(*a, **kw):
        version = real_write_version(*a, **kw)          # the manifest lands ...
        stop()                                          # ... then the bucket goes away before the commit
        return version

    monkeypatch.setattr(pipeline.dataset, "write_version", write_version_then_outage)
    with pytest.raises(Exception) as failed:
        retrain(bucket=storage.url, lock_ttl_s=30, **SHORT)
    assert "127.0.0.1" in str(failed.value) or "Connection" in type(failed.value).__name__
    monkeypatch.setattr(pipeline.dataset, "write_version", real_write_version)
    start()
    assert Registry().aliases() == {"champion": "1", "challenger": None, "previous-champion": None}
    assert IngestState.load(storage).dataset_version is None          # no dataset version became current
    stale = json.loads(storage.read("state/retrain/lock.json"))
    with pytest.raises(LockHeld, match="another run holds"):  # the dead run could not release its lock
        retrain(bucket=storage.url, **SHORT)
    time.sleep(max(0.0, stale["expires_at"] - time.time()) + 0.5)  # ... until it expires

    s = retrain(bucket=storage.url, **SHORT)
    state = IngestState.load(storage)
    items = {k for k in state.processed}
    assert len(items) == seeded.n_good + seeded.n_bad == s.ingest["n_new"]
    assert s.ingest["n_accepted"] + s.ingest["n_review"] + s.ingest["n_quarantined"] == s.ingest["n_new"]
    manifest = dataset.read_manifest(storage, state.dataset_version)
    assert manifest["sample_id"].is_unique and len(manifest) == s.ingest["n_accepted"]
    assert {o.name.split("/")[1] for o in storage.list("quarantine/")} == {s.ingest["run_id"]}  # resumed run id
    assert Registry().versions() == ["1", "2"] and s.challenger_version == "2"
    assert {o.name: storage.read(o.name) for o in storage.list("corrections/")} == corrections_before
