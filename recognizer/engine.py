"""The inference engine: a model artifact run on height-normalised grey crops, decoded to text.

``Engine.read(grays, path)`` -> one ``(text, confidence, P(upside down))`` per crop, in order.
Runtimes: ONNX Runtime (default; ~2x lower CPU latency than eager PyTorch at batch 1) or the
torch module itself. An artifact may carry its ONNX graphs (``export_onnx``, written when a
model is shipped or registered); the engine then starts without importing torch at all, which
is most of a ``tagloop predict`` start-up. Without them the graphs are exported in memory.

Paths: a model with adapters (``recognizer.model``) has two, 0 = the base path (adapters off)
and 1 = the adapted path; other models have path 0 only. Which reading to keep is decided
by ``recognizer.predict.Predictor``, not here.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from typing import Any

import numpy as np

from recognizer.checkpoint import ModelError, read_json, weights_sha256
from recognizer.decode import greedy_decode
from recognizer.preprocess import batch_tensor, width_batches
from recognizer.tokenizer import CTCTokenizer

ONNX_FILES = ("model.onnx", "model.adapted.onnx")   # path 0, path 1
ONNX_INDEX = "onnx.json"                            # the weights the graphs were exported from
MAX_INDEX_BYTES = 4096                              # onnx.json is ~110 bytes
Reading = tuple[str, float, float]                  # text, confidence, P(upside down)


def _threads() -> int:
    return int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, min(4, os.cpu_count() or 1))


def _session(model_bytes_or_path: Any, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes_or_path, so, providers=["CPUExecutionProvider"])


def _modules(model) -> list:
    """The torch modules of each path (the base path first when there are adapters)."""
    from recognizer.model import BasePath

    return [BasePath(model), model] if model.cfg.adapter > 0 else [model]


def _export(module, height: int) -> bytes:
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 1, height, 64),), buf, input_names=["x"],
                          output_names=["logp", "orient"],
                          dynamic_axes={"x": {0: "b", 3: "w"}, "logp": {0: "t", 1: "b"}, "orient": {0: "b"}},
                          dynamo=False)
    return buf.getvalue()


def export_onnx(model_dir: str) -> list[str]:
    """Write the artifact's ONNX graphs beside its weights (one per path); returns their paths."""
    from recognizer.checkpoint import load_model

    model, _, _ = load_model(model_dir)
    out = []
    for name, module in zip(ONNX_FILES, _modules(model)):
        path = os.path.join(model_dir, name)
        with open(path + ".tmp", "wb") as f:
            f.write(_export(module, model.cfg.img_height))
        os.replace(path + ".tmp", path)
        out.append(path)
    with open(os.path.join(model_dir, ONNX_INDEX), "w") as f:
        json.dump({"weights_sha256": weights_sha256(model_dir), "files": [os.path.basename(p) for p in out]}, f)
    return out


def stored_onnx(model_dir: str) -> list[str] | None:
    """The artifact's ONNX graph files when they were exported from its current weights, else None
    (no index, or not one of ours: the engine exports in memory from the validated weights). The index
    may name only ``ONNX_FILES`` in order, so it cannot point outside the directory."""
    try:
        index = read_json(os.path.join(model_dir, ONNX_INDEX), MAX_INDEX_BYTES)
        names = index["files"]
        if not isinstance(names, list) or not 1 <= len(names) <= len(ONNX_FILES) \
                or names != list(ONNX_FILES[:len(names)]):
            return None
        files = [os.path.join(model_dir, n) for n in names]
        if index["weights_sha256"] == weights_sha256(model_dir) and all(os.path.isfile(p) for p in files):
            return files
    except (OSError, ValueError, KeyError, TypeError):   # ModelError is a ValueError
        return None
    return None


def _stored_session(file: str, threads: int, num_classes: int):
    """A stored graph's session; ``ModelError`` when it does not load or does not fit the charset."""
    try:
        sess = _session(file, threads)
        outputs = [o.name for o in sess.get_outputs()]
        classes = sess.get_outputs()[0].shape[-1]
    except Exception as e:          # onnxruntime's errors share no base class
        raise ModelError(f"{file}: not a loadable ONNX graph ({str(e).splitlines()[0][:120]})") from None
    if outputs != ["logp", "orient"] or [i.name for i in sess.get_inputs()] != ["x"] or classes != num_classes:
        raise ModelError(f"{file}: graph does not fit the model (outputs {outputs}, {classes} classes, "
                         f"config {num_classes})")
    return sess


