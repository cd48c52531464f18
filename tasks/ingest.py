"""Tasks of the ingest flow: resolve the screening model, run one incremental ingest."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from ingest.pipeline import IngestConfig, IngestSummary, run_ingest
from bucket.storage import open_storage
from loop.modelref import resolve_model
from tasks.retry import API_RETRIES, IO_RETRIES


@task(cache_policy=NO_CACHE, **API_RETRIES)
def screening_model(ref: str, home: str) -> str | None:
    """Registry read: REF -> local model directory that screens labels for review (``none``: no screening)."""
    return None if ref == "none" else resolve_model(ref, home)


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def ingest_corrections(bucket: str, cfg: IngestConfig, model_dir: str | None) -> IngestSummary:
    """Bucket read + write: ``ingest.pipeline.run_ingest`` (commits last; safe to retry)."""
    from ingest.review import champion_reader

    return run_ingest(open_storage(bucket), cfg, champion_reader(model_dir) if model_dir else None)
