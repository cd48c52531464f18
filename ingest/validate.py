"""Great Expectations 1.x suite over the per-crop feature table, and row -> reasons mapping.

Every expectation carries ``meta.reason``; a row failing it gets that reason.
For ``structure`` and ``decode_status`` the reason is the row's own value
(``missing_sidecar``, ``corrupt_image``, ...). A row's primary reason is the
first failing expectation in suite order.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd

from crops.features import BLANK_CONTRAST
from ingest.rules import (EARLIEST, LABEL_REGEX, MAX_ASPECT, MAX_LABEL, MAX_SIDE, MIN_ASPECT,  # noqa: F401
                          MIN_LABEL, MIN_SIDE, extra_label_chars, label_regex)

FROM_VALUE = "*value*"                 # reason taken from the failing cell itself


@dataclass
class ValidationOutcome:
    reasons: dict[int, list[str]]      # table index -> reasons, failing rows only
    success: bool
    results: dict[str, Any] = field(default_factory=dict)   # GX validation result, JSON-ready


def _expectations(now: datetime, extra: str = "") -> list:
    import great_expectations.expectations as gxe

    latest = (now + timedelta(days=1)).timestamp()
    return [
        gxe.ExpectColumnValuesToBeInSet(column="structure", value_set=["ok"], meta={"reason": FROM_VALUE}),
        gxe.ExpectColumnValuesToBeInSet(column="decode_status", value_set=["ok"], meta={"reason": FROM_VALUE}),
        gxe.ExpectColumnValuesToBeBetween(column="width", min_value=MIN_SIDE, max_value=MAX_SIDE, meta={"reason": "bad_dimensions"}),
        gxe.ExpectColumnValuesToBeBetween(column="height", min_value=MIN_SIDE, max_value=MAX_SIDE, meta={"reason": "bad_dimensions"}),
        gxe.ExpectColumnValuesToBeBetween(column="aspect", min_value=MIN_ASPECT, max_value=MAX_ASPECT, meta={"reason": "bad_aspect"}),
        gxe.ExpectColumnValuesToBeBetween(column="contrast", min_value=BLANK_CONTRAST, meta={"reason": "blank_image"}),
        gxe.ExpectColumnValuesToMatchRegex(column="label", regex=label_regex(extra), meta={"reason": "label_charset"}),
        gxe.ExpectColumnValueLengthsToBeBetween(column="label", min_value=MIN_LABEL, max_value=MAX_LABEL, meta={"reason": "label_length"}),
        gxe.ExpectColumnValuesToBeBetween(column="confidence", min_value=0.0, max_value=1.0, meta={"reason": "confidence_range"}),
        gxe.ExpectColumnValuesToNotBeNull(column="created_ts", meta={"reason": "timestamp_missing"}),
        gxe.ExpectColumnValuesToBeBetween(column="created_ts", min_value=EARLIEST.timestamp(), max_value=latest, meta={"reason": "timestamp_out_of_range"}),
        gxe.ExpectColumnValuesToBeBetween(column="n_labels_for_hash", min_value=1, max_value=1, meta={"reason": "conflicting_labels"}),
        gxe.ExpectColumnValuesToBeInSet(column="seen_before", value_set=[False], meta={"reason": "duplicate_image"}),
        gxe.ExpectColumnValuesToBeUnique(column="first_hash", meta={"reason": "duplicate_image"}),
    ]


def _context(docs_dir: str | None):
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (DataContextConfig, InMemoryStoreBackendDefaults,
                                                            ProgressBarsConfig)

    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False))
    ctx = gx.get_context(mode="ephemeral", project_config=config)
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs_dir:
        ctx.add_data_docs_site("tagloop", {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
    return ctx


def run_suite(table: pd.DataFrame, run_id: str, docs_dir: str | None = None,
              now: datetime | None = None, extra_chars: str = "", max_failed_share: float | None = None) -> ValidationOutcome:
    """Validate ``table`` (one row per new crop). Data Docs HTML goes to ``docs_dir`` when given;
    ``extra_chars``: characters labels may use beyond the code charset.

    The run's status (``success``, and the Data Docs' "Status") is the batch's: with ``max_failed_share``
    the batch succeeds when at most that share of rows fails any expectation (they are quarantined, the rest
    accepted), as ingest decides; each expectation still shows its own failing rows. Without it, GX's own
    (every row passes every expectation). ``results["meta"]["tagloop"]`` says which and the counts.
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    if table.empty:
        return ValidationOutcome({}, True, {"success": True, "results": [], "note": "empty batch"})
    ctx = _context(docs_dir)
    batch = ctx.data_sources.add_pandas("ingest").add_dataframe_asset("crops").add_batch_definition_whole_dataframe("all")
    suite = ctx.suites.add(gx.ExpectationSuite(name="corrections"))
    now = now or datetime.now(timezone.utc)
    for i, e in enumerate(_expectations(now, extra_chars)):
        e.meta = {**(e.meta or {}), "order": i}
        suite.add_expectation(e)
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name="corrections", data=batch, suite=suite))
    cp = ctx.checkpoints.add(gx.Checkpoint(name="ingest", validation_definitions=[vd], actions=[],
                                           result_format={"result_format": "COMPLETE"}))
    # the run's time given, not left to GX: it parses a run name as a date, and one ingest run id in ~2,000
    # (``...Z-92ad7a``) reads as a UTC offset beyond 24 h and crashed validation
    res = cp.run(batch_parameters={"dataframe": table}, run_id=RunIdentifier(run_name=run_id, run_time=now))
    key, vres = next(iter(res.run_results.items()))
    reasons = _row_reasons(table, vres.results)
    n, n_bad = len(table), len(reasons)
    if max_failed_share is not None:
        ok = n_bad / n <= max_failed_share
        verdict = (f"{'accepted' if ok else 'REJECTED'}: {n_bad} of {n} rows failed an expectation "
                   f"({n_bad / n:.0%}, limit {max_failed_share:.0%}); "
                   + ("they are quarantined, the other rows accepted" if ok else "nothing from this batch is committed"))
    else:
        ok, verdict = bool(res.success), f"{n_bad} of {n} rows failed an expectation"
    vres.success = ok
    meta = dict(vres.meta or {})
    # batch markers are shown on the Data Docs validation page: the outcome in words, where people look
    meta["batch_markers"] = {**(meta.get("batch_markers") or {}), "tagloop_outcome": verdict}
    vres.meta = {**meta, "tagloop": verdict, "every_row_passed": bool(res.success)}
    if docs_dir:
        ctx.validation_results_store.set(key, vres)
        ctx.build_data_docs(site_names=["tagloop"])
    return ValidationOutcome(reasons, ok, vres.to_json_dict())


def _row_reasons(table: pd.DataFrame, results: list) -> dict[int, list[str]]:
    reasons: dict[int, list[str]] = {}
    for r in sorted(results, key=lambda r: (r.expectation_config.meta or {}).get("order", 99)):
        cfg = r.expectation_config
        reason = (cfg.meta or {}).get("reason", cfg.type)
        col = cfg.kwargs.get("column")
        for idx in (r.result or {}).get("unexpected_index_list") or []:
            idx = idx if isinstance(idx, int) else idx.get("index", idx)
            why = str(table.at[idx, col]) if reason == FROM_VALUE else reason
            if why not in reasons.setdefault(int(idx), []):
                reasons[int(idx)].append(why)
    return reasons


def results_json(outcome: ValidationOutcome) -> bytes:
    return json.dumps(outcome.results, indent=1, default=str).encode()
