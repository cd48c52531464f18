"""The two windows the monitor compares, read from the bucket.

Reference: the crops of the current dataset version (``datasets/<v>/manifest.parquet``,
the version in ``state/ingest/state.json``); their features were stored at ingest,
so nothing is decoded. Current: the corrections that arrived after it, i.e. the
``corrections/`` items ingest has not processed yet, or, with ``since``, every
correction in a day folder on or after that date. Current crops are downloaded
and featurized with the same functions ingest uses.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ingest import dataset
from ingest.corrections import CORRECTIONS, group_objects
from ingest.state import IngestState
from bucket.layout import check_day
from bucket.storage import Storage
from ingest.table import load_items
from monitoring.table import table_from_manifest


@dataclass
class Window:
    """A feature table (``monitoring.table``) and what it was made of."""

    table: pd.DataFrame
    dataset_version: str | None = None
    n_items: int = 0
    skipped: dict[str, int] = field(default_factory=dict)   # reason -> count (not featurized)


def reference_window(storage: Storage) -> Window:
    """Features of the current dataset version (empty before the first ingest)."""
    version = IngestState.load(storage).dataset_version
    manifest = dataset.read_manifest(storage, version)
    return Window(table_from_manifest(manifest), version, len(manifest))


def _day(key: str) -> str:
    return key.split("/")[1]


def current_window(storage: Storage, since: str | None = None) -> Window:
    """Features of corrections not yet in a dataset version (or dated on/after ``since``)."""
    check_day(since)
    processed = IngestState.load(storage).processed
    items = [i for i in group_objects(storage.list(CORRECTIONS)) if i.source == "correction"]
    items = [i for i in items if (_day(i.key) >= since if since else i.key not in processed)]
    skipped: dict[str, int] = {}
    usable = []
    for it in items:
        if it.problem:
            skipped[it.problem] = skipped.get(it.problem, 0) + 1
        else:
            usable.append(it)
    rows = load_items(storage, usable, []).rows
    good = []
    for r in rows:
        if r["structure"] == "ok" and r["decodable"] and isinstance(r["label"], str):
            good.append(r)
            continue
        reason = r["structure"] if r["structure"] != "ok" else r["decode_status"] if not r["decodable"] else "no_label"
        skipped[reason] = skipped.get(reason, 0) + 1
    table = table_from_manifest(pd.DataFrame(good)) if good else table_from_manifest(dataset.empty_manifest())
    return Window(table, None, len(items), skipped)
