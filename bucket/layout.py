"""Names of the bucket layout that several packages share: the ``YYYY-MM-DD`` day folders.

``corrections/YYYY-MM-DD/`` (ingest, monitoring) and ``incoming/YYYY-MM-DD/`` (batch predict)
are both written by the serving app, one folder per day.
"""
from __future__ import annotations

import re

DAY = r"\d{4}-\d{2}-\d{2}"
_DAY = re.compile(f"^{DAY}$")


def check_day(day: str | None) -> str | None:
    """``YYYY-MM-DD`` or None; anything else is a clear error."""
    if day is not None and not _DAY.match(day):
        raise ValueError(f"date {day!r}: expected YYYY-MM-DD")
    return day
