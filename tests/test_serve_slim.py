"""The reading install (``pip install ".[serve]"``) has no torch, trdg, Prefect, Evidently, GX, pandas or
pyarrow: serving the registry's champion, reading and recording a correction must import none of them.

A subprocess blocks them with a meta-path hook (importing one raises ModuleNotFoundError, as in the
slim virtualenv), serves the champion of a real embedded registry and records a correction in a bucket.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOT_IN_THE_SLIM_INSTALL = ["torch", "trdg", "prefect", "prefect_dask", "evidently", "great_expectations", "pandas",
                           "pyarrow", "scipy", "sklearn", "safetensors", "onnx", "synth", "monitoring", "tasks"]

SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys
    BLOCKED = set(sys.argv[1].split(","))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked: not in the slim install)", name=name)
            return None

    sys.meta_path.insert(0, Block())
    sys.path.insert(0, sys.argv[4])
    from fastapi.testclient import TestClient
    from serve.run import ServeConfig, build
    from serve_helpers import crop_bytes

    app, holder = build(ServeConfig(home=sys.argv[2], bucket=sys.argv[3], poll_s=0))
    client = TestClient(app)
    read = client.post("/v1/read", files=[("files", ("c.png", crop_bytes("GY7924"), "image/png"))]).json()
    crop = read["crops"][0]
    fixed = client.post("/v1/corrections", json={"crop_id": crop["crop_id"], "corrected_label": "GY7924"})
    print(json.dumps({"read": read, "status": fixed.status_code, "backend": holder.current.predictor.backend,
                      "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}))
""")


@pytest.mark.slow
def test_serving_the_champion_imports_nothing_of_the_training_install(tagloop_home, tmp_path):
    from loop.registry import Registry, bootstrap
    from recognizer.checkpoint import base_model_dir

    bootstrap(Registry(), base_model_dir())
    (tmp_path / "bucket").mkdir()
    env = {**os.environ, "TAGLOOP_HOME": tagloop_home, "PYTHONPATH": ROOT}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-c", SCRIPT, ",".join(NOT_IN_THE_SLIM_INSTALL), tagloop_home,
                           str(tmp_path / "bucket"), os.path.join(ROOT, "tests")],
                          capture_output=True, text=True, timeout=240, env=env, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["loaded"] == [] and out["backend"] == "onnx"
    assert out["read"]["model_version"] == "1" and out["read"]["crops"][0]["text"] == "GY7924"
    assert out["status"] == 201
    assert len(list((tmp_path / "bucket" / "corrections").rglob("*.json"))) == 1
