"""The ``ingest`` flow: new corrections in the bucket -> validation -> quarantine / review -> dataset version.

``tagloop ingest`` runs it; the ``retrain`` flow runs the same ``ingest.pipeline.run_ingest``
as its ingest stage (with the registry's champion screening labels).
"""
from __future__ import annotations

from prefect import flow, get_run_logger

from flows.batch_predict import bucket_url
from flows.settings import setup_environment
from ingest.pipeline import IngestConfig, IngestSummary
from tasks.ingest import ingest_corrections, screening_model


@flow(name="ingest")
def ingest(bucket: str | None = None, model: str = "champion", max_failed_share: float = 0.5,
           heldout_share: float = 0.2, min_age_s: float = 600.0) -> IngestSummary:
    """One incremental ingest of ``bucket`` (default ``TAGLOOP_BUCKET``); returns its summary.

    ``model``: champion, a registry REF, a model directory, or ``none`` (no review screening).
    ``max_failed_share``: fail (commit nothing) when more of the new batch fails validation.
    """
    settings = setup_environment()
    url = bucket_url(bucket)
    cfg = IngestConfig(max_failed_share=max_failed_share, heldout_share=heldout_share, min_age_s=min_age_s,
                       docs_dir=settings.path("reports", "validation"))
    summary = ingest_corrections(url, cfg, screening_model(model))
    get_run_logger().info("ingest %s: %d new -> %d accepted, %d quarantined %s, %d held for review; dataset %s",
                          summary.run_id, summary.n_new, summary.n_accepted, summary.n_quarantined,
                          summary.quarantine_reasons, summary.n_review, summary.dataset_version)
    return summary
