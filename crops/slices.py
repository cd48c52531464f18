"""The slice columns a crop is judged by: length band, tilt band, coarse image condition.

Synthetic crops carry their render condition; real crops get ``image_condition`` from their
stored features. Evaluation sets, the gate's slice checks, the training mix's targeting and
the rendered datasets' ``labels.csv`` all use these definitions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from crops.codes import format_family

CONDITION_FEATURES = ["brightness", "contrast", "blur", "height"]   # the stored features a condition is read from


def length_band(label: str) -> str:
    """Code length -> ``5-7``, ``8-10``, ``11-14`` or ``15+`` characters."""
    n = len(label)
    return "5-7" if n <= 7 else "8-10" if n <= 10 else "11-14" if n <= 14 else "15+"


def tilt_band(angle: float) -> str:
    """Text tilt in degrees -> ``0-5``, ``5-15`` or ``15-30``."""
    a = abs(angle)
    return "0-5" if a < 5 else "5-15" if a < 15 else "15-30"


def image_condition(brightness: float, contrast: float, blur: float, height: float) -> str:
    """Coarse condition of a real crop from its stored features (real crops carry no render tags).

    Thresholds (grey levels 0-255, Laplacian variance, pixels) mirror the synthetic conditions:
    dark label -> inverted, low grey std -> low_contrast, small -> low_res, soft -> blurred.
    """
    if np.isnan(np.array([brightness, contrast, blur, height], dtype=float)).any():
        return "unknown"
    if brightness < 90:
        return "inverted"
    if contrast < 30:
        return "low_contrast"
    if height < 20:
        return "low_res"
    if blur < 60:
        return "blurred"
    return "clean"


def conditions(features: pd.DataFrame) -> list[str]:
    """``image_condition`` of every row of a feature table (a dataset manifest)."""
    if not len(features):
        return []
    return [image_condition(*r) for r in features[CONDITION_FEATURES].astype(float).itertuples(index=False)]


def real_slices(labels: Sequence[str], features: pd.DataFrame) -> dict[str, list[str]]:
    """Slice columns of real crops: ``brand`` (``format_family``), ``condition``, ``length``."""
    return {"brand": [format_family(x) for x in labels], "condition": conditions(features),
            "length": [length_band(x) for x in labels]}
