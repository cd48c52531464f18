"""Product-code grammar: brand families of style codes, sampled with a seeded RNG.

Each family is a small generator ``rng -> str``. ``CodeSampler`` draws a family
from a configurable weight mix and returns ``(code, family)``.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Callable

DIGITS = string.digits
UPPER = string.ascii_uppercase
ALNUM = UPPER + DIGITS


def _d(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(DIGITS) for _ in range(n))


def _u(rng: random.Random, n: int, alphabet: str = UPPER) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def nike(rng: random.Random) -> str:
    """``DD1391-100``, ``CU4874 001``, ``315122-111``, ``AQ9129-500``."""
    sep = rng.choices(["-", " "], weights=[0.7, 0.3])[0]
    if rng.random() < 0.7:
        style = _u(rng, 2) + _d(rng, 4)
    else:
        style = _d(rng, 6)
    return f"{style}{sep}{_d(rng, 3)}"


def adidas(rng: random.Random) -> str:
    """``GY7924``, ``B37571``, ``FZ5897``, ``EE8484``."""
    if rng.random() < 0.75:
        return _u(rng, 2) + _d(rng, 4)
    return _u(rng, 1) + _d(rng, 5)


def new_balance(rng: random.Random) -> str:
    """``M990GL6``, ``ML574EVG``, ``WL574EVB``, ``M9160C``, ``U9060BLK``."""
    prefix = rng.choice(["M", "W", "U", "ML", "WL", "MR", "MS", "GC", "PC", "BB", "CM"])
    model = rng.choice(["574", "990", "993", "2002", "9060", "550", "327", "530", "1906", "9160", "480", "1080"])
    colour = _u(rng, rng.randint(1, 3)) + (_d(rng, 1) if rng.random() < 0.5 else "")
    return prefix + model + colour


def converse(rng: random.Random) -> str:
    """``162058C``, ``A01234C``, ``M9160C``."""
    r = rng.random()
    if r < 0.5:
        return _d(rng, 6) + "C"
    if r < 0.85:
        return "A" + _d(rng, 5) + "C"
    return "M" + _d(rng, 4) + "C"


def vans(rng: random.Random) -> str:
    """``VN0A4U39WT3``, ``VN0A2XSZW00``."""
    return "VN0A" + _u(rng, rng.randint(3, 4), ALNUM) + _u(rng, rng.randint(2, 3), ALNUM)


def puma(rng: random.Random) -> str:
    """``374923-02``, ``384692 01``."""
    sep = rng.choices(["-", " "], weights=[0.6, 0.4])[0]
    return _d(rng, 6) + sep + _d(rng, 2)


def asics(rng: random.Random) -> str:
    """``1011B548.001``, ``1201A019.100``, ``T7E3N.9001``."""
    if rng.random() < 0.85:
        return _d(rng, 4) + rng.choice("ABC") + _d(rng, 3) + "." + _d(rng, 3)
    return _u(rng, 1) + _d(rng, 1) + _u(rng, 1) + _d(rng, 1) + _u(rng, 1) + "." + _d(rng, 4)


def skechers(rng: random.Random) -> str:
    """``SN 149337 COLOR:WSL``, ``232040/BBK``, ``STYLE 12345 NVY``."""
    r = rng.random()
    colour = _u(rng, rng.randint(3, 4))
    if r < 0.45:
        return f"SN {_d(rng, rng.choice([5, 6]))} COLOR:{colour}"
    if r < 0.75:
        return f"{_d(rng, 6)}/{colour}"
    return f"{_d(rng, 5)} {colour}"


def fila(rng: random.Random) -> str:
    """Plain words or word+digits: ``FILARAY``, ``DISRUPTOR2``, ``1RM01263D-125``."""
    r = rng.random()
    if r < 0.4:
        return rng.choice(WORDS)
    if r < 0.6:
        return rng.choice(WORDS) + _d(rng, rng.randint(1, 2))
    return _d(rng, 1) + _u(rng, 2) + _d(rng, 5) + _u(rng, 1) + "-" + _d(rng, 3)


def parens(rng: random.Random) -> str:
    """Codes with parentheses or hash: ``DX-SHJ1-111(6)``, ``KT2043(BK)``, ``#A5521``."""
    r = rng.random()
    if r < 0.5:
        return f"{_u(rng, 2)}-{_u(rng, 3, ALNUM)}{_d(rng, 1)}-{_d(rng, 3)}({_d(rng, 1)})"
    if r < 0.8:
        return f"{_u(rng, 2)}{_d(rng, 4)}({_u(rng, 2)})"
    return f"#{_u(rng, 1)}{_d(rng, 4)}"


def generic(rng: random.Random) -> str:
    """Mixed alphanumerics with optional separators, 5-21 characters, for robustness."""
    n = rng.randint(5, 15)
    s = _u(rng, n, ALNUM)
    if rng.random() < 0.4 and n > 6:
        i = rng.randint(2, n - 3)
        s = s[:i] + rng.choice("-. /:") + s[i:]
    if rng.random() < 0.1:
        s += f"({rng.choice(ALNUM)})"
    return s[:21]


WORDS = [
    "FILARAY", "DISRUPTOR", "AIRMAX", "GELKAYANO", "SUPERSTAR", "CHUCK", "OLDSKOOL",
    "RUNNER", "CLASSIC", "ORIGINAL", "BOOST", "ZOOM", "SPEEDCAT", "SUEDE", "CORTEZ",
    "SAMBA", "GAZELLE", "FORUM", "CLYDE", "COURT", "GORE TEX", "TRAIL", "PEGASUS",
]

FAMILIES: dict[str, Callable[[random.Random], str]] = {
    "nike": nike, "adidas": adidas, "new_balance": new_balance, "converse": converse,
    "vans": vans, "puma": puma, "asics": asics, "skechers": skechers, "fila": fila,
    "parens": parens, "generic": generic,
}

DEFAULT_MIX: dict[str, float] = {
    "nike": 0.22, "adidas": 0.12, "new_balance": 0.1, "converse": 0.07, "vans": 0.07,
    "puma": 0.08, "asics": 0.08, "skechers": 0.07, "fila": 0.05, "parens": 0.05, "generic": 0.09,
}


@dataclass
class CodeSampler:
    """Draws ``(code, family)`` pairs from a weighted mix of brand families."""

    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))

    def __post_init__(self) -> None:
        unknown = set(self.mix) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown brand families in mix: {sorted(unknown)}")
        if not self.mix or sum(self.mix.values()) <= 0:
            raise ValueError("brand mix must have a positive total weight")
        self._names = list(self.mix)
        self._weights = [self.mix[n] for n in self._names]

    def sample(self, rng: random.Random) -> tuple[str, str]:
        family = rng.choices(self._names, weights=self._weights)[0]
        code = FAMILIES[family](rng).strip()
        return " ".join(code.split()), family
