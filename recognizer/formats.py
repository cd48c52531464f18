"""Product-code formats of the brand families (one table for the predictor, ingest review and monitoring).

``KNOWN_FORMATS``: a regex per family, the last ones (``fila`` words, ``generic``) broad.
``looks_like_a_code``: the text matches one of the *specific* formats (a brand's style-code
layout, not just "letters and digits"). A code read upside down almost never does
(``0`` -> ``0``, ``6`` -> ``9``, ``N`` -> ``N`` ... but ``DD1391-100`` -> ``001-16E1QQ``), which
is what the predictor uses to settle which way up a crop is.
"""
from __future__ import annotations

import re

KNOWN_FORMATS: dict[str, str] = {
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
_ANY = [re.compile(f"^(?:{p})$") for p in KNOWN_FORMATS.values()]
# specific layouts: every family but the catch-all ``generic`` and fila's plain words
_SPECIFIC = [re.compile(f"^(?:{p})$") for name, p in KNOWN_FORMATS.items() if name not in ("generic", "fila")]
_SPECIFIC.append(re.compile(r"^\d[A-Z]{2}\d{5}[A-Z]-\d{3}$"))      # fila's style code


def matches_known_format(text: str) -> bool:
    """Any family's format, the broad ones included (ingest's review screen)."""
    return any(f.match(text) for f in _ANY)


def looks_like_a_code(text: str) -> bool:
    """One of the specific brand layouts (see the module docstring)."""
    return any(f.match(text) for f in _SPECIFIC)
