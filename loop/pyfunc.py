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
import re
import shutil
import tempfile
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
    """Cell of the ``image`` column -> encoded bytes: raw bytes, or base64 text (as ``str``, or as bytes: the
    scoring server's ``{"inputs": ...}`` format hands base64 over as the bytes of its text). Bytes that are
    base64 text throughout are decoded; encoded images never are (PNG, JPEG, WebP, BMP, TIFF and GIF
    headers all hold bytes outside the base64 alphabet)."""
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if isinstance(value, bytes):
        if value and _BASE64.fullmatch(value):
            return base64.b64decode(value)
        return value
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("image column: text that is not base64") from None
    raise ValueError(f"image column: expected bytes or base64 text, got {type(value).__name__}")


_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\s*")


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
    loads the registered model reads without exporting, and without torch. The code the pyfunc runs
    (``recognizer``, ``crops``, this module) travels with the model (``code_paths``), so its
    requirements are public packages only (``requirements``) and ``mlflow models serve`` can build
    its environment anywhere. An input example (one crop) is logged and MLflow checks it serves.
    """
    from recognizer.engine import export_onnx, stored_onnx

    if not stored_onnx(model_dir):
        export_onnx(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        return mlflow.pyfunc.log_model(name=name, python_model=MODEL_CODE, artifacts={ARTIFACT_KEY: model_dir},
                                       code_paths=_stage_code(tmp), signature=SIGNATURE,
                                       pip_requirements=requirements(), input_example=input_example())


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = {"recognizer": None, "crops": None, "loop": ["__init__.py", "pyfunc.py"]}   # package -> files (None: all)
# what reading a crop imports (recognizer.predict over the stored ONNX graphs) and this module
RUNTIME = ("numpy", "pillow", "opencv-python-headless", "onnxruntime", "pandas", "mlflow")


def _stage_code(tmp: str) -> list[str]:
    """The packages the pyfunc imports, their ``.py`` files (no weights, no caches) and the photo reader's
    graph, under ``tmp``."""
    out = []
    for pkg, files in CODE.items():
        src, dst = os.path.join(ROOT, pkg), os.path.join(tmp, pkg)
        os.makedirs(dst)
        for f in files or sorted(f for f in os.listdir(src) if f.endswith(".py")):
            shutil.copy(os.path.join(src, f), dst)
        out.append(dst)
    photo = os.path.join(ROOT, "recognizer", "photo_model")
    if os.path.isfile(os.path.join(photo, "model.onnx")):   # the photo reader reads unsure crops (predict.py)
        os.makedirs(os.path.join(tmp, "recognizer", "photo_model"))
        for f in ("config.json", "model.onnx"):
            shutil.copy(os.path.join(photo, f), os.path.join(tmp, "recognizer", "photo_model", f))
    return out


def requirements() -> list[str]:
    """The pyfunc's runtime needs, pinned to the installed versions' public part (``torch`` is not one:
    the model reads with ONNX Runtime; a local version label such as ``+cpu`` is no PyPI version)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    reqs = []
    for pkg in RUNTIME:
        try:
            reqs.append(f"{pkg}=={Version(version(pkg)).public}")
        except PackageNotFoundError:
            reqs.append(pkg)
    return reqs


def input_example() -> pd.DataFrame:
    """One crop (a product code drawn on a light label) as the ``image`` column expects it."""
    import io

    from PIL import Image, ImageDraw

    im = Image.new("L", (120, 24), 235)
    ImageDraw.Draw(im).text((6, 6), "DD1391-100", fill=20)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return pd.DataFrame({"image": [buf.getvalue()]})
