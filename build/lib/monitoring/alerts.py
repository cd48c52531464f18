"""Alert thresholds on the drift report; the flows read ``should_retrain``."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from monitoring.drift import DriftResult


@dataclass
class AlertConfig:
    """An alert fires when a value reaches its threshold; None switches that alert off."""

    max_drift_share: float | None = 0.5              # share of drifted features
    max_correction_rate: float | None = 0.10         # share of crops users corrected (absolute)
    max_correction_rate_increase: float | None = 0.05  # over the reference window (absolute points)
    retrain_on: tuple[str, ...] = ("dataset_drift", "correction_rate", "correction_rate_increase")


@dataclass
class Alert:
    name: str
    value: float
    threshold: float
    message: str


def check_alerts(drift: DriftResult, cfg: AlertConfig | None = None) -> list[Alert]:
    """The alerts ``drift`` fires under ``cfg``, in a fixed order."""
    cfg = cfg or AlertConfig()
    out = []
    if cfg.max_drift_share is not None and drift.drift_share >= cfg.max_drift_share:
        out.append(Alert("dataset_drift", drift.drift_share, cfg.max_drift_share,
                         f"{drift.drift_share:.0%} of features drifted ({', '.join(drift.drifted_features)})"))
    rate, ref = drift.correction_rate, drift.reference_correction_rate
    if cfg.max_correction_rate is not None and rate is not None and rate >= cfg.max_correction_rate:
        out.append(Alert("correction_rate", rate, cfg.max_correction_rate,
                         f"users corrected {rate:.1%} of crops (threshold {cfg.max_correction_rate:.1%})"))
    inc = cfg.max_correction_rate_increase
    if inc is not None and rate is not None and ref is not None and rate - ref >= inc:
        out.append(Alert("correction_rate_increase", rate - ref, inc,
                         f"correction rate rose from {ref:.1%} to {rate:.1%}"))
    return out


def alert_summary(drift: DriftResult, cfg: AlertConfig | None = None) -> dict[str, Any]:
    """``{"alerts": [...], "should_retrain": bool, "thresholds": {...}}`` for the run summary."""
    cfg = cfg or AlertConfig()
    alerts = check_alerts(drift, cfg)
    return {"alerts": [asdict(a) for a in alerts],
            "should_retrain": any(a.name in cfg.retrain_on for a in alerts),
            "thresholds": asdict(cfg)}
