"""End to end on the GCS emulator: a bucket outage mid-run.

The emulator stops between the dataset manifest and ingest's commit: the run fails with a clear error,
no alias moves, no dataset version becomes current; once the bucket is back the next run processes every
correction exactly once and registers one model.
"""
from __future__ import annotations

import json
import socket
import time

import pytest
from e2e_helpers import SHORT, new_bucket

from flows.simulate import DOT_MATRIX_DOMAIN, seed_corrections
from recognizer.checkpoint import base_model_dir

pytestmark = pytest.mark.slow


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
    storage = new_bucket()
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
