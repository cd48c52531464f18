"""The ``sprint`` flow (deployment ``sprint/import-and-retrain``): the manual retrain after a labeling sprint.

1. import the sprint's Label Studio project (``labeling.importer.import_sprint``, under the bucket
   lock): labeling-queue crops become corrections (``source: labeling-sprint``), review-queue crops
   get their decisions; skipped when ``project`` is None (imported by hand with ``tagloop label import``);
2. the ``retrain`` flow as a subflow: its ingest stage takes the new corrections and applies the
   decisions, then mix -> fine-tune -> evaluate -> gate -> register -> reports, as every night.
"""
from __future__ import annotations

import json
import os
import socket
from typing import Any

from prefect import flow, get_run_logger

from bucket.lock import DEFAULT_TTL_S
from flows.retrain import retrain
from flows.settings import bucket_url, setup_environment
from loop.config import CycleConfig
from tasks.labeling import import_annotations


@flow(name="sprint")
def after_sprint(project: int | None = None, bucket: str | None = None, label_studio_url: str | None = None,
                 since: str | None = None, force: bool = False, forced_by: str | None = None,
                 config: CycleConfig | None = None, lock_ttl_s: float = DEFAULT_TTL_S) -> dict[str, Any]:
    """Import Label Studio ``project`` into ``bucket`` (default ``TAGLOOP_BUCKET``), then one retrain cycle.

    ``label_studio_url``: default ``LABEL_STUDIO_URL`` on the worker, the token its ``LABEL_STUDIO_API_KEY``.
    ``since``, ``force`` + ``forced_by``, ``config``, ``lock_ttl_s``: the retrain flow's parameters.
    Returns ``{"import": <label import --json>, "retrain": <retrain --json>}``.
    """
    logger = get_run_logger()
    settings = setup_environment()
    url = bucket_url(bucket, settings)
    imported = None
    if project is not None:
        imported = import_annotations(url, project, label_studio_url,
                                      f"sprint-import {socket.gethostname()}:{os.getpid()}", settings.extra_chars)
        logger.info("sprint project %s: %d new corrections, %d review decisions %s, %d imported before, "
                    "%d not taken %s", project, imported["n_corrections"], imported["n_decisions"],
                    imported["decisions"], imported["n_already_imported"], imported["n_reported"], imported["reasons"])
    summary = retrain(bucket=url, since=since, force=force, forced_by=forced_by, config=config, lock_ttl_s=lock_ttl_s)
    return {"import": imported, "retrain": json.loads(summary.to_json())}
