"""The registered model as an MLflow pyfunc: weights + JSON config, loaded without unpickling.

The model is logged with MLflow "models from code": ``python_model`` is the path of
``loop/pyfunc_model.py`` (which only calls ``mlflow.models.set_model``), the
artifact directory (``config.json`` + ``model.safetensors``) rides along as the
artifact ``model``. Input: a DataFrame with a column ``image`` of encoded crop
bytes (PNG/JPEG, any size and orientation; base64 text is accepted too).
Output: ``prediction``, ``confidence`` and ``error`` (empty when the crop was read).
"""
from __future__ import annotations

import base64
import binascii
import os
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

ARTIFACT_KEY = "model"       # name of the weights+config directory inside the logged model
MODEL_CODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pyfunc_model.py")
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("binary", "image")]),
    outputs=Schema([ColSpec("string", "prediction"), ColSpec("double", "confidence"), ColSpec("string", "error")]))


def _as_bytes(value: Any) -> bytes:
    """Cell of the ``image`` column -> encoded bytes (raw bytes or base64 text)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("image column: text that is not base64") from None
    raise ValueError(f"image column: expected bytes or base64 text, got {type(value).__name__}")


class RecognizerModel(mlflow.pyfunc.PythonModel):
    """pyfunc over ``recognizer.predict.Predictor`` (variable-width crops, orientation handled)."""

    def load_context(self, context: Any) -> None:
        from recognizer.predict import Predictor

        self.predictor = Predictor(context.artifacts[ARTIFACT_KEY])

    def predict(self, context, model_input, params=None):  # untyped: MLflow would infer a schema from hints
        from crops.image import CropError, decode_image

        if not isinstance(model_input, pd.DataFrame) or "image" not in model_input.columns:
            raise ValueError("input must be a DataFrame with a column 'image' (encoded crop bytes)")
        out = [("", 0.0, "")] * len(model_input)
        ok, arrays = [], []
        for i, cell in enumerate(model_input["image"]):
            try:
                arrays.append(decode_image(_as_bytes(cell)))
                ok.append(i)
            except (CropError, ValueError) as e:
                out[i] = ("", 0.0, str(e))
        for i, p in zip(ok, self.predictor.predict_arrays(arrays) if arrays else []):
            out[i] = (p.text, float(p.confidence), "")
        return pd.DataFrame(out, columns=["prediction", "confidence", "error"])


def log_recognizer(model_dir: str, name: str = "model") -> Any:
    """Log the artifact directory ``model_dir`` as a pyfunc in the active run; returns the ModelInfo.

    The artifact's ONNX graphs are exported first (``recognizer.engine.export_onnx``), so whoever
    loads the registered model reads without exporting, and without importing torch.
    """
    from recognizer.engine import export_onnx, stored_onnx

    if not stored_onnx(model_dir):
        export_onnx(model_dir)
    return mlflow.pyfunc.log_model(name=name, python_model=MODEL_CODE, artifacts={ARTIFACT_KEY: model_dir},
                                   signature=SIGNATURE, pip_requirements=_requirements())


def _requirements() -> list[str]:
    """Pinned runtime needs of the pyfunc (no environment inference, which would load the model)."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for pkg in ("tagloop", "torch", "numpy", "pillow", "opencv-python-headless", "safetensors",
                "onnxruntime", "pandas", "mlflow"):
        try:
            reqs.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            reqs.append(pkg)
    return reqs
