"""The promotion gate: champion and challenger scored on exactly the same sets, compared crop by crop.

A set is fingerprinted (count + sha256 over ids, labels and image bytes) when it is
scored; the gate refuses to compare scores whose fingerprints differ. Every check is paired
(``loop.paired``: the crops one model reads right and the other wrong). Checks, in order:
``overall`` (pooled real held-out data: a significant win by the exact McNemar test, of at
least ``margin``), ``set`` (no evaluation set drops beyond ``set_tolerance``), ``slice``
(brand family, condition, length band with at least ``min_slice_n`` crops: no drop beyond
``slice_tolerance``) and ``regression`` (the frozen synthetic suite drops at most
``regression_tolerance``); a drop counts when a one-sided sign test also says it is not chance.
The verdict is ``promoted``, ``refused`` (a check failed) or ``no decision`` (nothing failed,
but too few crops to tell the models apart: the champion stays). An empty set is reported
with n=0 and no score. Exact match is ``recognizer.metrics``'s one definition.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from crops.image import decode_image
from loop.paired import Paired, effect_ci, mcnemar_p, min_detectable_effect, sign_test_p
from recognizer.metrics import TextMatch, exact_match

REGRESSION = "regression"


class SetMismatch(ValueError):
    """Champion and challenger were scored on different evaluation sets."""


@dataclass
class GateConfig:
    margin: float = field(default=0.005, metadata={
        "help": "exact-match gain the challenger must show overall, on top of a significant paired win"})
    alpha: float = field(default=0.05, metadata={
        "help": "significance level of the overall paired test (exact McNemar, two-sided) and of its interval"})
    set_tolerance: float = 0.02         # largest drop allowed on any one evaluation set
    slice_tolerance: float = field(default=0.03, metadata={
        "help": "largest exact-match drop allowed on a slice of >= min_slice_n crops"})
    min_slice_n: int = 20               # smaller slices are reported, not judged (too noisy)
    drop_p: float | None = field(default=0.05, metadata={
        "help": "a drop beyond a set, slice or regression tolerance counts only when a one-sided sign test over "
                "the crops the two models read differently gives p below this (None: the drop alone)"})
    require_approval: bool = field(default=False, metadata={
        "help": "a challenger that passes the gate is not promoted: it waits for `tagloop approve VERSION --by NAME`"})
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
    """One check of the gate. ``passed``: True, False, or None = reported, not judged (too few crops, an
    empty set, or too little evidence either way); ``stats``: its numbers (None where a set is empty)."""

    name: str
    passed: bool | None
    detail: str
    stats: dict = field(default_factory=dict)


PROMOTED, REFUSED, NO_DECISION = "promoted", "refused", "no decision"
AWAITING = "awaiting approval"      # the gate passed; a person approves (``tagloop approve``) before it serves


@dataclass
class GateDecision:
    """``verdict``: ``promoted``, ``refused`` (a check failed), ``no decision`` (keep the champion:
    too few crops to tell the two models apart; nothing failed) or ``awaiting approval`` (the gate passed and
    ``require_approval`` is on: the challenger waits for ``tagloop approve``)."""

    verdict: str
    reason: str
    checks: list[Check]
    forced_by: str | None = None

    @property
    def promote(self) -> bool:
        return self.verdict == PROMOTED

    def to_dict(self) -> dict:
        overall = next((c for c in self.checks if c.name == "overall"), None)
        return {"promote": self.promote, "verdict": self.verdict, "reason": self.reason, "forced_by": self.forced_by,
                "overall": overall.stats if overall else {}, "checks": [asdict(c) for c in self.checks]}


def assert_same_sets(champion: dict[str, SetScore], challenger: dict[str, SetScore]) -> None:
    """Raise ``SetMismatch`` naming the set unless both were scored on identical sets."""
    if set(champion) != set(challenger):
        raise SetMismatch(f"evaluation sets differ: champion {sorted(champion)} vs challenger {sorted(challenger)}")
    for name in sorted(champion):
        a, b = champion[name].fingerprint, challenger[name].fingerprint
        if a != b:
            raise SetMismatch(f"set {name!r}: champion scored {a}, challenger scored {b} "
                              "(count:hash of ids, labels and image bytes must be equal)")


def _right(s: SetScore) -> list[bool]:
    return [exact_match(p, lab) for p, lab in zip(s.predictions, s.labels)]


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _stats(pair: Paired, **extra) -> dict:
    return {"n": pair.n, "champion_exact_match": pair.champion_em, "challenger_exact_match": pair.challenger_em,
            "diff": pair.diff, "gained": pair.gained, "lost": pair.lost, **extra}


def _better_check(p: Paired, on: str, cfg: GateConfig) -> Check:
    """``overall``: the exact McNemar test over the crops both models read (pooled real held-out sets).

    Passes on a significant win (p < ``alpha``) of at least ``margin``; fails on a significant loss,
    a significant win below ``margin``, or an interval that rules out a win of ``margin``; otherwise
    it is undecided (``passed`` None): too few crops either way.
    """
    if not p.n:
        return Check("overall", None, "no held-out corrections to judge on (n=0)", _stats(p, p=None, ci=None, mde=None))
    pv, ci, mde = mcnemar_p(p.gained, p.lost), effect_ci(p, cfg.alpha), min_detectable_effect(p.n, p.gained + p.lost,
                                                                                             cfg.alpha)
    assert ci is not None and p.diff is not None
    detail = (f"{p.challenger_em:.3f} vs {p.champion_em:.3f} on {on} ({p.diff:+.3f}, {1 - cfg.alpha:.0%} CI "
              f"{ci[0]:+.3f}..{ci[1]:+.3f}, n={p.n}; {p.gained} gained, {p.lost} lost, exact McNemar {_p(pv)}; "
              f"needs a significant win of {cfg.margin:+.3f}; minimum detectable effect at this n {_num(mde, '+.3f')})")
    significant = pv < cfg.alpha
    if significant and p.lost > p.gained:
        passed: bool | None = False
    elif significant:
        passed = p.diff >= cfg.margin - 1e-12
    else:
        passed = False if ci[1] < cfg.margin else None
    return Check("overall", passed, detail, _stats(p, p=pv, ci=list(ci), mde=mde, alpha=cfg.alpha))


def _drop_check(name: str, p: Paired, tol: float, cfg: GateConfig, min_n: int = 1) -> Check:
    """No drop beyond ``tol`` that a one-sided sign test over the changed crops says is not chance
    (p < ``drop_p``; ``drop_p`` None: the drop alone). Fewer than ``min_n`` crops: reported, not judged."""
    if not p.n:
        return Check(name, None, "empty (n=0): not judged", _stats(p, p=None))
    pv = sign_test_p(p.lost, p.gained)
    assert p.diff is not None
    detail = (f"{p.challenger_em:.3f} vs {p.champion_em:.3f} ({p.diff:+.3f}, n={p.n}, allowed drop {tol:.3f}; "
              f"{p.lost} lost, {p.gained} gained, sign test {_p(pv)})")
    if p.n < min_n:
        return Check(name, None, f"{detail}: fewer than {min_n} crops, reported, not judged", _stats(p, p=pv))
    beyond = p.diff < -tol - 1e-12
    return Check(name, not (beyond and (cfg.drop_p is None or pv < cfg.drop_p)), detail, _stats(p, p=pv))


def _slice_checks(champ: SetScore, chall: SetScore, cfg: GateConfig) -> list[Check]:
    """Per slice value (brand family, condition, length band): a paired drop check; on a 60-crop slice
    one crop is 1.7 points, so the drop alone would refuse challengers for noise."""
    checks = []
    right_a, right_b = _right(champ), _right(chall)
    for col, vals in champ.slices.items():
        for val in sorted(set(vals)):
            idx = [i for i, v in enumerate(vals) if v == val]
            p = Paired.of([right_a[i] for i in idx], [right_b[i] for i in idx])
            checks.append(_drop_check(f"slice {champ.name}/{col}={val}", p, cfg.slice_tolerance, cfg, cfg.min_slice_n))
    return checks


def decide(champion: dict[str, SetScore], challenger: dict[str, SetScore], cfg: GateConfig | None = None,
           real_sets: list[str] | None = None) -> GateDecision:
    """The gate. ``real_sets`` are pooled for the overall check (default: every set but the regression suite)."""
    cfg = cfg or GateConfig()
    assert_same_sets(champion, challenger)
    real = [n for n in (real_sets or [n for n in champion if n != REGRESSION]) if len(champion[n].labels)]
    pairs = {n: Paired.of(_right(champion[n]), _right(challenger[n])) for n in champion}
    pooled = Paired.of(sum((_right(champion[n]) for n in real), []), sum((_right(challenger[n]) for n in real), []))
    checks = [_better_check(pooled, "+".join(real), cfg)]
    checks += [_drop_check(f"set {n}", p, cfg.set_tolerance, cfg) for n, p in pairs.items() if n != REGRESSION]
    for n in champion:
        checks += _slice_checks(champion[n], challenger[n], cfg)
    if REGRESSION in pairs and pairs[REGRESSION].n:
        checks.append(_drop_check("regression", pairs[REGRESSION], cfg.regression_tolerance, cfg))
    else:
        checks.append(Check("regression", False, "the regression suite was not scored (n=0)"))
    return _verdict(checks)


def _verdict(checks: list[Check]) -> GateDecision:
    failed = [c for c in checks if c.passed is False]
    overall = next(c for c in checks if c.name == "overall")
    held = sum(c.passed is True for c in checks) - (overall.passed is True)
    if failed:
        worst = "; ".join(f"{c.name} failed: {c.detail}" for c in failed[:4])
        more = f" (+{len(failed) - 4} more failed checks)" if len(failed) > 4 else ""
        return GateDecision(REFUSED, f"not promoted: {worst}{more}", checks)
    if overall.passed is None:
        return GateDecision(NO_DECISION, f"no decision: keep the champion, n too small: overall {overall.detail}; "
                                         f"all {held} judged set, slice and regression checks hold", checks)
    return GateDecision(PROMOTED, f"promoted: challenger wins overall {overall.detail}; all "
                                  f"{held} judged set, slice and regression checks hold", checks)


def await_approval(decision: GateDecision) -> GateDecision:
    """Approval mode: a passing decision becomes ``awaiting approval`` (the checks kept); others stay as they are."""
    if not decision.promote or decision.forced_by:
        return decision
    evidence = decision.reason.removeprefix("promoted: ")
    return GateDecision(AWAITING, f"awaiting approval (the gate passed): {evidence}", decision.checks)


def force(decision: GateDecision, by: str) -> GateDecision:
    """A person overrides the gate: promote, keeping the checks and saying who decided."""
    if not by.strip():
        raise ValueError("--force needs the name of the person deciding (--forced-by)")
    return GateDecision(PROMOTED, f"forced by {by}; the gate said: {decision.reason}", decision.checks, by)
