"""The training mix: new accepted corrections + replay of earlier real data + targeted synthetic crops.

``new`` rows are the train-split rows of the dataset version that the champion has not
been trained on; ``replay`` rows are the earlier train-split rows. Synthetic crops are
rendered fresh; ``MixConfig.targeted`` of them follow a plan built from the champion's
errors on the new rows (its reading at ingest, stored in the manifest): brand families,
characters and coarse conditions it misreads more often get proportionally more crops,
and characters the charset lacks are put into synthetic codes. Counts, ratios and the
plan are recorded with the run.
"""
from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from crops.codes import format_family
from crops.image import CropError, decode_image, to_gray
from crops.slices import conditions
from recognizer.metrics import exact_match
from recognizer.preprocess import resize_height
from recognizer.pool import Pool
from recognizer.tokenizer import DEFAULT_CHARSET

# coarse condition (crops.slices.image_condition) -> RenderConfig probability it raises
CONDITION_KNOBS = {"inverted": "p_inverted", "low_contrast": "p_low_contrast", "low_res": "p_low_res",
                   "blurred": "p_blur"}


@dataclass
class MixConfig:
    """Shares of the training mix (normalised) and how synthetic crops are chosen."""

    new: float = field(default=0.5, metadata={"help": "share of new corrections in the training mix (all are used)"})
    replay: float = field(default=0.25, metadata={"help": "share of replayed earlier real crops"})
    synthetic: float = field(default=0.25, metadata={"help": "share of freshly rendered synthetic crops"})
    targeted: float = field(default=0.7, metadata={"help": "share of synthetic crops aimed at the champion's errors"})
    min_synthetic: int = field(default=2000, metadata={
        "help": "at least this many unique synthetic crops (real rows repeat to keep the shares)"})
    max_synthetic: int = 20_000
    val_share: float = 0.15       # share of new codes kept out of training for early stopping
    min_val: int = 60             # validation crops (topped up with synthetic ones)
    anchor: int = 1500            # suite-like renders the blend is chosen on (loop.mix.render_anchor; 0: no blending)
    seed: int = field(default=0, metadata={"help": "seed of the mix and its rendering"})
    workers: int = field(default=2, metadata={"help": "rendering processes"})

    def __post_init__(self) -> None:
        shares = (self.new, self.replay, self.synthetic)
        if min(shares) < 0 or self.new <= 0:
            raise ValueError(f"mix shares must be >= 0 with new > 0, got new/replay/synthetic={shares}")
        if not 0 <= self.targeted <= 1 or not 0 <= self.val_share < 1:
            raise ValueError("targeted must be in [0, 1] and val_share in [0, 1)")


@dataclass
class TargetPlan:
    """How targeted synthetic crops are rendered."""

    brand_mix: dict[str, float]
    render: dict[str, float]                  # RenderConfig overrides (condition probabilities)
    char_weights: dict[str, float]            # characters to favour in codes, by error rate
    inject_chars: str = ""                    # characters outside the base charset to put in codes
    errors: dict[str, dict] = field(default_factory=dict)   # the error rates it was built from


def _rate_table(keys: list[str], wrong: list[bool]) -> dict[str, dict]:
    n, bad = Counter(keys), Counter(k for k, w in zip(keys, wrong) if w)
    return {k: {"n": n[k], "error_rate": bad[k] / n[k]} for k in sorted(n)}


