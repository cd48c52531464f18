"""Tasks of the batch-predict flow: list the new crops, resolve the champion, score a chunk, write back."""
from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from bucket.storage import open_storage
from loop.modelref import resolve_model
from scoring import incoming, outputs, score
from tasks.retry import API_RETRIES, IO_RETRIES


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def list_new_crops(bucket: str, day: str | None) -> tuple[list[incoming.IncomingCrop], list[str], int]:
    """Bucket read: (crops not scored yet, object names off the contract, crops already scored)."""
    storage = open_storage(bucket)
    storage.check()
    crops, odd = incoming.list_incoming(storage, day)
    todo = incoming.pending(crops, incoming.ScoreState.load(storage))
    return todo, odd, len(crops) - len(todo)


@task(cache_policy=NO_CACHE, **API_RETRIES)
def resolve_model_task(ref: str, home: str) -> dict[str, str]:
    """Registry read: REF -> ``{"ref", "dir", "version"}`` of the local artifact."""
    model_dir = resolve_model(ref, home)
    return {"ref": ref, "dir": model_dir, "version": score.model_version(model_dir)}


@task(cache_policy=NO_CACHE, **API_RETRIES)
def score_chunk(bucket: str, crops: list[incoming.IncomingCrop], model: dict[str, str],
                scored_at: str) -> list[dict[str, Any]]:
    """Bucket read + inference: one chunk of crops -> prediction records (unreadable ones carry ``error``)."""
    predictor = score.get_predictor(model["dir"])
    return score.score_crops(open_storage(bucket), crops, predictor, model, scored_at)


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def write_day_outputs(bucket: str, day: str, records: list[dict[str, Any]],
                      threshold: float, max_count: int) -> dict[str, Any]:
    """Bucket write: merge the day's predictions file and rewrite its labeling queue."""
    return outputs.write_day(open_storage(bucket), day, records, outputs.QueueConfig(threshold, max_count))


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def commit_scored(bucket: str, records: list[dict[str, Any]], run_id: str, summary: dict[str, Any]) -> None:
    """Bucket write, last: mark the records scored (the run's commit point)."""
    storage = open_storage(bucket)
    incoming.commit(storage, incoming.ScoreState.load(storage), records, run_id, summary)
