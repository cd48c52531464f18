"""What a product code is: the characters it is written in, the brand families and their layouts.

``FORMATS``: a regex per brand family, the last ones (``fila`` words, ``generic``) broad.
The family names are the ones ``synth.grammar`` generates codes for, and the regexes match
what it generates (``tests/test_crops.py``), so a rendered crop's family and a real crop's
``format_family`` are the same vocabulary: the regression suite, the gate's slices, the
mix's targeting and the drift report all speak it.
``looks_like_a_code``: the text matches one of the *specific* formats (a brand's style-code
layout, not just "letters and digits"). A code read upside down almost never does
(``0`` -> ``0``, ``6`` -> ``9``, ``N`` -> ``N`` ... but ``DD1391-100`` -> ``001-16E1QQ``), which
is what the predictor uses to settle which way up a crop is.
"""
from __future__ import annotations

import re

# the characters codes are written in, in the order of the base model's charset
CODE_CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ -./:()#"

FORMATS: dict[str, str] = {
    "nike": r"([A-Z]{2}\d{4}|\d{6})[- ]?\d{3}",
    "adidas": r"[A-Z]{1,2}\d{4,5}",
    "new_balance": r"(M|W|U|ML|WL|MR|MS|GC|PC|BB|CM)\d{3,4}[A-Z]{1,3}\d?",
    "converse": r"(\d{6}|A\d{5}|M\d{4})C",
    "vans": r"VN0A[A-Z0-9]{5,7}",
    "puma": r"\d{6}[- ]?\d{2}",
    "asics": r"\d{4}[ABC]\d{3}\.\d{3}|[A-Z]\d[A-Z]\d[A-Z]\.\d{4}",
    "skechers": r"SN \d{5,6} COLOR:[A-Z]{3,4}|\d{6}/[A-Z]{3,4}|\d{5} [A-Z]{3,4}",
    "fila": r"[A-Z]+( [A-Z]+)?\d{0,2}|\d[A-Z]{2}\d{5}[A-Z]-\d{3}",
    "parens": r"[A-Z]{2}-[A-Z0-9]{3}\d-\d{3}\(\d\)|[A-Z]{2}\d{4}\([A-Z]{2}\)|#[A-Z]\d{4}",
    "generic": r"[A-Z0-9]{2,}([-. /:][A-Z0-9]{2,})*(\([A-Z0-9]{1,2}\))?",
}
FAMILIES: tuple[str, ...] = tuple(FORMATS)
UNKNOWN = "unknown"

_FAMILY = [(name, re.compile(f"^(?:{p})$")) for name, p in FORMATS.items()]
# specific layouts: every family but the catch-all ``generic`` and fila's plain words
_SPECIFIC = [rx for name, rx in _FAMILY if name not in ("generic", "fila")]
_SPECIFIC.append(re.compile(r"^\d[A-Z]{2}\d{5}[A-Z]-\d{3}$"))      # fila's style code


def format_family(label: str | None) -> str:
    """First brand family of ``FORMATS`` whose layout matches the label; ``unknown`` if none."""
    text = label or ""
    return next((name for name, rx in _FAMILY if rx.match(text)), UNKNOWN)


def matches_family(text: str, family: str) -> bool:
    """The text has ``family``'s layout (whatever other families it also matches)."""
    return bool(dict(_FAMILY)[family].match(text))


def matches_known_format(text: str) -> bool:
    """Any family's format, the broad ones included (ingest's review screen)."""
    return any(rx.match(text) for _, rx in _FAMILY)


# glyph pairs that print and phone photos blur into each other (shape, not layout): the predictor's tie-break
# between an adapted reading and the photo reader's, and the pairs the confusion report counts
# (``monitoring.confusions`` adds the dash/space pair)
CONFUSABLE_GLYPHS = (("0", "O"), ("1", "I"), ("5", "S"), ("8", "B"))
_CONFUSABLE = {frozenset(p) for p in CONFUSABLE_GLYPHS}


def differ_by_confusables(a: str, b: str) -> bool:
    """Two readings of one length that differ, and only in confusable glyphs (``1SMO1611D`` / ``1SM01611D``)."""
    return len(a) == len(b) and a != b and all(x == y or frozenset((x, y)) in _CONFUSABLE for x, y in zip(a, b))


def looks_like_a_code(text: str) -> bool:
    """One of the specific brand layouts (see the module docstring)."""
    return any(rx.match(text) for rx in _SPECIFIC)
