"""Hostile or broken model directories (issue 15): each is refused before anything is allocated, with one
``ModelError`` line naming the file and the problem; the CLI prints that line and exits 2."""
import json
import os
import shutil
import struct
import time

import pytest

from flows.cli import main
from recognizer.checkpoint import CONFIG, LIMITS, WEIGHTS, ModelError, load_model, read_config
from recognizer.engine import ONNX_INDEX, Engine


@pytest.fixture()
def model_copy(base_model_dir, tmp_path):
    """A writable copy of the shipped model (config, weights, ONNX graph and its index)."""
    d = tmp_path / "model"
    shutil.copytree(base_model_dir, d)
    return d


def _edit_config(d, edit):
    cfg = json.loads((d / CONFIG).read_text())
    edit(cfg)
    (d / CONFIG).write_text(json.dumps(cfg))


def _refused(d, match, backend="torch"):
    """Loading ``d`` (``load_model``, or an ``Engine`` on ``backend``) is refused with one ModelError line
    that names the directory's file and matches ``match``."""
    with pytest.raises(ModelError, match=match) as e:
        if backend == "load":
            load_model(str(d))
        else:
            Engine(str(d), backend=backend)
    assert "\n" not in str(e.value) and str(d) in str(e.value)
    return str(e.value)


def test_a_huge_hidden_size_is_refused_before_any_allocation(model_copy):
    _edit_config(model_copy, lambda c: c["model"].update(hidden=10**9))
    for backend in ("load", "torch", "auto"):      # auto: the stored ONNX graph's index still matches the weights
        t = time.perf_counter()
        msg = _refused(model_copy, r"hidden must be an integer in \[1, 1024\], not 1000000000", backend)
        assert time.perf_counter() - t < 0.5, msg
        assert msg.startswith(str(model_copy / CONFIG))


@pytest.mark.parametrize("edit,match", [
    (lambda c: c.pop("charset"), "missing key 'charset'"),
    (lambda c: c["model"].pop("channels"), "model is missing channels"),
    (lambda c: c["model"].update(channels=[32, 64, 96, 10**6]), r"channels must be 4 integers in \[1, 1024\]"),
    (lambda c: c["model"].update(channels=[32, 64, 96]), "channels must be 4 integers"),
    (lambda c: c["model"].update(hidden="128"), "hidden must be an integer"),
    (lambda c: c["model"].update(hidden=True), "hidden must be an integer"),
    (lambda c: c["model"].update(img_height=4096), r"img_height must be an integer in \[32, 32\]"),
    (lambda c: c["model"].update(num_classes=46), r"num_classes must be an integer in \[45, 45\]"),
    (lambda c: c["model"].update(adapter=-1), "adapter must be an integer"),
    (lambda c: c["model"].update(dropout=float("nan")), "dropout must be a number"),
    (lambda c: c["model"].update(evil=1), "unknown keys 'evil'"),
    (lambda c: c.update(charset="A" * (LIMITS["charset"] + 1)), "charset must hold 1 to 1024"),
    (lambda c: c.update(charset="AAB"), "duplicate characters"),
    (lambda c: c.update(format="other/1"), "not a tagloop model artifact"),
])
def test_config_with_a_missing_key_or_a_bad_value_is_one_line(model_copy, edit, match):
    _edit_config(model_copy, edit)
    _refused(model_copy, match, "load")
    _refused(model_copy, match, "auto")


@pytest.mark.parametrize("text,match", [
    ("[" * 200_000 + "]" * 200_000, "larger than"),           # 400 kB would parse; over the cap it is not read
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"format": "tagloop-crnn/1", "charset": "AB", "model": {"hidden": ' + "9" * 5000 + "}}", "not valid JSON"),
    ("[1, 2, 3]", "not a JSON object"),
    ('{"format": ', "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
])
def test_config_that_is_not_a_small_json_object_is_refused(model_copy, text, match, monkeypatch):
    if match == "larger than":
        monkeypatch.setattr("recognizer.checkpoint.MAX_CONFIG_BYTES", 300_000)
    (model_copy / CONFIG).write_bytes(text if isinstance(text, bytes) else text.encode())
    _refused(model_copy, match, "load")


def test_a_missing_config_or_directory_is_one_line(model_copy, tmp_path):
    (model_copy / CONFIG).unlink()
    _refused(model_copy, "missing", "load")
    _refused(tmp_path / "nowhere", "model directory not found", "load")


def _drop_onnx(d):
    for f in ("model.onnx", ONNX_INDEX):
        (d / f).unlink()


def test_truncated_or_garbage_weights_are_refused(model_copy):
    _drop_onnx(model_copy)
    full = (model_copy / WEIGHTS).read_bytes()
    (model_copy / WEIGHTS).write_bytes(full[: len(full) // 2])
    _refused(model_copy, "not a readable safetensors file", "load")
    (model_copy / WEIGHTS).write_bytes(struct.pack("<Q", 10**15) + b"{}")      # header length beyond the file
    _refused(model_copy, "not a readable safetensors file", "auto")
    (model_copy / WEIGHTS).write_bytes(b"")
    _refused(model_copy, "not a readable safetensors file", "load")


def test_weights_whose_shapes_do_not_match_the_config_are_refused(model_copy, tmp_path):
    _drop_onnx(model_copy)
    _edit_config(model_copy, lambda c: c["model"].update(hidden=64))
    msg = _refused(model_copy, r"has shape \[512, 128\], config.json implies \[256, 128\]", "load")
    assert msg.startswith(str(model_copy / WEIGHTS))
    _edit_config(model_copy, lambda c: c["model"].update(hidden=128, adapter=8))       # adapters the file lacks
    _refused(model_copy, "tensors do not match config.json: missing 16 tensors", "load")


def test_an_index_cannot_point_outside_and_a_bad_graph_is_refused(model_copy, tmp_path):
    index = json.loads((model_copy / ONNX_INDEX).read_text())
    (tmp_path / "elsewhere.onnx").write_bytes((model_copy / "model.onnx").read_bytes())
    (model_copy / ONNX_INDEX).write_text(json.dumps({**index, "files": [str(tmp_path / "elsewhere.onnx")]}))
    assert Engine(str(model_copy)).backend == "onnx"          # ignored: exported in memory from the weights
    (model_copy / ONNX_INDEX).write_text(json.dumps(index))
    (model_copy / "model.onnx").write_bytes(b"not a graph")
    msg = _refused(model_copy, "not a loadable ONNX graph", "auto")
    assert msg.startswith(str(model_copy / "model.onnx"))


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_cli_prints_one_line_and_exits_2(model_copy, tmp_path, capsys, command):
    _edit_config(model_copy, lambda c: c["model"].update(hidden=10**9))
    img = tmp_path / "x.png"
    img.write_bytes(b"")
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,label\nx.png,A\n")
    args = (["predict", str(img), "--out", str(tmp_path / "p.csv")] if command == "predict" else
            ["evaluate", "--images", str(tmp_path), "--labels", str(labels)])
    assert main(args + ["--model", str(model_copy)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "hidden must be an integer" in err, err
    assert not os.path.exists(tmp_path / "p.csv")


def test_the_shipped_model_passes_every_check(base_model_dir):
    cfg = read_config(base_model_dir)
    assert cfg["model"]["hidden"] * 8 == LIMITS["hidden"]          # the bounds: 8x the shipped model
    model, tok, _ = load_model(base_model_dir)
    assert tok.num_classes == cfg["model"]["num_classes"] and Engine(base_model_dir).backend == "onnx"
