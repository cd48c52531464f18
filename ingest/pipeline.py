"""``run_ingest``: bucket -> validated rows -> quarantine / review / new dataset version.

Order of side effects (a crash anywhere before the last step loses nothing:
the next run sees the same items as new and rewrites the same objects):
1. ``state/ingest/current_run.json`` (run id, resumed after a crash);
2. ``quarantine/<run>/<item>/...`` copies + ``reasons.json``;
3. ``reports/validation/<run>/`` (GX results JSON + Data Docs HTML pages);
4. ``review/queue.jsonl`` and ``datasets/<version>/manifest.parquet``;
5. ``state/ingest/state.json`` -- the commit point.
"""
from __future__ import annotations

import hashlib
import html
import json
import os
from importlib import resources
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd

from ingest import dataset, review
from ingest.corrections import CORRECTIONS, LEGACY, Item, group_objects
from ingest.state import IngestState, start_run
from bucket.storage import Storage, is_unsafe_name
from ingest.table import Loaded, add_uniqueness, load_items, plain
from ingest.validate import (MAX_LABEL, MIN_LABEL, ValidationOutcome, extra_label_chars, label_regex, results_json,
                             run_suite)


class ValidationFailed(RuntimeError):
    """Too large a share of the new batch failed validation; nothing was committed."""


@dataclass
class IngestConfig:
    max_failed_share: float = field(default=0.5, metadata={
        "help": "fail the run (commit nothing) when more than this share of new crops fails validation"})
    heldout_share: float = field(default=0.2, metadata={"help": "share of new product codes held out"})
    min_age_s: float = field(default=600.0, metadata={
        "help": "seconds an image without sidecar (or the reverse) waits before it is quarantined"})
    docs_dir: str | None = None      # local dir for GX Data Docs (None: no HTML)
    extra_chars: str = field(default="", metadata={
        "help": "characters labels may use beyond 0-9A-Z -./:()# (TAGLOOP_EXTRA_CHARS; the fine-tune appends them "
                "to the charset)"})

    def __post_init__(self) -> None:
        self.extra_chars = extra_label_chars(self.extra_chars)


@dataclass
class IngestSummary:
    dataset_version: str | None
    n_new: int
    n_accepted: int
    n_quarantined: int
    n_review: int
    quarantine_reasons: dict[str, int]
    n_released: int = 0
    n_rejected: int = 0
    n_deferred: int = 0
    n_retries: int = 0
    run_id: str = ""
    validation_report: str = ""
    review_reasons: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _is_young(item: Item, now: datetime, min_age_s: float) -> bool:
    orphan = item.problem in ("missing_sidecar", "missing_image")
    return orphan and item.updated is not None and now - item.updated < timedelta(seconds=min_age_s)


def pending_items(storage: Storage, state: IngestState, cfg: IngestConfig) -> tuple[list[Item], int, list]:
    """Items not yet processed (young orphans deferred). Returns (items, n_deferred, listing)."""
    listing = storage.list(CORRECTIONS) + storage.list(LEGACY)
    now = datetime.now(timezone.utc)
    items = [i for i in group_objects(listing) if i.key not in state.processed]
    young = [i for i in items if _is_young(i, now, cfg.min_age_s)]
    return [i for i in items if i not in young], len(young), listing


def _safe_dir(key: str) -> str:
    if is_unsafe_name(key):
        return "unsafe-" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return key.replace("/", "__")


def quarantine(storage: Storage, run_id: str, row: dict[str, Any], reasons: list[str], blobs: dict[str, bytes]) -> None:
    """Copy an item's readable objects to ``quarantine/<run>/<item>/`` with ``reasons.json``."""
    base = f"quarantine/{run_id}/{_safe_dir(row['sample_id'])}"
    for name, data in blobs.items():
        storage.write(f"{base}/{name.rsplit('/', 1)[-1]}", data)
    doc = {"key": row["sample_id"], "objects": sorted(blobs) or [row["sample_id"]], "reasons": reasons,
           "label": row.get("label"), "decode_error": row.get("decode_error") or None,
           "detail": row.get("problem_detail") or None, "run_id": run_id}
    storage.write(f"{base}/reasons.json", json.dumps(doc, indent=1, default=str).encode(), "application/json")


def _champion_read(reader: review.Reader | None, keys: list[str], loaded: Loaded) -> dict[str, tuple[str, float]]:
    if reader is None or not keys:
        return {}
    return dict(zip(keys, reader([loaded.arrays[k] for k in keys])))


