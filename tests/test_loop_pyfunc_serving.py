"""The registered model as MLflow serves it: public requirements, code shipped along, an input example,
every documented request format of the scoring server; the dataset version as the run's input."""
from __future__ import annotations

import base64
import io
import os

import mlflow
import pytest
from PIL import Image

from loop.pyfunc import _as_bytes
from loop.registry import Registry, bootstrap
from loop.tracking import log_dataset
from recognizer.checkpoint import base_model_dir
from serve_helpers import crop_bytes


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"])
def test_encoded_images_are_never_taken_for_base64_and_base64_bytes_are_decoded(fmt):
    buf = io.BytesIO()
    Image.new("RGB", (40, 16), (200, 10, 10)).save(buf, fmt)
    raw = buf.getvalue()
    assert _as_bytes(raw) == raw
    assert _as_bytes(base64.b64encode(raw)) == raw                       # the {"inputs": ...} format's bytes
    assert _as_bytes(base64.b64encode(raw).decode()) == raw
    with pytest.raises(ValueError, match="not base64"):
        _as_bytes("not base64 !")


@pytest.fixture()
def registered(tagloop_home):
    bootstrap(Registry(), base_model_dir())
    return mlflow.artifacts.download_artifacts("models:/product-code-recognizer/1")


@pytest.mark.slow
def test_requirements_are_public_packages_and_the_code_travels_with_the_model(registered):
    reqs = open(os.path.join(registered, "requirements.txt")).read().split()
    names = [r.split("==")[0] for r in reqs]
    assert "tagloop" not in names and "torch" not in names                 # unpublished / not needed to read
    assert {"onnxruntime", "numpy", "pillow", "opencv-python-headless", "pandas", "mlflow"} <= set(names)
    assert all("==" in r and "+" not in r for r in reqs), reqs                # pinned, no local version labels
    code = os.path.join(registered, "code")
    assert sorted(os.listdir(code)) == ["crops", "loop", "recognizer"]
    assert sorted(os.listdir(os.path.join(code, "loop"))) == ["__init__.py", "pyfunc.py"]
    assert "predict.py" in os.listdir(os.path.join(code, "recognizer"))
    assert not any(f.endswith((".safetensors", ".onnx")) for f in os.listdir(os.path.join(code, "recognizer")))
    assert os.path.isfile(os.path.join(registered, "serving_input_example.json"))


@pytest.mark.slow
def test_the_scoring_server_reads_every_documented_request_format(registered):
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    client = TestClient(scoring_server.init(mlflow.pyfunc.load_model(registered)))
    b64 = [base64.b64encode(crop_bytes(c)).decode() for c in ("GY7924", "CU4874-001")]
    bodies = {"dataframe_split": {"dataframe_split": {"columns": ["image"], "data": [[b] for b in b64]}},
              "dataframe_records": {"dataframe_records": [{"image": b} for b in b64]},
              "instances": {"instances": [{"image": b} for b in b64]},
              "inputs": {"inputs": {"image": b64}}}
    for name, body in bodies.items():
        r = client.post("/invocations", json=body)
        assert r.status_code == 200, (name, r.text)
        preds = r.json()["predictions"]
        assert [p["prediction"] for p in preds] == ["GY7924", "CU4874-001"], name
        assert all(p["error"] == "" and 0.5 < p["confidence"] <= 1 for p in preds), name
    example = open(os.path.join(registered, "serving_input_example.json")).read()
    r = client.post("/invocations", content=example, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["predictions"][0]["prediction"] == "DD1391-100"


def test_the_dataset_version_is_the_runs_input(tagloop_home):
    with mlflow.start_run() as run:
        log_dataset("0123456789abcdef", "gs://shop-bucket/datasets/0123456789abcdef/manifest.parquet")
    (inp,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert (inp.dataset.name, inp.dataset.digest, inp.dataset.source_type) == ("corrections", "0123456789abcdef", "gs")
    assert "gs://shop-bucket/datasets/0123456789abcdef/manifest.parquet" in inp.dataset.source
    assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "training"
