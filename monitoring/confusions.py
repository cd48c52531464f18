"""Character confusions that matter for product codes, from aligned prediction vs label.

The alignment is a Levenshtein alignment of the ``normalize``d strings; only
substitutions are counted as confusions. ``"0>O"`` means the label had ``0``
and the model read ``O``.
"""
from __future__ import annotations

from collections import Counter

from crops.codes import CONFUSABLE_GLYPHS
from recognizer.metrics import normalize

CONFUSABLE = [*CONFUSABLE_GLYPHS, ("-", " ")]
PAIR_NAMES = [f"{a}>{b}" for a, b in CONFUSABLE] + [f"{b}>{a}" for a, b in CONFUSABLE]


def align(label: str, pred: str) -> list[tuple[str | None, str | None]]:
    """Minimal-edit alignment: (label char or None, predicted char or None) per step, in order."""
    n, m = len(label), len(pred)
    d = [[0] * (m + 1) for _ in range(n + 1)]   # (n+1) x (m+1) edit distances of prefixes
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (label[i - 1] != pred[j - 1]))
    steps: list[tuple[str | None, str | None]] = []
    i, j = n, m
    while i or j:
        if i and j and d[i][j] == d[i - 1][j - 1] + (label[i - 1] != pred[j - 1]):
            steps.append((label[i - 1], pred[j - 1]))
            i, j = i - 1, j - 1
        elif i and d[i][j] == d[i - 1][j] + 1:
            steps.append((label[i - 1], None))
            i -= 1
        else:
            steps.append((None, pred[j - 1]))
            j -= 1
    return steps[::-1]


def substitutions(label: str, pred: str) -> Counter[str]:
    """All substituted character pairs ``"a>b"`` between normalised label and prediction."""
    return Counter(f"{a}>{b}" for a, b in align(normalize(label), normalize(pred))
                   if a is not None and b is not None and a != b)


class ConfusionCounter:
    """Accumulates the confusable pairs (both directions) plus the total of substitutions."""

    def __init__(self) -> None:
        self.pairs: Counter[str] = Counter({name: 0 for name in PAIR_NAMES})
        self.other = 0
        self.every: Counter[str] = Counter()     # every substituted pair, confusable or not

    def update(self, pred: str, label: str) -> None:
        for pair, k in substitutions(label, pred).items():
            self.every[pair] += k
            if pair in self.pairs:
                self.pairs[pair] += k
            else:
                self.other += k

    def summary(self) -> dict[str, int]:
        return {**{name: self.pairs[name] for name in PAIR_NAMES}, "other_substitutions": self.other}

    def top(self, k: int = 30) -> dict[str, int]:
        """The ``k`` most frequent substituted pairs (``"a>b"`` -> count), most frequent first."""
        return dict(self.every.most_common(k))
