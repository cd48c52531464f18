"""What a correction must satisfy, stated once: the bounds the Great Expectations suite
(``ingest.validate``) checks over a batch, and ``correction_problem``, the same checks on one
correction before it is written (the serving API). No pandas, no Great Expectations here, so
a reading-only install can check a correction exactly as ingest will.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from crops.features import BLANK_CONTRAST

BASE_LABEL_CHARS = r"0-9A-Z \-./:()#"
LABEL_REGEX = rf"^[{BASE_LABEL_CHARS}]*$"      # the default; label_regex(extra) adds IngestConfig.extra_chars
MIN_LABEL, MAX_LABEL = 5, 21
MIN_SIDE, MAX_SIDE = 8, 4000
MIN_ASPECT, MAX_ASPECT = 1 / 25, 25.0
EARLIEST = datetime(2015, 1, 1, tzinfo=timezone.utc)


def extra_label_chars(extra: str = "") -> str:
    """Characters admitted beyond the base set (``TAGLOOP_EXTRA_CHARS``, e.g. ``+&``), checked, each once."""
    bad = [c for c in extra if not c.isprintable() or c.isspace()]
    if bad:
        raise ValueError(f"TAGLOOP_EXTRA_CHARS: only printable, non-space characters can be admitted, got {bad!r}")
    return "".join(dict.fromkeys(extra))


def label_regex(extra: str = "") -> str:
    """Regex of an allowed label: the base charset plus ``extra_label_chars(extra)``."""
    return rf"^[{BASE_LABEL_CHARS}{''.join(re.escape(c) for c in extra_label_chars(extra))}]*$"


def label_problem(label: str, extra: str = "") -> str | None:
    """The quarantine reason ingest would give this (normalised) label, or None."""
    if not re.match(label_regex(extra), label):
        return "label_charset"
    if not MIN_LABEL <= len(label) <= MAX_LABEL:
        return "label_length"
    return None


def image_problem(features: dict[str, Any]) -> str | None:
    """The quarantine reason ingest would give a crop from its feature row (``crops.features.crop_features``),
    or None: undecodable, sides outside [MIN_SIDE, MAX_SIDE], aspect outside the bounds, blank."""
    if features.get("decode_status") != "ok":
        return str(features.get("decode_status"))
    if not (MIN_SIDE <= features["width"] <= MAX_SIDE and MIN_SIDE <= features["height"] <= MAX_SIDE):
        return "bad_dimensions"
    if not MIN_ASPECT <= features["aspect"] <= MAX_ASPECT:
        return "bad_aspect"
    if features["contrast"] < BLANK_CONTRAST:
        return "blank_image"
    return None


def correction_problem(features: dict[str, Any], label: str, confidence: float | None, extra: str = "") -> str | None:
    """The first reason, in the suite's order, ingest would quarantine one correction for (the checks that
    need the rest of the batch, duplicates and conflicting labels, excepted), or None."""
    reason = image_problem(features) or label_problem(label, extra)
    if reason is None and confidence is not None and not 0.0 <= confidence <= 1.0:
        reason = "confidence_range"
    return reason
