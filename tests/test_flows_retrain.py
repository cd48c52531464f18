"""The retrain flow's pieces: one stage sequence, the bucket lock, the result cache, parameters."""
from __future__ import annotations

import json
import time
from dataclasses import fields

import pytest

from bucket.storage import UnsafeObjectName, open_storage
from loop.cycle import PLAIN, STAGE_ORDER, Stages
from bucket.lock import LOCK_KEY, BucketLock, LockHeld, bucket_lock


def test_flow_tasks_wrap_the_same_stage_functions_in_the_same_order():
    from tasks.retrain import TASK_STAGES

    assert tuple(f.name for f in fields(Stages)) == STAGE_ORDER
    for name in STAGE_ORDER:
        assert getattr(TASK_STAGES, name).fn is getattr(PLAIN, name), name
    retrying = {n for n in STAGE_ORDER if getattr(TASK_STAGES, n).retries}
    assert retrying == {"champion", "ingest", "split", "mix", "eval_sets", "register", "report"}


@pytest.fixture()
def local_bucket(tmp_path):
    (tmp_path / "b").mkdir()
    return open_storage(str(tmp_path / "b"))


def test_second_holder_is_refused_until_release(local_bucket):
    with bucket_lock(local_bucket, "night-1") as lock:
        held = json.loads(local_bucket.read(LOCK_KEY))
        assert held["owner"] == "night-1" and held["token"] == lock.token
        with pytest.raises(LockHeld, match="owner night-1"):
            BucketLock(local_bucket, "manual").acquire()
        lock.refresh()
    assert not local_bucket.exists(LOCK_KEY)
    with bucket_lock(local_bucket, "manual"):
        assert json.loads(local_bucket.read(LOCK_KEY))["owner"] == "manual"


def test_expired_lock_is_taken_over_and_the_old_holder_stops(local_bucket):
    old = BucketLock(local_bucket, "killed", ttl_s=0.2)
    old.acquire()
    time.sleep(0.3)
    logs: list[str] = []
    new = BucketLock(local_bucket, "next")
    new.acquire(logs.append)
    assert "taking over the expired lock of killed" in logs[0]
    with pytest.raises(LockHeld, match="no longer ours"):
        old.refresh()
    old.release()                                              # not ours any more: left alone
    assert json.loads(local_bucket.read(LOCK_KEY))["owner"] == "next"


def test_a_person_breaks_a_live_lock_with_a_record(local_bucket, capsys):
    stuck = BucketLock(local_bucket, "host:4242:killed-run")
    stuck.acquire()
    with pytest.raises(LockHeld, match="--break-lock"):
        BucketLock(local_bucket, "manual").acquire()
    logs: list[str] = []
    with bucket_lock(local_bucket, "manual", log=logs.append, break_by="alice"):
        assert json.loads(local_bucket.read(LOCK_KEY))["owner"] == "manual"
        with pytest.raises(LockHeld, match="no longer ours"):
            stuck.refresh()                                    # the broken run stops at its next stage
    assert "alice broke the live lock of host:4242:killed-run" in logs[0]
    (record,) = local_bucket.list("state/retrain/broken-locks/")
    doc = json.loads(local_bucket.read(record.name))
    assert doc["broken_by"] == "alice" and doc["new_owner"] == "manual"
    assert doc["lock"]["owner"] == "host:4242:killed-run" and doc["lock"]["token"] == stuck.token
    from flows.cli import main

    assert main(["retrain", "--bucket", "/nonexistent", "--break-lock"]) == 2
    assert "--break-lock needs --forced-by" in capsys.readouterr().err


def test_lock_released_when_the_run_fails(local_bucket):
    with pytest.raises(RuntimeError, match="boom"):
        with bucket_lock(local_bucket, "x"):
            raise RuntimeError("boom")
    assert not local_bucket.exists(LOCK_KEY)


def test_only_state_objects_can_be_deleted_and_create_is_exclusive(local_bucket):
    assert local_bucket.create("state/x.json", b"1") and not local_bucket.create("state/x.json", b"2")
    assert local_bucket.read("state/x.json") == b"1"
    local_bucket.write("corrections/2026-11-20/a.json", b"{}")
    with pytest.raises(UnsafeObjectName):
        local_bucket.delete_state("corrections/2026-11-20/a.json")
    assert local_bucket.exists("corrections/2026-11-20/a.json")


