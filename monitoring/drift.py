"""Drift report: reference feature table vs current batch, with Evidently 0.7's ``Report``.

Numeric features: Evidently picks the test by size (K-S p-value up to 1000 rows,
normed Wasserstein distance above). Categorical features: Jensen-Shannon
distance, because chi-square returns p = 0 as soon as a category seen once in
the current batch is absent from the reference, and the total-variation p-value
runs a permutation test that took ~70 s of a 10k-crop report on 2 cores. A
distance alone ignores sample size: two samples of 120 crops from the *same* mix
of 11 brand families sit ~0.1 apart by chance. So categorical features use the
stat test ``sized_jensenshannon`` registered here: the Jensen-Shannon distance,
drifting above the larger of the threshold (0.1) and the 99th percentile of the
distance between two samples of the batch sizes drawn from the pooled
distribution (``categorical_threshold``, seeded, a few milliseconds): small
batches need a larger change to count. The test's name and threshold stay the
same every night, so the workspace trend stays one series. A feature drifts
when its ValueDrift test fails. The dataset drifts when the share of drifted
features reaches ``DriftConfig.drift_share``. The correction rate (share of crops
the users had to correct) is computed beside it, for both windows.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import distance
from evidently import DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
from evidently.legacy.calculations.stattests.utils import get_binned_data
from evidently.legacy.core import ColumnType
from evidently.metrics import MeanValue
from evidently.presets import DataDriftPreset

from monitoring.table import CATEGORICAL_FEATURES, NUMERIC_FEATURES, correction_rate

CORRECTED_NUM = "corrected_share"   # 0/1 copy of ``corrected``: its mean is the correction rate


@dataclass
class DriftConfig:
    """Dataset drift verdict threshold and optional per-type test overrides (Evidently names)."""

    drift_share: float = 0.5          # dataset drift when >= this share of features drift
    num_method: str | None = None     # e.g. "ks", "wasserstein"; None = Evidently's choice by size
    cat_method: str | None = "sized_jensenshannon"  # a distance: robust to new rare categories, fast
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
    n_rate_current: int | None = None        # crops whose corrected/not-corrected is known (the rates' n)
    n_rate_reference: int | None = None

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
    for c in cat:                     # report the threshold the sized test actually applied
        f = features[c]
        if f.method == SIZED_JS.name:
            f.threshold = categorical_threshold(reference[c], current[c], f.threshold)
    drifted = [c for c in num + cat if features[c].drifted]
    share = len(drifted) / len(features)
    result = DriftResult(len(reference), len(current), features, drifted, share, share >= cfg.drift_share, skipped,
                         correction_rate(current), correction_rate(reference), cfg,
                         int(current["corrected"].notna().sum()), int(reference["corrected"].notna().sum()))
    return result, snap


NULL_QUANTILE = 0.99


def categorical_threshold(reference: pd.Series, current: pd.Series, floor: float = 0.1, draws: int = 500,
                          seed: int = 0) -> float:
    """max(``floor``, the 99th percentile of the Jensen-Shannon distance under no drift).

    No drift = both samples drawn (multinomial, the batch sizes) from the pooled category
    frequencies; the distance is computed as Evidently computes it (category shares, natural log).
    """
    ref, cur = reference.dropna().astype(str), current.dropna().astype(str)
    pooled = pd.concat([ref, cur]).value_counts(normalize=True).sort_index().to_numpy()
    if len(ref) == 0 or len(cur) == 0 or len(pooled) < 2:
        return floor
    rng = np.random.default_rng(seed)
    a = rng.multinomial(len(ref), pooled, size=draws) / len(ref)
    b = rng.multinomial(len(cur), pooled, size=draws) / len(cur)
    return round(max(floor, float(np.quantile(distance.jensenshannon(a, b, axis=1), NULL_QUANTILE))), 4)


def _sized_js(reference: pd.Series, current: pd.Series, feature_type: ColumnType, threshold: float) -> tuple[float, bool]:
    ref_shares, cur_shares = get_binned_data(reference, current, feature_type, 30, False)
    score = float(distance.jensenshannon(ref_shares, cur_shares))
    return score, score >= categorical_threshold(reference, current, threshold)


SIZED_JS = StatTest(name="sized_jensenshannon", display_name="Jensen-Shannon distance, sample-size aware",
                    allowed_feature_types=[ColumnType.Categorical], default_threshold=0.1)
register_stattest(SIZED_JS, _sized_js)


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