class Engine:
    """Loads an artifact (or takes ``loaded`` = (model, tokenizer, config) in memory) and reads crops."""

    def __init__(self, model_dir: str | None, backend: str = "auto", batch_size: int = 64,
                 loaded: tuple | None = None, score: str = "min") -> None:
        """``score``: how a reading's confidence is computed (``recognizer.decode.greedy_decode``)."""
        if backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"backend must be auto, onnx or torch, not {backend!r}")
        self.batch_size, self.score = batch_size, score
        self.model = None
        files = stored_onnx(model_dir) if model_dir and loaded is None and backend != "torch" else None
        if files:
            from recognizer.checkpoint import read_config

            self.config = read_config(model_dir)
            self.tok = CTCTokenizer(self.config["charset"])
            self.height = int(self.config["model"]["img_height"])
            if len(files) != (2 if self.config["model"].get("adapter", 0) > 0 else 1):
                raise ModelError(f"{os.path.join(model_dir, ONNX_INDEX)}: {len(files)} graphs for a model with "
                                 f"{'adapters' if self.config['model'].get('adapter', 0) else 'no adapters'}")
            self.paths = len(files)
            self._ort = [_stored_session(p, _threads(), self.tok.num_classes) for p in files]
            self.backend = "onnx"
            return
        self._load_torch(model_dir, loaded)
        self._ort = None
        self.backend = "torch"
        if backend in ("auto", "onnx"):
            try:
                self._ort = [_session(_export(m, self.height), _threads()) for m in self._torch]
                self.backend = "onnx"
            except Exception:
                if backend == "onnx":
                    raise

    def _load_torch(self, model_dir: str | None, loaded: tuple | None) -> None:
        from recognizer.checkpoint import load_model

        self.model, self.tok, self.config = loaded if loaded is not None else load_model(model_dir)
        self.model.eval()
        self.height = self.model.cfg.img_height
        self._torch = _modules(self.model)
        self.paths = len(self._torch)

    def _forward(self, x: np.ndarray, path: int) -> tuple[np.ndarray, np.ndarray]:
        if self._ort is not None:
            logp, orient = self._ort[path].run(None, {"x": x})
            return logp, orient
        import torch

        with torch.inference_mode():
            logp, orient = self._torch[path](torch.from_numpy(x))
        return logp.numpy(), orient.numpy()

    def _batches(self, grays: list[np.ndarray], path: int):
        """Width-bucketed forward passes: (crop indices, T x B x K log-probs, each crop's own frame count,
        orientation logits) per batch."""
        for idx in width_batches([g.shape[1] for g in grays], self.batch_size):
            x, widths = batch_tensor([grays[i] for i in idx])
            logp, orient = self._forward(x, path)
            yield idx, logp, np.minimum((widths + 3) // 4, logp.shape[0]), orient

    def log_probs(self, grays: list[np.ndarray], path: int = 0) -> list[np.ndarray]:
        """Height-normalised crops -> each crop's frames x classes log-probabilities (its own frames only)."""
        res: dict[int, np.ndarray] = {}
        for idx, logp, lens, _ in self._batches(grays, path):
            for j, i in enumerate(idx):
                res[i] = logp[:lens[j], j]
        return [res[i] for i in range(len(grays))]

    def read(self, grays: list[np.ndarray], path: int = 0) -> list[Reading]:
        """Height-normalised crops -> [(text, confidence, P(upside down))], in order."""
        res: dict[int, Reading] = {}
        for idx, logp, lens, orient in self._batches(grays, path):
            p_flip = 0.5 * (1 + np.tanh(0.5 * orient.reshape(-1)))     # sigmoid, without overflow
            for j, (i, (text, conf)) in enumerate(zip(idx, greedy_decode(logp, lens, self.tok, self.score))):
                res[i] = (text, conf, float(p_flip[j]))
        return [res[i] for i in range(len(grays))]