def plan_targets(new_rows: pd.DataFrame, boost: float = 3.0) -> TargetPlan:
    """Error rates of the champion on ``new_rows`` -> family weights, condition knobs, characters."""
    from synth.grammar import DEFAULT_MIX
    from synth.render import RenderConfig

    rows = new_rows[new_rows["champion_prediction"].notna()] if len(new_rows) else new_rows
    labels = [str(x) for x in rows["label"]] if len(rows) else []
    wrong = [not exact_match(str(p), lab) for p, lab in zip(rows.get("champion_prediction", []), labels)]
    fams = _rate_table([format_family(lab) for lab in labels], wrong)
    conds = _rate_table(conditions(rows), wrong)
    chars = _rate_table([c for lab in labels for c in set(lab)],
                        [w for lab, w in zip(labels, wrong) for _ in set(lab)])
    mix = {f: w * (1 + boost * fams.get(f, {}).get("error_rate", 0.0)) for f, w in DEFAULT_MIX.items()}
    base = RenderConfig()
    render = {knob: min(0.6, getattr(base, knob) * (1 + boost * conds[c]["error_rate"]))
              for c, knob in CONDITION_KNOBS.items() if c in conds}
    char_w = {c: s["error_rate"] for c, s in chars.items() if s["error_rate"] > 0 and c != " "}
    inject = "".join(sorted({c for lab in labels for c in lab} - set(DEFAULT_CHARSET)))
    return TargetPlan(mix, render, char_w, inject, {"family": fams, "condition": conds, "char": chars})


