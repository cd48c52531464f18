"""Drift report: reference feature table vs current batch, with Evidently 0.7's ``Report``.

Numeric features: Evidently picks the test by size (K-S p-value up to 1000 rows,
normed Wasserstein distance above). Categorical features: Jensen-Shannon
distance (drift above 0.1), because chi-square returns p = 0 as soon as a
category seen once in the current batch is absent from the reference, and the
total-variation p-value runs a permutation test that took ~70 s of a 10k-crop
report on 2 cores. A feature drifts
when its ValueDrift test fails. The dataset drifts when the share of drifted
features reaches ``DriftConfig.drift_share``. The correction rate (share of crops
the users had to correct) is computed beside it, for both windows.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.metrics import MeanValue
from evidently.presets import DataDriftPreset

from monitoring.table import CATEGORICAL_FEATURES, NUMERIC_FEATURES, correction_rate

CORRECTED_NUM = "corrected_share"   # 0/1 copy of ``corrected``: its mean is the correction rate


@dataclass
class DriftConfig:
    """Dataset drift verdict threshold and optional per-type test overrides (Evidently names)."""

    drift_share: float = 0.5          # dataset drift when >= this share of features drift
    num_method: str | None = None     # e.g. "ks", "wasserstein"; None = Evidently's choice by size
    cat_method: str | None = "jensenshannon"  # a distance: robust to new rare categories, and fast
    threshold: float | None = None    # per-test threshold; None = the method's default


@dataclass
class FeatureDrift:
    score: float
    method: str
    threshold: float
    drifted: bool


@dataclass
class DriftResult:
    n_reference: int
    n_current: int
    features: dict[str, FeatureDrift]
    drifted_features: list[str]
    drift_share: float
    dataset_drift: bool
    skipped_features: list[str]
    correction_rate: float | None
    reference_correction_rate: float | None
    config: DriftConfig = field(default_factory=DriftConfig)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        delta = None
        if self.correction_rate is not None and self.reference_correction_rate is not None:
            delta = self.correction_rate - self.reference_correction_rate
        out["correction_rate_change"] = delta
        return out


def usable_features(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """(numeric, categorical, skipped): a feature with no values on either side cannot be compared."""
    ok = lambda c: reference[c].notna().any() and current[c].notna().any()  # noqa: E731
    num = [c for c in NUMERIC_FEATURES if ok(c)]
    cat = [c for c in CATEGORICAL_FEATURES if ok(c)]
    skipped = [c for c in NUMERIC_FEATURES + CATEGORICAL_FEATURES if c not in num + cat]
    return num, cat, skipped


def _dataset(table: pd.DataFrame, num: list[str], cat: list[str], with_rate: bool) -> Dataset:
    """Evidently dataset of the compared features (+ the 0/1 ``corrected_share`` column when asked)."""
    df = table[num + cat].copy()
    extra = [CORRECTED_NUM] if with_rate else []
    if with_rate:
        df[CORRECTED_NUM] = table["corrected"].map({"yes": 1.0, "no": 0.0}).astype("float64")
    return Dataset.from_pandas(df, data_definition=DataDefinition(numerical_columns=num + extra,
                                                                  categorical_columns=cat))


def run_drift(reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftConfig | None = None,
              timestamp: datetime | None = None, tags: list[str] | None = None) -> tuple[DriftResult, Snapshot]:
    """Feature tables (``monitoring.table``) -> (drift result, Evidently snapshot)."""
    cfg = cfg or DriftConfig()
    if reference.empty or current.empty:
        raise ValueError(f"drift needs rows on both sides (reference {len(reference)}, current {len(current)})")
    num, cat, skipped = usable_features(reference, current)
    if not num + cat:
        raise ValueError("no feature has values in both the reference and the current table")
    metrics: list = [DataDriftPreset(columns=num + cat, drift_share=cfg.drift_share, num_method=cfg.num_method,
                                     cat_method=cfg.cat_method, threshold=cfg.threshold)]
    with_rate = bool(current["corrected"].notna().any())
    if with_rate:
        metrics.append(MeanValue(column=CORRECTED_NUM))
    report = Report(metrics, include_tests=True, tags=tags or [])
    snap = report.run(_dataset(current, num, cat, with_rate), _dataset(reference, num, cat, with_rate),
                      timestamp=timestamp)
    features = feature_drift(snap.dict())
    drifted = [c for c in num + cat if features[c].drifted]
    share = len(drifted) / len(features)
    result = DriftResult(len(reference), len(current), features, drifted, share, share >= cfg.drift_share, skipped,
                         correction_rate(current), correction_rate(reference), cfg)
    return result, snap


def feature_drift(snapshot: dict[str, Any]) -> dict[str, FeatureDrift]:
    """Per-column ValueDrift score, method, threshold and test verdict from a snapshot's ``dict()``."""
    failed = {t["metric_config"]["metric_id"] for t in snapshot["tests"] if t["status"] == "FAIL"}
    out = {}
    for m in snapshot["metrics"]:
        conf = m["config"]
        if conf["type"].endswith(":ValueDrift"):
            out[conf["column"]] = FeatureDrift(float(m["value"]), conf["method"], float(conf["threshold"]),
                                               m["id"] in failed)
    return out
