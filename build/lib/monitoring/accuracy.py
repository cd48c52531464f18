"""Accuracy report data: champion vs challenger on the same evaluation sets.

Every number comes from ``recognizer.metrics`` (``TextMatch``: exact match and
normalised edit distance, overall and per slice); confusions from
``monitoring.confusions``. Plain inputs (``EvalSet``), so the gate and the
flows can call it with what they already hold.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.metrics import MeanValue

from monitoring.confusions import ConfusionCounter
from recognizer.metrics import TextMatch, exact_match, norm_edit_distance


@dataclass
class EvalSet:
    """One evaluation set read by several models; every list is aligned with ``labels``."""

    name: str
    labels: list[str]
    predictions: dict[str, list[str]]                        # role ("champion", ...) -> texts
    confidences: dict[str, list[float]] = field(default_factory=dict)
    slices: dict[str, list[str]] = field(default_factory=dict)  # slice column -> value per crop
    images: list[np.ndarray] | None = None                   # RGB crops, for thumbnails only
    sample_ids: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.labels)
        for what, cols in (("predictions", self.predictions), ("confidences", self.confidences),
                           ("slices", self.slices)):
            bad = [k for k, v in cols.items() if len(v) != n]
            if bad:
                raise ValueError(f"set {self.name!r}: {what} {bad} not aligned with {n} labels")
        if self.images is not None and len(self.images) != n:
            raise ValueError(f"set {self.name!r}: {len(self.images)} images for {n} labels")


def roles_of(sets: list[EvalSet]) -> list[str]:
    """Model roles in first-seen order (``champion`` first when present)."""
    roles = list(dict.fromkeys(r for s in sets for r in s.predictions))
    return sorted(roles, key=lambda r: (r != "champion", r != "challenger"))


def score_set(es: EvalSet, role: str) -> dict[str, Any]:
    """TextMatch summary (n, exact_match, norm_edit_distance, slices) + confusions of ``role`` on ``es``."""
    tm, cc = TextMatch(), ConfusionCounter()
    for i, (pred, label) in enumerate(zip(es.predictions[role], es.labels)):
        tm.update(pred, label, {c: v[i] for c, v in es.slices.items()})
        cc.update(pred, label)
    return {**tm.summary(), "confusions": cc.summary()}


def score_overall(sets: list[EvalSet], role: str) -> dict[str, Any]:
    """TextMatch over all sets pooled, with the set name as a slice."""
    tm, cc = TextMatch(), ConfusionCounter()
    for es in sets:
        for pred, label in zip(es.predictions.get(role, []), es.labels):
            tm.update(pred, label, {"set": es.name})
            cc.update(pred, label)
    return {**tm.summary(), "confusions": cc.summary()}


def worst_examples(sets: list[EvalSet], roles: list[str], k: int = 12) -> list[dict[str, Any]]:
    """The ``k`` crops some model got wrong, worst first (largest edit distance, then most confident)."""
    rows: list[dict[str, Any]] = []
    for es in sets:
        for i, label in enumerate(es.labels):
            preds = {r: es.predictions[r][i] for r in roles if r in es.predictions}
            if all(exact_match(p, label) for p in preds.values()):
                continue
            ned = {r: norm_edit_distance(p, label) for r, p in preds.items()}
            conf = {r: float(es.confidences[r][i]) for r in preds if r in es.confidences}
            rows.append({"set": es.name, "index": i, "sample_id": es.sample_ids[i] if es.sample_ids else None,
                         "label": label, "predictions": preds, "norm_edit_distance": ned, "confidence": conf})
    rows.sort(key=lambda r: (-max(r["norm_edit_distance"].values()), -max(r["confidence"].values(), default=0.0)))
    return rows[:k]


def accuracy_summary(sets: list[EvalSet], gate: dict[str, Any] | None = None, worst_k: int = 12,
                     models: dict[str, Any] | None = None) -> dict[str, Any]:
    """The accuracy report's JSON: per set and overall, per role; worst examples; the gate decision."""
    roles = roles_of(sets)
    return {"roles": roles, "models": models or {},
            "overall": {r: score_overall(sets, r) for r in roles},
            "sets": {es.name: {r: score_set(es, r) for r in roles if r in es.predictions} for es in sets},
            "worst_examples": worst_examples(sets, roles, worst_k),
            "gate": gate}


def per_crop_frame(sets: list[EvalSet], roles: list[str]) -> pd.DataFrame:
    """One row per crop: ``<role>_exact_match`` (0/1) and ``<role>_norm_edit_distance``, for Evidently."""
    cols: dict[str, list[float]] = {f"{r}_{m}": [] for r in roles for m in ("exact_match", "norm_edit_distance")}
    for es in sets:
        for r in roles:
            preds = es.predictions.get(r, [None] * len(es.labels))
            for p, label in zip(preds, es.labels):
                cols[f"{r}_exact_match"].append(np.nan if p is None else float(exact_match(p, label)))
                cols[f"{r}_norm_edit_distance"].append(np.nan if p is None else norm_edit_distance(p, label))
    return pd.DataFrame(cols)


def accuracy_snapshot(sets: list[EvalSet], timestamp: datetime | None = None,
                      tags: list[str] | None = None) -> Snapshot:
    """Evidently snapshot with the mean exact match / edit distance per role (the workspace trend)."""
    df = per_crop_frame(sets, roles_of(sets))
    cols = list(df.columns)
    report = Report([MeanValue(column=c) for c in cols], tags=tags or [])
    return report.run(Dataset.from_pandas(df, data_definition=DataDefinition(numerical_columns=cols)), None,
                      timestamp=timestamp)
