"""Alert thresholds on the drift report; the flows read ``should_retrain``.

A correction-rate alert needs evidence: at least ``min_rate_n`` crops with a known outcome on each side it
compares, and a rise must clear an absolute and a relative threshold and a one-sided two-proportion test
(``rate_p``). The level alone (``correction_rate``) tells people the rate is high; it does not start a retrain
by default, since a rate that has always been that high is no reason to train again tonight.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from monitoring.drift import DriftResult


@dataclass
class AlertConfig:
    """An alert fires when a value reaches its threshold; None switches that alert off."""

    max_drift_share: float | None = 0.5              # share of drifted features
    max_correction_rate: float | None = 0.10         # share of crops users corrected (absolute)
    max_correction_rate_increase: float | None = 0.05  # over the reference window (absolute points) ...
    min_rate_ratio: float = 1.25                     # ... and relative (current / reference) ...
    rate_p: float = 0.01                             # ... and a one-sided two-proportion test below this
    min_rate_n: int = 50                             # crops with a known outcome a rate needs (each side)
    retrain_on: tuple[str, ...] = ("dataset_drift", "correction_rate_increase")


@dataclass
class Alert:
    name: str
    value: float
    threshold: float
    message: str


def _enough(n: int | None, cfg: AlertConfig) -> bool:
    return n is None or n >= cfg.min_rate_n          # None: a hand-built result without counts


def rise_p_value(rate: float, n: int, ref: float, n_ref: int) -> float:
    """One-sided two-proportion z-test that ``rate`` (of ``n``) is above ``ref`` (of ``n_ref``)."""
    pooled = (rate * n + ref * n_ref) / (n + n_ref)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n_ref))
    if se == 0:
        return 0.0 if rate > ref else 1.0
    return 0.5 * math.erfc((rate - ref) / se / math.sqrt(2))


def _rose(rate: float, ref: float, drift: DriftResult, cfg: AlertConfig) -> bool:
    inc = cfg.max_correction_rate_increase
    if inc is None or rate - ref < inc or rate < cfg.min_rate_ratio * ref:
        return False
    n, n_ref = drift.n_rate_current, drift.n_rate_reference
    return n is None or n_ref is None or rise_p_value(rate, n, ref, n_ref) < cfg.rate_p


def check_alerts(drift: DriftResult, cfg: AlertConfig | None = None) -> list[Alert]:
    """The alerts ``drift`` fires under ``cfg``, in a fixed order."""
    cfg = cfg or AlertConfig()
    out = []
    if cfg.max_drift_share is not None and drift.drift_share >= cfg.max_drift_share:
        out.append(Alert("dataset_drift", drift.drift_share, cfg.max_drift_share,
                         f"{drift.drift_share:.0%} of features drifted ({', '.join(drift.drifted_features)})"))
    rate, ref = drift.correction_rate, drift.reference_correction_rate
    if rate is None or not _enough(drift.n_rate_current, cfg):
        return out
    if cfg.max_correction_rate is not None and rate >= cfg.max_correction_rate:
        out.append(Alert("correction_rate", rate, cfg.max_correction_rate,
                         f"users corrected {rate:.1%} of crops (threshold {cfg.max_correction_rate:.1%})"))
    if ref is not None and _enough(drift.n_rate_reference, cfg) and _rose(rate, ref, drift, cfg):
        out.append(Alert("correction_rate_increase", rate - ref, cfg.max_correction_rate_increase,
                         f"correction rate rose from {ref:.1%} to {rate:.1%}"))
    return out


def alert_summary(drift: DriftResult, cfg: AlertConfig | None = None) -> dict[str, Any]:
    """``{"alerts": [...], "should_retrain": bool, "thresholds": {...}}`` for the run summary."""
    cfg = cfg or AlertConfig()
    alerts = check_alerts(drift, cfg)
    return {"alerts": [asdict(a) for a in alerts],
            "should_retrain": any(a.name in cfg.retrain_on for a in alerts),
            "thresholds": asdict(cfg)}
