"""The promotion gate: champion and challenger scored on exactly the same sets.

A set is fingerprinted (count + sha256 over ids, labels and image bytes) when it is
scored; the gate refuses to compare scores whose fingerprints differ. Checks, in order:
``overall`` (pooled real held-out data: the challenger must win by ``margin``),
``sets`` (no evaluation set drops beyond ``set_tolerance``), ``slices`` (brand family,
condition, length band with at least ``min_slice_n`` crops: no drop beyond
``slice_tolerance``) and ``regression`` (the frozen synthetic suite drops at most
``regression_tolerance``). Exact match is ``recognizer.metrics``'s one definition.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from crops.image import decode_image
from recognizer.metrics import TextMatch, exact_match

REGRESSION = "regression"


class SetMismatch(ValueError):
    """Champion and challenger were scored on different evaluation sets."""


@dataclass
class GateConfig:
    margin: float = field(default=0.005, metadata={"help": "exact-match margin the challenger must win by overall"})
    set_tolerance: float = 0.02         # largest drop allowed on any one evaluation set
    slice_tolerance: float = field(default=0.03, metadata={
        "help": "largest exact-match drop allowed on a slice of >= min_slice_n crops"})
    min_slice_n: int = 20               # smaller slices are reported, not checked (too noisy)
    slice_p: float | None = 0.05        # a slice drop counts only when a sign test says it is not chance
    regression_tolerance: float = field(default=0.005, metadata={
        "help": "largest exact-match drop allowed on the synthetic regression suite (and on the fine-tune's "
                "anchor when it chooses a blend)"})


@dataclass
class EvalData:
    """One evaluation set: aligned ids, labels, encoded image bytes and slice columns.

    ``arrays()`` decodes the crops once (``crops.image``); both models and the report read those.
    """

    name: str
    ids: list[str]
    labels: list[str]
    images: list[bytes]
    slices: dict[str, list[str]] = field(default_factory=dict)
    _arrays: list[np.ndarray] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.labels) != n or len(self.images) != n or any(len(v) != n for v in self.slices.values()):
            raise ValueError(f"evaluation set {self.name!r}: ids, labels, images and slices differ in length")

    def fingerprint(self) -> str:
        """``<count>:<sha256 prefix>`` over (id, label, sha256(image bytes)) in order."""
        h = hashlib.sha256()
        for i, lab, img in zip(self.ids, self.labels, self.images):
            h.update(f"{i}\0{lab}\0{hashlib.sha256(img).hexdigest()}\n".encode())
        return f"{len(self.ids)}:{h.hexdigest()[:20]}"

    def arrays(self) -> list[np.ndarray]:
        """The crops decoded (H x W x 3 uint8 RGB), once per set."""
        if self._arrays is None:
            self._arrays = [decode_image(b) for b in self.images]
        return self._arrays


@dataclass
class SetScore:
    """One model's readings of one set, with the fingerprint of the set it actually read."""

    name: str
    fingerprint: str
    labels: list[str]
    predictions: list[str]
    confidences: list[float]
    slices: dict[str, list[str]]

    def summary(self) -> dict:
        tm = TextMatch()
        for i, (p, lab) in enumerate(zip(self.predictions, self.labels)):
            tm.update(p, lab, {c: v[i] for c, v in self.slices.items()})
        return tm.summary()


Reader = Callable[[EvalData], list[tuple[str, float]]]


def score_sets(read: Reader, sets: list[EvalData]) -> dict[str, SetScore]:
    """Read every set with ``read`` (a set -> [(text, confidence)] per crop, in order)."""
    out = {}
    for s in sets:
        preds = read(s) if s.images else []
        out[s.name] = SetScore(s.name, s.fingerprint(), list(s.labels), [p for p, _ in preds],
                               [float(c) for _, c in preds], dict(s.slices))
    return out


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class GateDecision:
    promote: bool
    reason: str
    checks: list[Check]
    forced_by: str | None = None

    def to_dict(self) -> dict:
        return {"promote": self.promote, "reason": self.reason, "forced_by": self.forced_by,
                "checks": [asdict(c) for c in self.checks]}


def assert_same_sets(champion: dict[str, SetScore], challenger: dict[str, SetScore]) -> None:
    """Raise ``SetMismatch`` naming the set unless both were scored on identical sets."""
    if set(champion) != set(challenger):
        raise SetMismatch(f"evaluation sets differ: champion {sorted(champion)} vs challenger {sorted(challenger)}")
    for name in sorted(champion):
        a, b = champion[name].fingerprint, challenger[name].fingerprint
        if a != b:
            raise SetMismatch(f"set {name!r}: champion scored {a}, challenger scored {b} "
                              "(count:hash of ids, labels and image bytes must be equal)")


def _pooled(scores: dict[str, SetScore], names: list[str]) -> dict:
    tm = TextMatch()
    for n in names:
        for p, lab in zip(scores[n].predictions, scores[n].labels):
            tm.update(p, lab)
    return tm.summary()


