"""Task of the sprint flow: import a finished Label Studio project into the bucket."""
from __future__ import annotations

import json
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from bucket.storage import open_storage
from labeling.importer import import_sprint
from labeling.studio import StudioClient
from tasks.retry import API_RETRIES


@task(cache_policy=NO_CACHE, **API_RETRIES)
def import_annotations(bucket: str, project: int, label_studio_url: str | None, owner: str,
                       extra_chars: str = "") -> dict[str, Any]:
    """Label Studio read + bucket write: ``labeling.importer.import_sprint`` (idempotent; safe to retry)."""
    summary = import_sprint(open_storage(bucket), StudioClient.from_env(label_studio_url), project, owner, extra_chars)
    return json.loads(summary.to_json())
