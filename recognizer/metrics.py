"""One definition of exact match and edit distance, used by evaluate, the gate and reports."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


def normalize(text: str) -> str:
    """Surrounding whitespace stripped, inner runs of whitespace collapsed to one space."""
    return " ".join(str(text).split())


def exact_match(pred: str, label: str) -> bool:
    """Case-sensitive match of the whole code after ``normalize``."""
    return normalize(pred) == normalize(label)


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def norm_edit_distance(pred: str, label: str) -> float:
    """Levenshtein distance / max(len), in [0, 1]; 0 for two empty strings."""
    p, l = normalize(pred), normalize(label)
    return edit_distance(p, l) / max(len(p), len(l), 1)


@dataclass
class _Acc:
    n: int = 0
    correct: int = 0
    ned: float = 0.0

    def add(self, ok: bool, ned: float) -> None:
        self.n += 1
        self.correct += ok
        self.ned += ned

    def summary(self) -> dict[str, float | None]:
        """``n`` and the means; an empty set has no score: ``None`` (shown "-", never logged as 0.0)."""
        return {"n": self.n, "exact_match": self.correct / self.n if self.n else None,
                "norm_edit_distance": self.ned / self.n if self.n else None}


@dataclass
class TextMatch:
    """Accumulates exact match and normalised edit distance, overall and per slice."""

    overall: _Acc = field(default_factory=_Acc)
    slices: dict[str, dict[str, _Acc]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(_Acc)))

    def update(self, pred: str, label: str, slices: dict[str, str] | None = None) -> bool:
        ok, ned = exact_match(pred, label), norm_edit_distance(pred, label)
        self.overall.add(ok, ned)
        for col, val in (slices or {}).items():
            self.slices[col][str(val)].add(ok, ned)
        return ok

    def summary(self) -> dict:
        out: dict = self.overall.summary()
        if self.slices:
            out["slices"] = {c: {v: a.summary() for v, a in sorted(vals.items())}
                             for c, vals in sorted(self.slices.items())}
        return out
