"""The ``ingest`` flow: new corrections in the bucket -> validation -> quarantine / review -> dataset version.

``tagloop ingest`` runs it; the ``retrain`` flow runs the same ``ingest.pipeline.run_ingest``
as its ingest stage (with the registry's champion screening labels).
"""
from __future__ import annotations

import os
import socket

from prefect import flow, get_run_logger

from bucket.lock import bucket_lock
from bucket.storage import open_storage
from flows.settings import bucket_url, setup_environment
from ingest.pipeline import IngestConfig, IngestSummary
from tasks.ingest import ingest_corrections, screening_model


INGEST_LOCK_TTL_S = 3600.0     # a killed ingest's lock is taken over after an hour


@flow(name="ingest")
def ingest(bucket: str | None = None, model: str = "champion",
           max_failed_share: float = IngestConfig.max_failed_share, heldout_share: float = IngestConfig.heldout_share,
           min_age_s: float = IngestConfig.min_age_s) -> IngestSummary:
    """One incremental ingest of ``bucket`` (default ``TAGLOOP_BUCKET``); returns its summary.

    ``model``: champion, a registry REF, a model directory, or ``none`` (no review screening).
    ``max_failed_share``: fail (commit nothing) when more of the new batch fails validation.
    """
    settings = setup_environment()
    url = bucket_url(bucket, settings)
    cfg = IngestConfig(max_failed_share=max_failed_share, heldout_share=heldout_share, min_age_s=min_age_s,
                       docs_dir=settings.path("reports", "validation"), extra_chars=settings.extra_chars)
    logger = get_run_logger()
    storage = open_storage(url)
    storage.check()
    # the bucket's one lock: an ingest never overlaps another ingest or a retrain (whose cycle ingests too)
    with bucket_lock(storage, f"ingest {socket.gethostname()}:{os.getpid()}", INGEST_LOCK_TTL_S, logger.info):
        summary = ingest_corrections(url, cfg, screening_model(model, settings.home))
    logger.info("ingest %s: %d new -> %d accepted, %d quarantined %s, %d held for review; dataset %s",
                          summary.run_id, summary.n_new, summary.n_accepted, summary.n_quarantined,
                          summary.quarantine_reasons, summary.n_review, summary.dataset_version)
    return summary
