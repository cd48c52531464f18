"""Score crops with a model artifact: bytes from the bucket -> one prediction record per crop.

An unreadable crop (missing, too large, not an image) gets an empty prediction,
confidence 0 and the reason in ``error``; the rest of the chunk goes on.
"""
from __future__ import annotations

import json
import os
import re
import threading
from typing import Any

import numpy as np

from bucket.storage import ObjectNotFound, Storage
from crops.image import CropError, decode_image
from recognizer.checkpoint import weights_sha256
from recognizer.predict import Predictor
from scoring.incoming import IncomingCrop

MAX_OBJECT_BYTES = 50_000_000          # larger objects are reported, not downloaded
_LOCK = threading.Lock()
_PREDICTORS: dict[str, Predictor] = {}


def model_version(model_dir: str) -> str:
    """A fact about the artifact: ``meta.registry_version`` when the registry wrote one,
    else ``sha256:<12 hex>`` of the weights file."""
    with open(os.path.join(model_dir, "config.json")) as f:
        meta = json.load(f).get("meta") or {}
    if meta.get("registry_version") is not None:
        return str(meta["registry_version"])
    return "sha256:" + weights_sha256(model_dir)[:12]


def get_predictor(model_dir: str) -> Predictor:
    """One Predictor per model directory and process (loading exports ONNX: seconds, not per chunk)."""
    with _LOCK:
        if model_dir not in _PREDICTORS:
            _PREDICTORS[model_dir] = Predictor(model_dir)
        return _PREDICTORS[model_dir]


def read_crop(storage: Storage, crop: IncomingCrop) -> tuple[np.ndarray | None, str]:
    """(RGB array, "") or (None, reason) for one incoming crop."""
    if crop.size > MAX_OBJECT_BYTES:
        return None, f"file too large ({crop.size} bytes, limit {MAX_OBJECT_BYTES})"
    try:
        return decode_image(storage.read(crop.key)), ""
    except ObjectNotFound:
        return None, "object disappeared before it could be read"
    except CropError as e:
        return None, re.sub(r" ?<[^<>]* at 0x[0-9a-f]+>", "", str(e))   # no memory addresses in reports


def score_crops(storage: Storage, crops: list[IncomingCrop], predictor: Predictor,
                model: dict[str, str], scored_at: str) -> list[dict[str, Any]]:
    """Crops -> records ``{crop_id, key, day, prediction, confidence, rotation, model_ref,
    model_version, scored_at, error}`` in input order. ``model``: ``{"ref", "version"}``."""
    read = [read_crop(storage, c) for c in crops]
    ok = [i for i, (img, _) in enumerate(read) if img is not None]
    preds = dict(zip(ok, predictor.predict_arrays([read[i][0] for i in ok]))) if ok else {}
    out = []
    for i, c in enumerate(crops):
        p = preds.get(i)
        out.append({"crop_id": c.crop_id, "key": c.key, "day": c.day,
                    "prediction": p.text if p else "", "confidence": round(float(p.confidence), 6) if p else 0.0,
                    "rotation": p.rotation if p else 0, "model_ref": model["ref"],
                    "model_version": model["version"], "scored_at": scored_at, "error": read[i][1]})
    return out


def chunked(items: list[Any], size: int) -> list[list[Any]]:
    """Consecutive chunks of at most ``size`` items."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    return [items[s:s + size] for s in range(0, len(items), size)]
