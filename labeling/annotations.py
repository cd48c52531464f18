"""Reading a finished Label Studio task: which label, by whom, or why none can be taken.

Per task (as ``GET /api/projects/<id>/export`` returns it):
- no annotation -> ``no_annotation``; only skipped ones (``was_cancelled``) -> ``skipped``;
- an annotation with neither a code nor *unreadable* -> ``empty_annotation``, with both ->
  ``contradictory_annotation``;
- a ground-truth annotation decides alone; otherwise every annotation must agree (same code after
  normalizing, or all *unreadable*) -> else ``annotators_disagree``;
- the code is normalized the way exact match is (surrounding whitespace stripped, inner runs of
  spaces collapsed); its length must be 5-21 (``label_length``) and every character in the
  code charset plus ``TAGLOOP_EXTRA_CHARS`` (``label_charset``: lower case included, a code is
  written in upper case), as ingest requires.
The latest of the agreeing annotations names the annotator and the time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ingest.validate import MAX_LABEL, MIN_LABEL, label_regex
from labeling.export import CODE, UNREADABLE, VERDICT
from recognizer.metrics import normalize


@dataclass(frozen=True)
class Verdict:
    """What a task's annotations say: ``label`` (a code) or ``unreadable``, or ``problem`` (why neither)."""

    label: str | None = None
    unreadable: bool = False
    problem: str = ""
    detail: str = ""
    annotation: int | None = None
    annotator: str = ""
    at: str = ""                    # the annotation's creation time, UTC, ISO-8601 to the second

    @property
    def ok(self) -> bool:
        return not self.problem


def _texts(result: list[Any]) -> tuple[list[str], bool]:
    """An annotation's result -> (codes typed, whether *unreadable* was chosen)."""
    texts, unreadable = [], False
    for r in result if isinstance(result, list) else []:
        value = r.get("value") if isinstance(r, dict) else None
        if not isinstance(value, dict):
            continue
        if r.get("from_name") == CODE:
            texts += [normalize(t) for t in value.get("text") or [] if isinstance(t, str) and t.strip()]
        elif r.get("from_name") == VERDICT and UNREADABLE in (value.get("choices") or []):
            unreadable = True
    return texts, unreadable


def utc_second(stamp: Any) -> str | None:
    """Label Studio's ``2026-11-29T14:39:37.060616Z`` -> ``2026-11-29T14:39:37Z``; None when unparseable."""
    if not isinstance(stamp, str):
        return None
    try:
        t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _annotator(a: dict[str, Any], users: dict[int, str]) -> str:
    who = a.get("completed_by")
    if isinstance(who, dict):
        return str(who.get("email") or who.get("username") or who.get("id"))
    return users.get(who, f"user {who}") if isinstance(who, int) else "unknown"


def _one(a: dict[str, Any], users: dict[int, str]) -> Verdict:
    texts, unreadable = _texts(a.get("result"))
    who, at, aid = _annotator(a, users), utc_second(a.get("created_at")), a.get("id")
    if at is None or not isinstance(aid, int):
        return Verdict(problem="bad_annotation", detail=f"annotation {aid!r} has no id or creation time")
    if texts and unreadable:
        return Verdict(problem="contradictory_annotation", detail=f"{who} typed {texts[0]!r} and chose unreadable",
                       annotation=aid, annotator=who, at=at)
    if len(set(texts)) > 1:
        return Verdict(problem="contradictory_annotation", detail=f"{who} typed several codes: {sorted(set(texts))}",
                       annotation=aid, annotator=who, at=at)
    if not texts and not unreadable:
        return Verdict(problem="empty_annotation", detail=f"{who} submitted neither a code nor unreadable",
                       annotation=aid, annotator=who, at=at)
    return Verdict(texts[0] if texts else None, unreadable, annotation=aid, annotator=who, at=at)


def check_label(label: str, extra_chars: str = "") -> tuple[str, str]:
    """(problem, detail) of a typed code; ("", "") when ingest would take it."""
    if not MIN_LABEL <= len(label) <= MAX_LABEL:
        return "label_length", f"{label!r} has {len(label)} characters (codes have {MIN_LABEL}-{MAX_LABEL})"
    if not re.match(label_regex(extra_chars), label):
        bad = sorted({c for c in label if not re.match(label_regex(extra_chars), c)})
        return "label_charset", f"{label!r}: characters outside the code charset: {''.join(bad)!r}"
    return "", ""


def verdict(task: dict[str, Any], users: dict[int, str], extra_chars: str = "") -> Verdict:
    """The task's verdict; see the module docstring for the rules."""
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
    if not annotations:
        return Verdict(problem="no_annotation", detail="nobody annotated it")
    done = [a for a in annotations if not a.get("was_cancelled")]
    if not done:
        return Verdict(problem="skipped", detail=f"skipped by {', '.join(_annotator(a, users) for a in annotations)}")
    truth = [a for a in done if a.get("ground_truth")]
    votes = [_one(a, users) for a in (truth[-1:] or done)]
    bad = [v for v in votes if not v.ok]
    if bad:
        return bad[0]
    answers = {(v.label, v.unreadable) for v in votes}
    if len(answers) > 1:
        said = "; ".join(f"{v.annotator}: {'unreadable' if v.unreadable else repr(v.label)}" for v in votes)
        return Verdict(problem="annotators_disagree", detail=said)
    last = max(votes, key=lambda v: (v.at, v.annotation or 0))
    if last.label is not None:
        problem, detail = check_label(last.label, extra_chars)
        if problem:
            return Verdict(last.label, problem=problem, detail=detail, annotation=last.annotation,
                           annotator=last.annotator, at=last.at)
    return last