def test_gcs_create_and_delete(gcs_emulator):
    from google.cloud import storage as gcs

    gcs.Client(project="t").create_bucket("lock-test")
    bucket = open_storage("gs://lock-test")
    with bucket_lock(bucket, "a"):
        with pytest.raises(LockHeld):
            BucketLock(bucket, "b").acquire()
    assert not bucket.exists(LOCK_KEY)


def test_recipe_options_become_the_cycle_config_and_the_defaults_are_the_dataclasses():
    from flows.cli import build_parser
    from loop.config import RECIPE, CycleConfig, cycle_config
    from loop.regression import RegressionConfig

    assert cycle_config() == CycleConfig()              # the nightly recipe is the dataclasses' defaults
    args = build_parser("retrain").parse_args(["retrain"])
    assert cycle_config(**{n: getattr(args, n) for n in RECIPE}) == CycleConfig()
    cfg = cycle_config(CycleConfig(regression=RegressionConfig(per_family=5), since="2026-11-01"),
                       steps=40, eval_every=20, mix_new=0.6, regression_tolerance=0.01, seed=3)
    train = cfg.finetune.train
    assert (train.steps, train.warmup, train.ckpt_every, cfg.mix.new) == (40, 4, 20, 0.6)
    assert cfg.regression.per_family == 5 and cfg.gate.regression_tolerance == 0.01 and cfg.since == "2026-11-01"
    assert cfg.mix.seed == train.seed == 3
    with pytest.raises(ValueError, match="unknown retrain options"):
        cycle_config(step=5)


def test_the_flow_takes_the_recipe_as_one_config_with_unknown_fields_refused():
    from prefect.exceptions import ParameterTypeError

    from flows.retrain import retrain

    got = retrain.validate_parameters({"config": {"finetune": {"train": {"steps": 400}}, "gate": {"margin": 0.01}}})
    cfg = got["config"]
    assert cfg.finetune.train.steps == 400 and cfg.gate.margin == 0.01 and cfg.mix.new == 0.5
    with pytest.raises(ParameterTypeError, match="per_famly"):
        retrain.validate_parameters({"config": {"regression": {"per_famly": 5}}})


def test_force_without_a_name_fails_before_anything_runs(prefect_api, tmp_path):
    from flows.retrain import retrain

    with pytest.raises(ValueError, match="forced_by"):
        retrain(bucket=str(tmp_path), force=True)


def test_evaluate_is_cached_by_weights_and_set_fingerprints(prefect_api, base_model_dir, crops_dir):
    """A re-run with the same models and sets reuses the persisted scores; another set is recomputed."""
    import os

    from prefect import flow

    from loop.gate import EvalData
    from synth.dataset import read_rows
    from tasks.retrain import TASK_STAGES

    rows = read_rows(os.path.join(crops_dir, "labels.csv"))[:4]
    imgs = [open(os.path.join(crops_dir, "images", r["filename"]), "rb").read() for r in rows]
    one = EvalData("s", [r["filename"] for r in rows], [r["label"] for r in rows], imgs)
    other = EvalData("s", one.ids[:3], one.labels[:3], imgs[:3])

    @flow
    def twice(sets_a, sets_b):
        dirs = {"champion": base_model_dir, "challenger": base_model_dir}
        return [TASK_STAGES.evaluate(dirs, s, return_state=True) for s in (sets_a, sets_a, sets_b)]

    first, again, changed = twice([one], [other])
    assert first.is_completed() and again.name == "Cached" and changed.name != "Cached"
    assert again.result()["challenger"]["s"].predictions == first.result()["challenger"]["s"].predictions
    assert len(changed.result()["champion"]["s"].predictions) == 3
    # persisted as JSON (Prefect's "json" serializer), never a pickle: the record is readable with json alone
    from prefect.settings import get_current_settings

    from loop.gate import SetScore
    from tasks.retrain import evaluate_key

    store = get_current_settings().results.local_storage_path
    key = evaluate_key(None, {"model_dirs": {"champion": base_model_dir, "challenger": base_model_dir}, "sets": [one]})
    record = json.loads((store / key).read_text())
    assert record["metadata"]["serializer"]["type"] == "json"
    scores = json.loads(record["result"])["challenger"]["s"]
    assert scores["__class__"] == "loop.gate.SetScore" and scores["data"]["predictions"] == \
        first.result()["challenger"]["s"].predictions
    assert isinstance(again.result()["champion"]["s"], SetScore)


