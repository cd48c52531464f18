"""Shared fixtures: small rendered data sets, built once per session."""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

os.environ.setdefault("DO_NOT_TRACK", "true")
# before any test module imports torch (most import it before recognizer, which sets the same default):
# spinning OpenMP threads on a busy 2-core machine made an 8-step tiny fine-tune take 156 s instead of 3
# (recognizer/__init__.py)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def crops_dir(tmp_path_factory) -> str:
    """24 upright crops with labels.csv (training fonts)."""
    from synth.dataset import write_dataset
    from synth.render import RenderConfig

    out = str(tmp_path_factory.mktemp("crops"))
    write_dataset(out, 24, seed=11, cfg=RenderConfig(), workers=1, chunk=12)
    return out


@pytest.fixture(scope="session")
def tiny_pool():
    """240 preprocessed crops (in memory) for training tests."""
    from synth.pools import render_pool

    return render_pool(240, seed=5, workers=1, chunk=120)


@pytest.fixture(scope="session")
def base_model_dir() -> str:
    from recognizer.checkpoint import base_model_dir

    return base_model_dir()


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# --- ingest: a bucket on a local directory or on gcp-storage-emulator -------------------------

@pytest.fixture(scope="session")
def gcs_emulator():
    """gcp-storage-emulator (in memory) on 127.0.0.1:<free port>; yields its URL, stopped after."""
    import socket

    from gcp_storage_emulator.server import create_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    old = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = url
    yield url
    server.stop()
    if old is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = old


@pytest.fixture(params=["local", "gcs"])
def bucket(request, tmp_path):
    """A fresh, empty Storage: a temp directory, or a new bucket on the emulator (fast retries)."""
    from bucket.storage import RetryPolicy, open_storage

    retry = RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.05)
    if request.param == "local":
        root = tmp_path / "bucket"
        root.mkdir()
        return open_storage(f"file://{root}", retry)
    request.getfixturevalue("gcs_emulator")
    import uuid

    from google.cloud import storage as gcs

    name = f"t-{uuid.uuid4().hex[:12]}"
    gcs.Client(project="tagloop-test").create_bucket(name)
    return open_storage(f"gs://{name}", retry)


@pytest.fixture(scope="session")
def synth_crops():
    """8 rendered crops (RGB arrays + labels) for ingest tests."""
    from synth.dataset import iter_crops

    return list(iter_crops(8, seed=3))


# --- flows: one temporary Prefect API (SQLite in a temp dir) for the whole session -------------

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_HOME", os.path.join(tempfile.gettempdir(), f"tagloop-test-prefect-{os.getpid()}"))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """Flows in tests run against a throw-away Prefect server; TAGLOOP_HOME is a session temp dir."""
    home = str(tmp_path_factory.mktemp("tagloop_home"))
    old = os.environ.get("TAGLOOP_HOME")
    os.environ["TAGLOOP_HOME"] = home
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=None):
        yield home
    if old is None:
        os.environ.pop("TAGLOOP_HOME", None)
    else:
        os.environ["TAGLOOP_HOME"] = old


# --- loop: an embedded MLflow store per test (schema migrated once per session, then copied) ---

@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory) -> str:
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow-template")
    uri = f"sqlite:///{root}/mlflow.db"
    MlflowClient(uri, uri).search_experiments()       # creates and migrates the schema
    return str(root / "mlflow.db")


@pytest.fixture()
def tagloop_home(tmp_path, monkeypatch, _mlflow_template):
    """A fresh TAGLOOP_HOME whose embedded MLflow store exists and is empty; MLflow pointed at it."""
    import shutil

    from loop.registry import setup_mlflow

    home = tmp_path / "home"
    (home / "mlflow").mkdir(parents=True)
    shutil.copy(_mlflow_template, home / "mlflow" / "mlflow.db")
    monkeypatch.setenv("TAGLOOP_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TAGLOOP_EXTRA_CHARS", raising=False)
    for key, val in {"MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "False"}.items():
        monkeypatch.setenv(key, val)
    setup_mlflow(str(home))
    yield str(home)
    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI (for subprocesses): without this, later
    # tests (and the workers they start) would see "a registry is configured" and use this store.
    import mlflow

    mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
