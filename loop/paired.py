"""Two models read the same crops: paired counts, exact tests, the effect and its interval.

A crop is *gained* when only the challenger reads it right and *lost* when only the champion
does; crops both read alike say nothing about which model is better, so the tests look at the
discordant crops alone (under "equally good", gained ~ Binomial(gained + lost, 1/2)):

- ``mcnemar_p``: exact McNemar test, two-sided (``scipy.stats.binomtest``): is either model better?
- ``sign_test_p``: one-sided: are the losses more than chance (a drop)?
- ``effect_ci``: the exact-match difference (challenger - champion) = (gained - lost) / n, with the
  Agresti-Min interval: a paired Wald interval after adding 1/2 to each of the four cells of the
  2 x 2 table (Agresti & Min 2005, Biometrics 61: coverage close to nominal with few discordant
  crops; the plain Wald interval is [0, 0] when no crop differs, whatever n).
- ``min_detectable_effect``: the smallest gain the exact test can call significant on this batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

from scipy.stats import binomtest


@dataclass(frozen=True)
class Paired:
    """Right/wrong of two models on the same ``n`` crops."""

    n: int
    champion_right: int
    challenger_right: int
    gained: int          # challenger right, champion wrong
    lost: int            # champion right, challenger wrong

    @classmethod
    def of(cls, champion: Sequence[bool], challenger: Sequence[bool]) -> "Paired":
        if len(champion) != len(challenger):
            raise ValueError("paired readings differ in length")
        pairs = list(zip(champion, challenger))
        return cls(len(pairs), sum(bool(a) for a, _ in pairs), sum(bool(b) for _, b in pairs),
                   sum(bool(b) and not a for a, b in pairs), sum(bool(a) and not b for a, b in pairs))

    @property
    def champion_em(self) -> float | None:
        return self.champion_right / self.n if self.n else None

    @property
    def challenger_em(self) -> float | None:
        return self.challenger_right / self.n if self.n else None

    @property
    def diff(self) -> float | None:
        """Challenger minus champion exact match; ``None`` on an empty set."""
        return (self.gained - self.lost) / self.n if self.n else None


def mcnemar_p(gained: int, lost: int) -> float:
    """Exact McNemar (two-sided binomial test on the discordant crops); 1.0 when none differ."""
    n = gained + lost
    return float(binomtest(gained, n, 0.5).pvalue) if n else 1.0


def sign_test_p(lost: int, gained: int) -> float:
    """One-sided sign test: P(at least ``lost`` of the ``lost + gained`` changed crops are losses by chance)."""
    n = lost + gained
    return float(binomtest(lost, n, 0.5, alternative="greater").pvalue) if n else 1.0


def effect_ci(p: Paired, alpha: float) -> tuple[float, float] | None:
    """Agresti-Min ``1 - alpha`` interval of the exact-match difference; ``None`` when ``n = 0``."""
    if not p.n:
        return None
    n, b, c = p.n + 2, p.gained + 0.5, p.lost + 0.5
    d = (b - c) / n
    se = math.sqrt(max((b + c) / n - d * d, 0.0) / n)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return max(-1.0, d - z * se), min(1.0, d + z * se)


def min_detectable_effect(n: int, discordant: int, alpha: float) -> float | None:
    """The smallest exact-match gain the exact McNemar test calls significant at ``alpha`` on ``n`` crops.

    With ``discordant`` crops read differently (at least the fewest that can be significant at all:
    6 at alpha 0.05, all of them gained), the gain needs ``k`` of them gained where ``k`` is the
    smallest significant count: (2k - discordant) / n. ``None`` when no split of ``n`` crops could
    be significant (n < 6 at alpha 0.05).
    """
    k0 = next((k for k in range(1, n + 1) if mcnemar_p(k, 0) < alpha), None)
    if k0 is None:
        return None
    m = min(max(discordant, k0), n)
    k = next(k for k in range((m + 1) // 2, m + 1) if mcnemar_p(k, m - k) < alpha)
    return (2 * k - m) / n
