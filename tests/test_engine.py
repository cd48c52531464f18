"""The inference engine: ONNX graphs stored with the artifact, start-up without torch, stale graphs ignored."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

from recognizer.engine import ONNX_INDEX, Engine, export_onnx, stored_onnx
from recognizer.predict import Predictor


def test_the_shipped_model_carries_graphs_of_its_own_weights(base_model_dir):
    assert stored_onnx(base_model_dir), "run recognizer.engine.export_onnx on the shipped model"


def test_stored_graphs_read_like_the_torch_module(base_model_dir, synth_crops):
    images = [c.image for c in synth_crops]
    stored = Predictor(base_model_dir)
    assert stored.backend == "onnx"
    eager = Predictor(base_model_dir, backend="torch")
    a, b = stored.predict_arrays(images), eager.predict_arrays(images)
    assert [p.text for p in a] == [p.text for p in b]
    assert np.allclose([p.confidence for p in a], [p.confidence for p in b], atol=1e-3)


def test_reading_with_stored_graphs_never_imports_torch(base_model_dir):
    code = ("import sys, numpy as np; from recognizer.predict import Predictor; "
            f"p = Predictor({base_model_dir!r}); p.predict_arrays([np.full((40, 160, 3), 255, np.uint8)]); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_graphs_of_other_weights_are_not_used(base_model_dir, tmp_path):
    from recognizer.checkpoint import load_model, save_model

    d = str(tmp_path / "m")
    shutil.copytree(base_model_dir, d)
    model, tok, cfg = load_model(d)
    with __import__("torch").no_grad():
        model.fc.bias.add_(0.5)                     # new weights, old graphs still on disk
    save_model(model, tok, d, cfg["meta"])
    assert stored_onnx(d) is None
    assert Engine(d).backend == "onnx"              # exported in memory from the new weights instead
    export_onnx(d)
    assert stored_onnx(d) and json.load(open(os.path.join(d, ONNX_INDEX)))["files"] == ["model.onnx"]