def test_old_persisted_results_are_pruned(tmp_path, monkeypatch):
    import os

    from flows.settings import Settings, prune_results

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    store = tmp_path / "prefect" / "storage"
    store.mkdir(parents=True)
    (store / "old").write_bytes(b"x" * 100)
    (store / "new").write_bytes(b"y" * 10)
    os.utime(store / "old", (time.time() - 8 * 86400,) * 2)
    assert prune_results(Settings(str(tmp_path), None), 7) == (1, 100)
    assert sorted(os.listdir(store)) == ["new"]


def _small_mix():
    import numpy as np

    from loop.mix import Anchor, Mix
    from recognizer.pool import Pool

    rng = np.random.default_rng(0)
    grays = [rng.integers(0, 256, (32, w), np.uint8) for w in (40, 64, 17)]
    anchor = Anchor([rng.integers(0, 256, (30, 90, 3), np.uint8), rng.integers(0, 256, (12, 50, 3), np.uint8)],
                    ["AB-1", "Z 9"])
    return Mix(Pool.pack(grays, ["A1", "", "GY7924"], 32), Pool.pack([], [], 32),
               {"counts": {"new": 3}, "shares": {"new": 0.5}}, anchor)


def _same_mix(a, b):
    import numpy as np

    for pa, pb in ((a.train, b.train), (a.val, b.val)):
        assert pa.height == pb.height and pa.labels == pb.labels
        assert all(np.array_equal(getattr(pa, k), getattr(pb, k)) for k in ("pixels", "widths", "offsets"))
    assert a.info == b.info and a.anchor.labels == b.anchor.labels
    assert all(np.array_equal(x, y) for x, y in zip(a.anchor.images, b.anchor.images))


def test_the_mix_is_persisted_as_npz_and_read_back_without_pickle(prefect_api):
    """The mix task's cached result: an .npz archive (no pickle can be in it) that a cache hit reads back."""
    import base64
    import uuid

    from prefect import flow, task
    from prefect.settings import get_current_settings

    from tasks.retrain import TASK_OPTIONS, MixSerializer

    mix = _small_mix()
    blob = MixSerializer().dumps(mix)
    assert base64.b64decode(blob)[:2] == b"PK"                     # a zip of .npy files
    _same_mix(MixSerializer().loads(blob), mix)
    key = f"mix-test-{uuid.uuid4().hex}"
    calls = []
    make = task(lambda: calls.append(1) or _small_mix(), **{**TASK_OPTIONS["mix"], "cache_key_fn": lambda c, p: key})

    @flow
    def twice():
        return [make(return_state=True) for _ in range(2)]

    first, again = twice()
    assert calls == [1] and again.name == "Cached"
    _same_mix(again.result(), mix)
    record = json.loads((get_current_settings().results.local_storage_path / key).read_text())
    assert record["metadata"]["serializer"]["type"] == "tagloop-mix-npz"
    assert base64.b64decode(record["result"])[:2] == b"PK"
    with pytest.raises(ValueError, match="allow_pickle"):           # an object array planted in it is refused
        import io

        import numpy as np

        buf = io.BytesIO()
        np.savez(buf, **{"train.height": np.array([{"x": 1}], dtype=object)})
        MixSerializer().loads(base64.b64encode(buf.getvalue()))


def test_lock_released_when_a_stop_signal_lands_right_after_it_was_taken(local_bucket, monkeypatch):
    """A SIGTERM between creating the lock object and returning from ``acquire`` (the window a killed ingest
    hit) still releases it: the next run is not refused for an hour."""
    original = BucketLock.current
    reads = []

    def stopped_on_the_check(self):
        reads.append(1)
        if len(reads) == 2:                                   # the read-back after our create succeeded
            raise KeyboardInterrupt("signal SIGTERM")
        return original(self)

    monkeypatch.setattr(BucketLock, "current", stopped_on_the_check)
    with pytest.raises(KeyboardInterrupt):
        with bucket_lock(local_bucket, "night-1"):
            pytest.fail("the signal landed inside acquire: the block must not run")
    monkeypatch.undo()
    assert BucketLock(local_bucket, "x").current() is None
