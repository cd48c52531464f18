"""The frozen synthetic regression suite: every brand family, every condition, a fixed seed.

Rendered once (deterministic for its config and the installed fonts) and cached under
``$TAGLOOP_HOME/cache/regression/<key>/``; its fingerprint (count + hash of ids, labels
and PNG bytes) is recorded with every gate decision, so a change of the suite is visible.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from PIL import Image

from crops.slices import length_band
from loop.gate import REGRESSION, EvalData

SUITE_VERSION = 1
CONDITIONS = ("clean", "rotated", "inverted", "low_contrast", "colored", "low_res", "blurred",
              "textured", "tilted", "clutter")


@dataclass
class RegressionConfig:
    per_family: int = 60          # crops per brand family of synth/grammar.py
    seed: int = 31_337            # never used by training pools or the benchmark test set
    fonts: str = "all"
    p_rot90: float = 0.06
    p_rot180: float = 0.04
    min_per_condition: int = 3    # extra renders until every condition has this many crops


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def render_suite(cfg: RegressionConfig) -> pd.DataFrame:
    """Rows ``id, label, brand, condition, length, image`` (PNG bytes), deterministic for ``cfg``."""
    from synth.grammar import FAMILIES
    from synth.render import Renderer, RenderConfig

    rows = []
    for k, fam in enumerate(sorted(FAMILIES)):
        renderer = Renderer(RenderConfig(fonts=cfg.fonts, brand_mix={fam: 1.0}, p_rot90=cfg.p_rot90,
                                         p_rot180=cfg.p_rot180), seed=cfg.seed + k)
        rng = np.random.default_rng(cfg.seed + k)
        for i in range(cfg.per_family):
            rows.append(_row(f"{fam}-{i:04d}", renderer.render(rng)))
    _cover_conditions(rows, cfg)
    return pd.DataFrame(rows)


def _row(crop_id: str, crop) -> dict:
    return {"id": crop_id, "label": crop.label, "brand": crop.brand, "condition": crop.condition,
            "length": length_band(crop.label), "image": _png(crop.image)}


def _cover_conditions(rows: list[dict], cfg: RegressionConfig) -> None:
    """Render extra crops (own seed, all families) until each condition has ``min_per_condition``."""
    from synth.render import Renderer, RenderConfig

    renderer = Renderer(RenderConfig(fonts=cfg.fonts, p_rot90=0.3, p_rot180=0.1), seed=cfg.seed - 1)
    rng = np.random.default_rng(cfg.seed - 1)
    for i in range(5000):
        counts = pd.Series([r["condition"] for r in rows]).value_counts()
        missing = [c for c in CONDITIONS if counts.get(c, 0) < cfg.min_per_condition]
        if not missing:
            return
        crop = renderer.render(rng)
        if crop.condition in missing:
            rows.append(_row(f"extra-{i:04d}", crop))
    raise RuntimeError(f"regression suite: could not cover conditions {missing}")


def suite_key(cfg: RegressionConfig) -> str:
    return hashlib.sha256(json.dumps([SUITE_VERSION, asdict(cfg)], sort_keys=True).encode()).hexdigest()[:12]


def load_suite(home: str, cfg: RegressionConfig | None = None) -> tuple[EvalData, dict]:
    """The cached suite as an ``EvalData`` named ``regression`` + its info (key, fingerprint, coverage)."""
    cfg = cfg or RegressionConfig()
    root = os.path.join(home, "cache", "regression", suite_key(cfg))
    path = os.path.join(root, "suite.parquet")
    if not os.path.exists(path):
        df = render_suite(cfg)
        os.makedirs(root, exist_ok=True)
        df.to_parquet(path + ".tmp", index=False)
        os.replace(path + ".tmp", path)
    df = pd.read_parquet(path)
    data = EvalData(REGRESSION, list(df["id"]), list(df["label"]), [bytes(b) for b in df["image"]],
                    {"brand": list(df["brand"]), "condition": list(df["condition"]), "length": list(df["length"])})
    info = {"key": suite_key(cfg), "fingerprint": data.fingerprint(), "n": len(df), "config": asdict(cfg),
            "brands": sorted(set(df["brand"])), "conditions": sorted(set(df["condition"]))}
    return data, info
