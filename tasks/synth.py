"""Synthetic rendering as tasks: one shard of ``synth.pools`` per task (fans out on Dask)."""
from __future__ import annotations

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from synth.pools import render_shard


@task(cache_policy=NO_CACHE)
def render_shard_task(job: tuple) -> tuple[list[np.ndarray], list[str]]:
    """Pure CPU work, no side effect, so no retries: ``(seed, n, cfg_dict, height)`` -> (crops, labels)."""
    return render_shard(job)
