"""The ``batch-predict`` flow: new crops in ``incoming/`` -> champion readings -> predictions + labeling queue.

Reads top to bottom like the data path. Write order (a run that dies anywhere
leaves a consistent bucket; the next run redoes only what was not committed):
1. ``predictions/<day>.jsonl`` (merged by key: a re-scored crop replaces its line);
2. ``labeling/queue/<day>.jsonl`` (the day's least confident readable crops);
3. ``state/batch_predict/state.json`` -- the commit point.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prefect import flow, get_run_logger

from flows.fanout import on_cluster, score_chunks
from flows.settings import bucket_url, new_run_id, setup_environment
from scoring.outputs import QueueConfig, by_day
from scoring.score import chunked
from tasks.predict import commit_scored, list_new_crops, resolve_model_task, write_day_outputs


@flow(name="batch-predict")
def batch_predict(bucket: str | None = None, date: str | None = None, model: str = "champion",
                  batch_size: int = 256, queue_threshold: float = QueueConfig.threshold,
                  queue_max: int = QueueConfig.max_count,
                  dask_address: str | None = None) -> dict[str, Any]:
    """Score the crops under ``incoming/[date/]`` not scored before; returns the run summary.

    ``queue_threshold``/``queue_max``: crops read below this confidence are queued for labeling,
    at most ``queue_max`` per day. ``dask_address``: score the chunks on that Dask cluster.
    """
    log = get_run_logger()
    settings = setup_environment()
    url = bucket_url(bucket, settings)
    run_id = new_run_id("bp")
    crops, odd, n_done = list_new_crops(url, date)
    for name in odd[:20]:
        log.warning("not an incoming crop name, skipped: %s", name)
    summary: dict[str, Any] = {"run_id": run_id, "bucket": url, "n_new": len(crops), "n_already_scored": n_done,
                               "n_skipped_names": len(odd), "n_scored": 0, "n_unreadable": 0, "n_queued": 0,
                               "unreadable": {}, "days": []}
    if not crops:
        log.info("no new crops under %s", f"{url}/incoming/{date or ''}")
        return summary
    champion = resolve_model_task(model, settings.home)
    scored_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    records = on_cluster(score_chunks, dask_address)(url, chunked(crops, batch_size), champion, scored_at)
    days = [write_day_outputs(url, day, recs, queue_threshold, queue_max) for day, recs in by_day(records).items()]
    bad = {r["key"]: r["error"] for r in records if r["error"]}
    summary.update(model_ref=champion["ref"], model_version=champion["version"], n_scored=len(records) - len(bad),
                   n_unreadable=len(bad), unreadable=bad, n_queued=sum(d["n_queued"] for d in days), days=days)
    for key, why in bad.items():
        log.warning("unreadable crop %s: %s", key, why)
    commit_scored(url, records, run_id, {k: v for k, v in summary.items() if k != "unreadable"})
    return summary
