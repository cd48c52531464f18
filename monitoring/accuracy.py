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
    synthetic: bool = False        # rendered (the regression suite): never pooled with real crops

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
    return {**tm.summary(), "confusions": cc.summary(), "substitutions": cc.top()}


def pooled_sets(sets: list[EvalSet]) -> list[EvalSet]:
    """The sets an overall number pools: the real ones (all of them when every set is synthetic)."""
    real = [es for es in sets if not es.synthetic]
    return real or list(sets)


def score_overall(sets: list[EvalSet], role: str) -> dict[str, Any]:
    """TextMatch over the real sets pooled (``pooled_sets``), with the set name as a slice."""
    tm, cc = TextMatch(), ConfusionCounter()
    for es in pooled_sets(sets):
        for pred, label in zip(es.predictions.get(role, []), es.labels):
            tm.update(pred, label, {"set": es.name})
            cc.update(pred, label)
    return {**tm.summary(), "confusions": cc.summary(), "substitutions": cc.top()}


OUTCOMES = ("lost", "both wrong", "gained")   # lost: champion right, challenger wrong; gained: the reverse


def outcome(right: dict[str, bool]) -> str:
    """Who read the crop right: ``lost`` / ``gained`` between champion and challenger, else ``both wrong``
    (or, with one role only, ``wrong``)."""
    if "champion" in right and "challenger" in right and right["champion"] != right["challenger"]:
        return "lost" if right["champion"] else "gained"
    return "both wrong" if len(right) > 1 else "wrong"


def worst_examples(sets: list[EvalSet], roles: list[str], k: int = 12) -> list[dict[str, Any]]:
    """Up to ``k`` crops some model got wrong: the challenger's losses first (at most half), then crops both
    read wrong, then a few gains; within each, largest edit distance first, then most confident."""
    rows: list[dict[str, Any]] = []
    for es in sets:
        for i, label in enumerate(es.labels):
            preds = {r: es.predictions[r][i] for r in roles if r in es.predictions}
            right = {r: exact_match(p, label) for r, p in preds.items()}
            if all(right.values()):
                continue
            ned = {r: norm_edit_distance(p, label) for r, p in preds.items()}
            conf = {r: float(es.confidences[r][i]) for r in preds if r in es.confidences}
            rows.append({"set": es.name, "index": i, "sample_id": es.sample_ids[i] if es.sample_ids else None,
                         "label": label, "predictions": preds, "right": right, "outcome": outcome(right),
                         "norm_edit_distance": ned, "confidence": conf})
    rows.sort(key=lambda r: (-max(r["norm_edit_distance"].values()), -max(r["confidence"].values(), default=0.0)))
    lost = [r for r in rows if r["outcome"] == "lost"][:k // 2]
    gained = [r for r in rows if r["outcome"] == "gained"][:max(1, k // 6)]
    rest = [r for r in rows if r["outcome"] not in ("lost", "gained")][:k - len(lost) - len(gained)]
    gained = [r for r in rows if r["outcome"] == "gained"][:k - len(lost) - len(rest)]
    return lost + rest + gained


def accuracy_summary(sets: list[EvalSet], gate: dict[str, Any] | None = None, worst_k: int = 12,
                     models: dict[str, Any] | None = None) -> dict[str, Any]:
    """The accuracy report's JSON: per set and overall, per role; worst examples; the gate decision."""
    roles = roles_of(sets)
    return {"roles": roles, "models": models or {},
            "overall_sets": [es.name for es in pooled_sets(sets)],
            "synthetic_sets": [es.name for es in sets if es.synthetic],
            "overall": {r: score_overall(sets, r) for r in roles},
            "sets": {es.name: {r: score_set(es, r) for r in roles if r in es.predictions} for es in sets},
            "worst_examples": worst_examples(sets, roles, worst_k),
            "gate": gate}


def per_crop_frame(sets: list[EvalSet], roles: list[str]) -> pd.DataFrame:
    """One row per crop, for Evidently: ``<role>_exact_match`` (0/1) and ``<role>_norm_edit_distance`` on the
    crops the overall pools (``pooled_sets``: the real ones), ``<role>_exact_match_synthetic`` on the synthetic
    sets (when they are not the ones pooled); NaN elsewhere (Evidently's mean skips it)."""
    pooled = {es.name for es in pooled_sets(sets)}
    synth = any(es.name not in pooled for es in sets)
    names = [f"{r}_{m}" for r in roles for m in ("exact_match", "norm_edit_distance")]
    names += [f"{r}_exact_match_synthetic" for r in roles] if synth else []
    cols: dict[str, list[float]] = {c: [] for c in names}
    for es in sets:
        real = es.name in pooled
        for r in roles:
            preds = es.predictions.get(r, [None] * len(es.labels))
            em = [np.nan if p is None else float(exact_match(p, lab)) for p, lab in zip(preds, es.labels)]
            ned = [np.nan if p is None else norm_edit_distance(p, lab) for p, lab in zip(preds, es.labels)]
            cols[f"{r}_exact_match"] += em if real else [np.nan] * len(em)
            cols[f"{r}_norm_edit_distance"] += ned if real else [np.nan] * len(ned)
            if synth:
                cols[f"{r}_exact_match_synthetic"] += [np.nan] * len(em) if real else em
    return pd.DataFrame(cols)


def accuracy_snapshot(sets: list[EvalSet], timestamp: datetime | None = None,
                      tags: list[str] | None = None) -> Snapshot:
    """Evidently snapshot with the mean exact match / edit distance per role (the workspace trend)."""
    df = per_crop_frame(sets, roles_of(sets))
    cols = list(df.columns)
    report = Report([MeanValue(column=c) for c in cols], tags=tags or [])
    return report.run(Dataset.from_pandas(df, data_definition=DataDefinition(numerical_columns=cols)), None,
                      timestamp=timestamp)