def _apply_decisions(storage: Storage, state: IngestState, extra_chars: str = "") -> tuple[list[dict], list[dict]]:
    """Pending review items with a labeler decision -> (released rows, rejected rows)."""
    released, rejected = [], []
    for key, d in review.read_decisions(storage).items():
        row = state.pending_review.get(key)
        if row is None:
            continue
        if d["decision"] == "reject":
            rejected.append(state.pending_review.pop(key))
            continue
        label = d.get("label") if d["decision"] == "relabel" else row["label"]
        if not isinstance(label, str) or not (MIN_LABEL <= len(label) <= MAX_LABEL and re.match(label_regex(extra_chars), label)):
            continue    # an unusable relabel keeps the item pending
        released.append({**state.pending_review.pop(key), "label": label})
    return released, rejected


DOCS_CSS = "static/styles/tagloop-data-docs.css"


def _write_reports(storage: Storage, run_id: str, outcome, docs_dir: str | None) -> str:
    """``results.json`` and the Data Docs pages under ``reports/validation/<run>/``. Each page links tagloop's
    offline stylesheet (GX's own styles come from CDNs), so a page read from the bucket is styled either way."""
    base = f"reports/validation/{run_id}"
    storage.write(f"{base}/results.json", results_json(outcome), "application/json")
    if docs_dir and os.path.isdir(docs_dir):
        css = resources.files("ingest").joinpath("docs_assets/tagloop-data-docs.css").read_bytes()
        storage.write(f"{base}/data_docs/{DOCS_CSS}", css, "text/css")
        icon = os.path.join(docs_dir, "static", "images", "favicon.ico")
        if os.path.isfile(icon):
            with open(icon, "rb") as fh:
                storage.write(f"{base}/data_docs/static/images/favicon.ico", fh.read(), "image/x-icon")
        pages = sorted(os.path.relpath(os.path.join(d, f), docs_dir).replace(os.sep, "/")
                       for d, _sub, files in os.walk(docs_dir) for f in files if f.endswith(".html"))
        for rel in pages:
            with open(os.path.join(docs_dir, rel), "rb") as fh:
                page = with_stylesheet(fh.read(), rel)
            if rel == "index.html":
                page = with_page_list(page, [p for p in pages if p != rel])
            storage.write(f"{base}/data_docs/{rel}", page, "text/html")
    return storage.uri(f"{base}/results.json")


def with_page_list(index: bytes, pages: list[str]) -> bytes:
    """The Data Docs index with a plain list of its pages (GX draws its own table with CDN scripts)."""
    kind = {"validations": "validation result", "expectations": "expectation suite"}
    items = "".join(f'<li>{kind.get(p.split("/")[0], "page")}: <a href="{html.escape(p)}">{html.escape(p)}</a></li>'
                    for p in pages)
    block = f'<section class="tagloop-pages" style="margin:16px 24px"><h3>Pages of this run</h3><ul>{items}</ul></section>'
    at = index.lower().rfind(b"<footer")
    at = at if at >= 0 else index.lower().rfind(b"</body>")
    return index if at < 0 else index[:at] + block.encode() + index[at:]


def with_stylesheet(page: bytes, rel: str) -> bytes:
    """``page`` (at ``rel`` under the docs root) with a link to the offline stylesheet before ``</head>``."""
    link = f'<link rel="stylesheet" href="{"../" * rel.count("/")}{DOCS_CSS}">'.encode()
    at = page.lower().rfind(b"</head>")
    return page if at < 0 else page[:at] + link + page[at:]


@dataclass
class Batch:
    """The new items of one run after validation."""

    run_id: str
    rows: list[dict[str, Any]]
    bad: dict[int, list[str]]             # row index -> reasons (primary first)
    loaded: Loaded
    outcome: ValidationOutcome
    docs_dir: str | None
    accepted: list[dict[str, Any]] = field(default_factory=list)
    held: dict[str, dict[str, Any]] = field(default_factory=dict)
    q_reasons: Counter = field(default_factory=Counter)
    r_reasons: Counter = field(default_factory=Counter)