def _drop_check(name: str, champ: dict, chall: dict, tol: float) -> Check:
    d = chall["exact_match"] - champ["exact_match"]
    return Check(name, d >= -tol - 1e-12,
                 f"{chall['exact_match']:.3f} vs {champ['exact_match']:.3f} ({d:+.3f}, n={champ['n']}, "
                 f"allowed drop {tol:.3f})")


def sign_test_p(lost: int, gained: int) -> float:
    """One-sided sign test: P(at least ``lost`` of the ``lost + gained`` changed crops are losses by chance)."""
    n = lost + gained
    return float(sum(math.comb(n, k) for k in range(lost, n + 1)) / 2 ** n) if n else 1.0


def _slice_checks(champ: SetScore, chall: SetScore, cfg: GateConfig) -> list[Check]:
    """Per slice value: the drop in exact match, judged against noise.

    With ``cfg.slice_p`` a slice fails when it drops by more than ``slice_tolerance`` *and*
    the crops it lost outnumber the crops it gained beyond chance (sign test over the crops
    the two models read differently, p < ``slice_p``): on a 60-crop slice one crop is 1.7
    points, so the drop alone would refuse challengers by noise.
    """
    checks = []
    right_a = [exact_match(p, lab) for p, lab in zip(champ.predictions, champ.labels)]
    right_b = [exact_match(p, lab) for p, lab in zip(chall.predictions, chall.labels)]
    for col, vals in champ.slices.items():
        for val in sorted(set(vals)):
            idx = [i for i, v in enumerate(vals) if v == val]
            if len(idx) < cfg.min_slice_n:
                continue
            lost = sum(right_a[i] and not right_b[i] for i in idx)
            gained = sum(right_b[i] and not right_a[i] for i in idx)
            a, b = sum(right_a[i] for i in idx) / len(idx), sum(right_b[i] for i in idx) / len(idx)
            d, p = b - a, sign_test_p(lost, gained)
            ok = d >= -cfg.slice_tolerance - 1e-12 or (cfg.slice_p is not None and p >= cfg.slice_p)
            checks.append(Check(f"slice {champ.name}/{col}={val}", ok,
                                f"{b:.3f} vs {a:.3f} ({d:+.3f}, n={len(idx)}, allowed drop {cfg.slice_tolerance:.3f}; "
                                f"{lost} lost, {gained} gained, sign test p={p:.3f})"))
    return checks


def decide(champion: dict[str, SetScore], challenger: dict[str, SetScore], cfg: GateConfig | None = None,
           real_sets: list[str] | None = None) -> GateDecision:
    """The gate. ``real_sets`` are pooled for the overall check (default: every set but the regression suite)."""
    cfg = cfg or GateConfig()
    assert_same_sets(champion, challenger)
    real = [n for n in (real_sets or [n for n in champion if n != REGRESSION]) if len(champion[n].labels)]
    summaries = {n: (champion[n].summary(), challenger[n].summary()) for n in champion}
    checks = []
    if real:
        a, b = _pooled(champion, real), _pooled(challenger, real)
        d = b["exact_match"] - a["exact_match"]
        checks.append(Check("overall", d >= cfg.margin - 1e-12,
                            f"{b['exact_match']:.3f} vs {a['exact_match']:.3f} on {'+'.join(real)} "
                            f"({d:+.3f}, n={a['n']}, needs {cfg.margin:+.3f})"))
    else:
        checks.append(Check("overall", False, "no real held-out crops to judge on"))
    for n, (a, b) in summaries.items():
        if n != REGRESSION and a["n"]:
            checks.append(_drop_check(f"set {n}", a, b, cfg.set_tolerance))
    for n in summaries:
        checks += _slice_checks(champion[n], challenger[n], cfg)
    if REGRESSION in summaries:
        a, b = summaries[REGRESSION]
        checks.append(_drop_check("regression", a, b, cfg.regression_tolerance))
    else:
        checks.append(Check("regression", False, "the regression suite was not scored"))
    return _verdict(checks)


def _verdict(checks: list[Check]) -> GateDecision:
    failed = [c for c in checks if not c.passed]
    overall = next(c for c in checks if c.name == "overall")
    if not failed:
        return GateDecision(True, f"promoted: challenger wins overall {overall.detail}; all "
                                  f"{len(checks) - 1} set, slice and regression checks hold", checks)
    worst = "; ".join(f"{c.name} failed: {c.detail}" for c in failed[:4])
    more = f" (+{len(failed) - 4} more failed checks)" if len(failed) > 4 else ""
    return GateDecision(False, f"not promoted: {worst}{more}", checks)


def force(decision: GateDecision, by: str) -> GateDecision:
    """A person overrides the gate: promote, keeping the checks and saying who decided."""
    if not by.strip():
        raise ValueError("--force needs the name of the person deciding (--forced-by)")
    return GateDecision(True, f"forced by {by}; the gate said: {decision.reason}", decision.checks, by)