@dataclass
class Anchor:
    """Full-resolution crops + labels, read through the serving predictor (turns and deskew included)."""

    images: list[np.ndarray]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def render_anchor(n: int, seed: int) -> Anchor:
    """About ``n`` crops drawn exactly as the regression suite is drawn, with other seeds.

    The old domain as the gate's suite covers it (every brand family alike, all fonts, some
    crops turned): the fine-tune chooses its blend on this without ever seeing the suite.
    """
    from loop.regression import RegressionConfig, render_suite
    from synth.grammar import FAMILIES

    cfg = RegressionConfig(per_family=max(1, -(-n // len(FAMILIES))), seed=424_242 + 7_919 * seed, min_per_condition=0)
    df = render_suite(cfg)
    return Anchor([decode_image(bytes(b)) for b in df["image"]], [str(x) for x in df["label"]])


def even_plan() -> TargetPlan:
    """Plain synthetic replay: every brand family alike (the gate checks each family's slice,
    so the rare ones must not fade), default conditions."""
    from synth.grammar import FAMILIES

    return TargetPlan({f: 1.0 for f in sorted(FAMILIES)}, {}, {})


def _code(renderer, pyrng: random.Random, plan: TargetPlan | None) -> tuple[str, str]:
    """A code from the renderer's family mix, favouring error-prone characters, with new ones injected."""
    code, fam = renderer.sampler.sample(pyrng)
    if plan and plan.char_weights:
        for _ in range(6):          # rejection sampling towards codes holding misread characters
            score = sum(plan.char_weights.get(c, 0.0) for c in set(code))
            if pyrng.random() < min(1.0, 0.2 + score):
                break
            code, fam = renderer.sampler.sample(pyrng)
    if plan and plan.inject_chars and pyrng.random() < 0.5:
        i = pyrng.randint(1, max(1, len(code) - 1))
        code = (code[:i] + pyrng.choice(plan.inject_chars) + code[i:])[:21]
    return code, fam


def _render_chunk(args: tuple) -> tuple[list[np.ndarray], list[str]]:
    from synth.render import Renderer, RenderConfig

    seed, n, plan_dict = args
    plan = TargetPlan(**plan_dict) if plan_dict else None
    cfg = RenderConfig(brand_mix=plan.brand_mix, **plan.render) if plan else RenderConfig()
    renderer, rng, pyrng = Renderer(cfg, seed=seed), np.random.default_rng(seed), random.Random(seed)
    grays, labels = [], []
    for _ in range(n):
        code, fam = _code(renderer, pyrng, plan)
        crop = renderer.render(rng, label=code, brand=fam)
        grays.append(resize_height(to_gray(crop.image), 32))
        labels.append(crop.label)
    return grays, labels


def render_synthetic(n: int, seed: int, plan: TargetPlan | None, workers: int = 1, chunk: int = 250) -> Pool:
    """``n`` synthetic crops (deterministic for ``seed``), following ``plan`` when given."""
    plan_dict = asdict(plan) if plan else None
    jobs = [(seed * 1_000_003 + i, min(chunk, n - i * chunk), plan_dict) for i in range((n + chunk - 1) // chunk)]
    from synth.pools import run_shards

    parts = run_shards(_render_chunk, jobs, workers)
    return Pool.pack([g for gs, _ in parts for g in gs], [lab for _, ls in parts for lab in ls], 32)


def pool_from_rows(rows: pd.DataFrame, read: Callable[[str], bytes]) -> Pool:
    """Manifest rows -> preprocessed pool (crop bytes read with ``read(source_object)``)."""
    grays, labels = [], []
    for obj, lab in zip(rows["source_object"], rows["label"]):
        try:
            grays.append(resize_height(to_gray(decode_image(read(obj))), 32))
        except CropError as e:      # ingest validated these; a crop changed since is a hard error
            raise CropError(f"{obj}: {e}") from None
        labels.append(str(lab))
    return Pool.pack(grays, labels, 32)


def _is_val(code_key: str, share: float) -> bool:
    return int(hashlib.sha256(f"val:{code_key}".encode()).hexdigest()[:8], 16) % 10_000 < share * 10_000


@dataclass
class Mix:
    train: Pool
    val: Pool
    info: dict
    anchor: Anchor | None = None  # what the champion already reads (recognizer.finetune: blending)


def build_mix(new_rows: pd.DataFrame, replay_rows: pd.DataFrame, read: Callable[[str], bytes],
              cfg: MixConfig) -> Mix:
    """New train rows (minus a validation share by product code) + replay + synthetic -> pools + record."""
    new_rows, replay_rows = new_rows[new_rows["split"] == "train"], replay_rows[replay_rows["split"] == "train"]
    is_val = np.array([_is_val(str(k), cfg.val_share) for k in new_rows["code_key"]], bool)
    train_new, val_new = new_rows[~is_val], new_rows[is_val]
    total = cfg.new + cfg.replay + cfg.synthetic
    want_replay = round(len(train_new) * cfg.replay / cfg.new)
    n_replay = min(len(replay_rows), want_replay)
    # too little earlier real data (the first cycles): synthetic crops, what the base model learnt from, fill in
    n_ratio = round(len(train_new) * cfg.synthetic / cfg.new) + want_replay - n_replay
    n_synth = int(np.clip(n_ratio, cfg.min_synthetic, cfg.max_synthetic))
    # more unique synthetic crops than the ratio asks for: real rows repeat, so the shares still hold
    repeat = max(1, round(n_synth / n_ratio)) if n_ratio and len(train_new) else 1
    replay = replay_rows.sample(n=n_replay, random_state=cfg.seed) if n_replay else replay_rows.iloc[:0]
    plan = plan_targets(new_rows)
    n_targeted = round(n_synth * cfg.targeted)
    parts = [pool_from_rows(train_new, read)] * repeat + [pool_from_rows(replay, read)] * repeat + [
             render_synthetic(n_targeted, cfg.seed + 1, plan, cfg.workers),
             render_synthetic(n_synth - n_targeted, cfg.seed + 2, even_plan(), cfg.workers)]
    val_real = pool_from_rows(val_new, read)
    n_val_synth = max(0, cfg.min_val - len(val_real))
    val = Pool.concat([val_real, render_synthetic(n_val_synth, cfg.seed + 3, plan, cfg.workers)]) \
        if n_val_synth else val_real
    info = {"config": asdict(cfg), "shares": {k: round(v / total, 4) for k, v in
                                              (("new", cfg.new), ("replay", cfg.replay), ("synthetic", cfg.synthetic))},
            "counts": {"new": len(train_new), "replay": n_replay, "real_repeat": repeat,
                       "replay_filled_by_synthetic": want_replay - n_replay, "synthetic_targeted": n_targeted,
                       "synthetic_plain": n_synth - n_targeted, "val_real": len(val_real), "val_synthetic": n_val_synth,
                       "anchor": cfg.anchor},
            "plan": {k: v for k, v in asdict(plan).items() if k != "errors"},
            "champion_errors": plan.errors}
    anchor = render_anchor(cfg.anchor, cfg.seed) if cfg.anchor else None
    return Mix(Pool.concat([p for p in parts if len(p)]), val, info, anchor)