def run_ingest(storage: Storage, cfg: IngestConfig | None = None, reader: review.Reader | None = None) -> IngestSummary:
    """One incremental ingest over ``storage``; see the module docstring for the write order."""
    cfg = cfg or IngestConfig()
    storage.check()
    state = IngestState.load(storage)
    run_id = start_run(storage, state)
    items, n_deferred, listing = pending_items(storage, state, cfg)
    manifest = dataset.read_manifest(storage, state.dataset_version)
    batch = validate_batch(storage, items, listing, manifest, state, run_id, cfg)
    good = [r["sample_id"] for i, r in enumerate(batch.rows) if i not in batch.bad]
    classify(batch, _champion_read(reader, [k for k in good if k in batch.loaded.arrays], batch.loaded))
    n_new, n_bad = len(batch.rows), len(batch.bad)
    _quarantine_all(storage, batch)
    report = _write_reports(storage, run_id, batch.outcome, batch.docs_dir)
    if n_new and n_bad / n_new > cfg.max_failed_share:
        raise ValidationFailed(
            f"{n_bad}/{n_new} new corrections failed validation (limit {cfg.max_failed_share:.0%}): "
            f"{dict(batch.q_reasons)}; see {storage.uri(f'quarantine/{run_id}/')} -- nothing was committed "
            "(fix the upload path, or raise --max-failed-share to accept the batch)")
    released, rejected = _apply_decisions(storage, state, cfg.extra_chars)
    for row in rejected:
        quarantine(storage, run_id, row, ["rejected_in_review"], {})
    state.pending_review.update(batch.held)
    review.write_queue(storage, state.pending_review)
    new_rows = dataset.assign_splits(manifest, batch.accepted + released, cfg.heldout_share)
    version = state.dataset_version
    if new_rows or version is None:
        version = dataset.write_version(storage, dataset.merge(manifest, new_rows), state.dataset_version, run_id)
    summary = IngestSummary(version, n_new, len(batch.accepted), n_bad, len(batch.held), dict(batch.q_reasons),
                            len(released), len(rejected), n_deferred, storage.retries_done, run_id, report,
                            dict(batch.r_reasons))
    _commit(storage, state, batch, summary)
    return summary


def validate_batch(storage: Storage, items: list[Item], listing: list, manifest: pd.DataFrame,
                   state: IngestState, run_id: str, cfg: IngestConfig) -> Batch:
    """Read + featurize the new items and run the GX suite over their table."""
    loaded = load_items(storage, items, listing)
    known = dict(zip(manifest["content_hash"], manifest["label"]))
    known.update({r["content_hash"]: r["label"] for r in state.pending_review.values()})
    table = add_uniqueness(loaded.rows, known) if loaded.rows else pd.DataFrame()
    docs_dir = os.path.join(cfg.docs_dir, run_id) if cfg.docs_dir else None
    outcome = run_suite(table, run_id, docs_dir, extra_chars=cfg.extra_chars, max_failed_share=cfg.max_failed_share)
    rows = [plain(r) for r in table.to_dict("records")]
    return Batch(run_id, rows, outcome.reasons, loaded, outcome, docs_dir)


def classify(batch: Batch, champion: dict[str, tuple[str, float]]) -> None:
    """Valid rows -> accepted or held for review; count reasons."""
    for i, row in enumerate(batch.rows):
        text, conf = champion.get(row["sample_id"], (None, None))
        row.update(champion_prediction=text, champion_confidence=conf, ingest_run=batch.run_id)
        if i in batch.bad:
            batch.q_reasons[batch.bad[i][0]] += 1
            continue
        why = review.suspicion(row["label"], text, conf)
        if why:
            batch.held[row["sample_id"]] = {**row, "review_reasons": why, "queued_run": batch.run_id}
            batch.r_reasons.update(why)
        else:
            batch.accepted.append(row)


def _commit(storage: Storage, state: IngestState, batch: Batch, summary: IngestSummary) -> None:
    """Record every new item's outcome and the new version: the run's commit point."""
    for i, row in enumerate(batch.rows):
        outcome = "quarantined" if i in batch.bad else "review" if row["sample_id"] in batch.held else "accepted"
        state.processed[row["sample_id"]] = {"outcome": outcome, "run": batch.run_id}
    state.dataset_version, state.last_run_id = summary.dataset_version, batch.run_id
    state.history.append(json.loads(summary.to_json()))
    state.save(storage)


def _quarantine_all(storage: Storage, batch: Batch) -> None:
    for i, reasons in batch.bad.items():
        row = batch.rows[i]
        quarantine(storage, batch.run_id, row, reasons, batch.loaded.blobs.get(row["sample_id"], {}))
