"""Label-noise review queue: suspicious corrections wait for a labeler instead of training.

A correction is suspicious when its label matches none of the known code
formats, or the champion reads the crop with confidence >= ``CONFIDENT`` and
disagrees. tagloop rewrites ``review/queue.jsonl`` (one pending item a line)
every run; the labeler appends decisions to ``review/decisions.jsonl``::

    {"key": "corrections/2026-11-20/0b6f", "decision": "confirm"}
    {"key": "...", "decision": "relabel", "label": "DD1391-100"}
    {"key": "...", "decision": "reject"}

The next ingest releases confirmed/relabelled items into the dataset and
quarantines rejected ones (reason ``rejected_in_review``). tagloop never
modifies ``decisions.jsonl``; the last decision for a key wins.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import numpy as np

from bucket.storage import ObjectNotFound, Storage
from crops.codes import matches_known_format
from recognizer.metrics import exact_match

CONFIDENT = 0.95
QUEUE = "review/queue.jsonl"
DECISIONS = "review/decisions.jsonl"
DECISION_KINDS = ("confirm", "relabel", "reject")

Reader = Callable[[list[np.ndarray]], list[tuple[str, float]]]


def suspicion(label: str, champion_text: str | None, champion_conf: float | None) -> list[str]:
    """Reasons to hold a (valid) correction for review; empty when it can be trained on."""
    why = []
    if not matches_known_format(label):
        why.append("unknown_format")
    if champion_text is not None and (champion_conf or 0.0) >= CONFIDENT and not exact_match(champion_text, label):
        why.append("champion_disagrees")
    return why


def champion_reader(model_dir: str) -> Reader:
    """The shipped/current champion as a ``Reader`` (list of RGB arrays -> [(text, confidence)])."""
    from recognizer.predict import Predictor

    predictor = Predictor(model_dir)

    def read(images: list[np.ndarray]) -> list[tuple[str, float]]:
        return [(p.text, float(p.confidence)) for p in predictor.predict_arrays(images)] if images else []

    return read


def read_decisions(storage: Storage) -> dict[str, dict[str, Any]]:
    """Labeler decisions by key (last line wins); malformed lines are skipped."""
    try:
        raw = storage.read(DECISIONS).decode("utf-8", "replace")
    except ObjectNotFound:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for line in raw.splitlines():
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(d, dict) and isinstance(d.get("key"), str) and d.get("decision") in DECISION_KINDS:
            out[d["key"]] = d
    return out


def write_queue(storage: Storage, pending: dict[str, dict[str, Any]]) -> None:
    """Rewrite the labeler's queue with every pending item, sorted by key."""
    fields = ("source_object", "label", "champion_prediction", "champion_confidence",
              "review_reasons", "queued_run")
    lines = [json.dumps({"key": k, **{f: pending[k].get(f) for f in fields}}) for k in sorted(pending)]
    storage.write(QUEUE, ("\n".join(lines) + "\n" if lines else "").encode(), "application/x-ndjson")
