"""Scale-out: batch prediction chunks and synthetic rendering shards on a local Dask cluster
(two worker processes) give exactly the in-process result."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from flows_helpers import jsonl, put_incoming

DAY = "2026-11-21"


@pytest.fixture(scope="module")
def dask_address():
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           memory_limit="2GiB")
    yield cluster.scheduler_address
    cluster.close()


@pytest.mark.slow
def test_batch_predict_on_dask_equals_in_process(prefect_api, dask_address, tmp_path):
    from flows.batch_predict import batch_predict
    from bucket.storage import open_storage
    from synth.dataset import iter_crops

    local = tmp_path / "local"
    local.mkdir()
    put_incoming(open_storage(str(local)), DAY, list(iter_crops(8, seed=31)))
    open_storage(str(local)).write(f"incoming/{DAY}/zero.png", b"")
    shutil.copytree(local, tmp_path / "dask")
    a = batch_predict(bucket=str(local), batch_size=3)
    b = batch_predict(bucket=str(tmp_path / "dask"), batch_size=3, dask_address=dask_address)
    assert (a["n_scored"], a["n_unreadable"]) == (b["n_scored"], b["n_unreadable"]) == (8, 1)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "scored_at"} for r in rows]  # noqa: E731
    key = f"predictions/{DAY}.jsonl"
    assert drop(jsonl(open_storage(str(local)), key)) == drop(jsonl(open_storage(str(tmp_path / "dask")), key))
    from distributed import Client

    with Client(dask_address) as client:      # the chunks were scored in the worker processes
        loaded = client.run(lambda: len(__import__("scoring.score").score._PREDICTORS))
    assert sum(loaded.values()) >= 1


def test_rendering_shards_on_dask_equal_render_pool(prefect_api, dask_address):
    from flows.fanout import render_pool_on
    from synth.pools import render_pool

    ref = render_pool(24, seed=7, workers=1, chunk=8)
    got = render_pool_on(24, 7, dask_address, chunk=8)
    assert got.labels == ref.labels and len(got) == 24
    assert np.array_equal(got.widths, ref.widths) and np.array_equal(got.pixels, ref.pixels)
