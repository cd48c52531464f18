"""One feature row per crop: the table the drift report compares across nights.

Image columns come from ``crops.features`` (the same numbers ingest stores
in the dataset manifest, so a manifest is reused as is and nothing is decoded
twice); label columns are derived from the final label; ``confidence`` and
``corrected`` come from the serving app's sidecar.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from crops.codes import format_family
from crops.features import char_classes, digit_share, image_stats
from recognizer.metrics import exact_match

IMAGE_FEATURES = ["width", "height", "aspect", "brightness", "contrast", "blur"]
NUMERIC_FEATURES = IMAGE_FEATURES + ["label_length", "digit_share", "confidence"]
CATEGORICAL_FEATURES = ["format_family", "char_classes", "corrected"]
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES
CONTEXT_COLUMNS = ["sample_id", "label", "predicted_label"]   # carried along, never drift-tested

def corrected_flag(predicted: str | None, label: str | None) -> str | None:
    """``yes`` when the user changed the prediction (not an exact match), ``no`` when accepted, None if unknown."""
    if predicted is None or label is None or (isinstance(predicted, float) and np.isnan(predicted)):
        return None
    return "no" if exact_match(str(predicted), str(label)) else "yes"


def _label_columns(labels: Sequence[str | None], predicted: Sequence[str | None]) -> dict[str, list]:
    return {"label_length": [float(len(lab or "")) for lab in labels],
            "digit_share": [digit_share(lab) for lab in labels],
            "format_family": [format_family(lab) for lab in labels],
            "char_classes": [char_classes(lab) or "none" for lab in labels],
            "corrected": [corrected_flag(p, lab) for p, lab in zip(predicted, labels)]}


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    """Canonical column order and dtypes (numeric float64, categorical object with None)."""
    for c in NUMERIC_FEATURES:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    for c in CATEGORICAL_FEATURES + CONTEXT_COLUMNS:
        df[c] = df[c].astype("object").where(df[c].notna(), None)
    return df[CONTEXT_COLUMNS + FEATURES].reset_index(drop=True)


def table_from_manifest(manifest: pd.DataFrame) -> pd.DataFrame:
    """Dataset manifest (``ingest.dataset.MANIFEST_COLUMNS``) -> feature table, no image decoding.

    Confidence is the serving model's (sidecar), else the champion's read at ingest.
    """
    n = len(manifest)
    col = lambda name: manifest[name] if name in manifest else pd.Series([None] * n, index=manifest.index)  # noqa: E731
    labels = [v if isinstance(v, str) else None for v in col("label")]
    predicted = [v if isinstance(v, str) else None for v in col("predicted_label")]
    conf = pd.to_numeric(col("sidecar_confidence"), errors="coerce")
    conf = conf.fillna(pd.to_numeric(col("champion_confidence"), errors="coerce"))
    df = pd.DataFrame({"sample_id": list(col("sample_id")), "label": labels, "predicted_label": predicted,
                       **{c: list(col(c)) for c in IMAGE_FEATURES}, "confidence": list(conf),
                       **_label_columns(labels, predicted)})
    return _finish(df)


def image_rows(images: Iterable[np.ndarray]) -> list[dict[str, float]]:
    """RGB crops (H x W x 3 uint8) -> width, height, aspect, brightness, contrast, blur per crop."""
    rows = []
    for img in images:
        h, w = img.shape[:2]
        stats = image_stats(img)
        rows.append({"width": float(w), "height": float(h), "aspect": w / h, "brightness": stats["brightness"],
                     "contrast": stats["contrast"], "blur": stats["blur"]})
    return rows


def table_from_crops(images: Sequence[np.ndarray], labels: Sequence[str | None],
                     predicted: Sequence[str | None] | None = None,
                     confidences: Sequence[float | None] | None = None,
                     sample_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """In-memory crops (e.g. fresh renders) + labels -> feature table; missing inputs become None."""
    n = len(images)
    if len(labels) != n:
        raise ValueError(f"{n} images but {len(labels)} labels")
    predicted = list(predicted) if predicted is not None else [None] * n
    confidences = list(confidences) if confidences is not None else [None] * n
    df = pd.DataFrame(image_rows(images), columns=IMAGE_FEATURES)
    df["sample_id"] = list(sample_ids) if sample_ids is not None else [f"crop-{i}" for i in range(n)]
    df["label"] = list(labels)
    df["predicted_label"] = predicted
    df["confidence"] = confidences
    for c, vals in _label_columns(list(labels), predicted).items():
        df[c] = vals
    return _finish(df)


def correction_rate(table: pd.DataFrame) -> float | None:
    """Share of crops whose user label differs from the served prediction; None when none is known."""
    known = table["corrected"].dropna()
    return float((known == "yes").mean()) if len(known) else None
