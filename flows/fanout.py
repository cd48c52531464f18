"""Where fan-out stages run: in this process (threads) by default, or on a Dask cluster.

``on_cluster(subflow, address)`` returns the subflow bound to a ``prefect_dask.DaskTaskRunner``
connected to ``address`` (``tcp://host:8786``); with no address it is returned as is.
The stages are pure functions of their inputs, so both give the same result.
"""
from __future__ import annotations

from typing import Any

from prefect import Flow, flow, unmapped

from recognizer.pool import Pool
from synth.pools import pool_from_shards, shard_jobs
from tasks.predict import score_chunk
from tasks.synth import render_shard_task


def on_cluster(subflow: Flow, address: str | None) -> Flow:
    """``subflow`` running its tasks on the Dask scheduler at ``address`` (None: unchanged)."""
    if not address:
        return subflow
    from prefect_dask import DaskTaskRunner

    return subflow.with_options(task_runner=DaskTaskRunner(address=address))


@flow(name="score-chunks")
def score_chunks(bucket: str, chunks: list[list[Any]], model: dict[str, str], scored_at: str) -> list[dict[str, Any]]:
    """Score every chunk (in parallel on the task runner); records in chunk order."""
    futures = score_chunk.map(unmapped(bucket), chunks, unmapped(model), unmapped(scored_at))
    return [r for f in futures for r in f.result()]


@flow(name="render-synthetic")
def render_synthetic(n: int, seed: int, cfg_dict: dict | None = None, height: int = 32, chunk: int = 500) -> Pool:
    """``synth.pools.render_pool`` with one task per shard: the same Pool for the same arguments."""
    jobs = shard_jobs(n, seed, cfg_dict, height, chunk)
    futures = render_shard_task.map(jobs)
    return pool_from_shards([f.result() for f in futures], height)


def render_pool_on(n: int, seed: int, dask_address: str | None = None, **kw: Any) -> Pool:
    """Render a synthetic pool in process or on the Dask cluster at ``dask_address``."""
    return on_cluster(render_synthetic, dask_address)(n, seed, **kw)
