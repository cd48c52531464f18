"""The monitor flow: dataset version vs new corrections; alerts on a shifted batch, none on an unshifted one."""
from __future__ import annotations

import json
import shutil

import pytest

from ingest_helpers import add, png_bytes

SHIFT = dict(text_px=(12, 20), p_inverted=0.7, brand_mix={"vans": 0.4, "skechers": 0.3, "asics": 0.3})
NEW_DAY = "2026-11-21T02:00:00Z"


def misread(label: str, i: int, every: int) -> str:
    """The served prediction: every ``every``-th crop has its 0s read as O (or its last char dropped)."""
    if i % every:
        return label
    return label.replace("0", "O") if "0" in label else label[:-1]


def render_batch(n: int, seed: int, every: int, **cfg) -> list[tuple[bytes, str, str]]:
    """(png bytes, label, served prediction) per rendered crop."""
    from synth.dataset import iter_crops
    from synth.render import RenderConfig

    return [(png_bytes(c.image), c.label, misread(c.label, i, every))
            for i, c in enumerate(iter_crops(n, seed, RenderConfig(**cfg)))]


def add_batch(storage, batch, prefix: str, created_at: str | None = None) -> None:
    """Write a rendered batch as corrections through the serving-app writer."""
    kw = {"created_at": created_at} if created_at else {}
    for i, (data, label, predicted) in enumerate(batch):
        add(storage, f"{prefix}{i}", data, label, 0.9, predicted=predicted, **kw)


@pytest.fixture(scope="module")
def shifted():
    return render_batch(80, 303, every=4, **SHIFT)


@pytest.fixture(scope="module")
def reference_bucket(tmp_path_factory) -> str:
    """A local bucket holding one dataset version of 120 ingested corrections (5% corrected)."""
    from ingest.pipeline import IngestConfig, run_ingest
    from bucket.storage import open_storage

    root = tmp_path_factory.mktemp("ref") / "bucket"
    root.mkdir()
    storage = open_storage(str(root))
    add_batch(storage, render_batch(120, 101, every=20), prefix="ref")
    s = run_ingest(storage, IngestConfig(max_failed_share=1.0, min_age_s=0), None)
    assert s.n_accepted + s.n_review == 120
    return str(root)


def copy_to(reference_bucket: str, target) -> None:
    """Every object of the reference bucket into ``target`` (a Storage)."""
    from bucket.storage import open_storage

    src = open_storage(reference_bucket)
    for o in src.list(""):
        target.write(o.name, src.read(o.name))


def _monitor(storage, **kw):
    from flows.monitor import monitor

    return monitor(bucket=storage.url, embed_evidently=False, **kw)


@pytest.mark.slow
def test_shifted_batch_raises_the_alert(prefect_api, reference_bucket, shifted, gcs_emulator):
    """On the GCS emulator (the other tests use a local directory)."""
    import uuid

    from google.cloud import storage as gcs

    from bucket.storage import open_storage

    name = f"mon-{uuid.uuid4().hex[:12]}"
    gcs.Client(project="tagloop-test").create_bucket(name)
    bucket = open_storage(f"gs://{name}")
    copy_to(reference_bucket, bucket)
    add_batch(bucket, shifted, prefix="new", created_at=NEW_DAY)
    s = _monitor(bucket)
    names = {a["name"] for a in s["alerts"]}
    assert "dataset_drift" in names and "correction_rate" in names, s["alerts"]
    assert s["should_retrain"] and s["n_reference"] == 120 and s["n_current"] == 80
    assert s["correction_rate"] == pytest.approx(0.25) and s["reference_correction_rate"] < 0.1
    assert s["retrain"]["requested"] and not s["retrain"]["triggered"]       # no deployment here
    assert "not running from a deployment" in s["retrain"]["reason"]
    published = json.loads(bucket.read(f"reports/{s['run_id']}/summary.json"))
    assert published["should_retrain"] and published["dataset_version"] == s["dataset_version"]
    assert bucket.exists(f"reports/{s['run_id']}/drift.html")


@pytest.mark.slow
def test_unshifted_batch_raises_nothing(prefect_api, reference_bucket, tmp_path):
    from bucket.storage import open_storage

    root = tmp_path / "bucket"
    shutil.copytree(reference_bucket, root)
    storage = open_storage(str(root))
    add_batch(storage, render_batch(80, 202, every=20), prefix="new", created_at=NEW_DAY)
    storage.write("corrections/2026-11-21/lonely.png", b"an image without its sidecar")
    s = _monitor(storage)
    assert s["alerts"] == [] and not s["should_retrain"], s["alerts"]
    assert s["n_current"] == 81 and s["current_skipped"] == {"missing_sidecar": 1}
    assert s["retrain"] == {"requested": False, "triggered": False, "deployment": "retrain/nightly",
                            "flow_run_id": None, "reason": "no alert asks for a retrain"}
    # with ``since`` the already-ingested corrections of that day count as current too
    from monitoring.windows import current_window

    assert current_window(storage, since="2026-11-20").n_items == 201
    assert current_window(storage, since="2026-11-21").n_items == 81


@pytest.mark.slow
def test_alert_under_a_deployment_starts_the_retrain_deployment(prefect_api, reference_bucket, shifted, tmp_path,
                                                                monkeypatch):
    """A stand-in ``retrain`` flow is deployed on the test server; the monitor asks it for a run."""
    import asyncio

    from prefect import flow
    from prefect.client.orchestration import get_client

    import flows.monitor
    from bucket.storage import open_storage

    @flow(name="retrain")
    def retrain_stand_in(bucket: str | None = None) -> None:
        """Never runs here: only its deployment is needed."""

    retrain_stand_in.to_deployment(name="nightly").apply()
    root = tmp_path / "bucket"
    shutil.copytree(reference_bucket, root)
    storage = open_storage(str(root))
    add_batch(storage, shifted, prefix="new", created_at=NEW_DAY)
    monkeypatch.setattr(flows.monitor, "running_from_deployment", lambda: True)
    # now is inside a review window: the retrain is scheduled for its end; the alert reaches the webhook
    from datetime import datetime, timedelta, timezone

    from webhook_helpers import Receiver

    now = datetime.now(timezone.utc)
    end = (now + timedelta(hours=1)).replace(second=0, microsecond=0)
    with Receiver() as hook:
        monkeypatch.setenv("TAGLOOP_WEBHOOK_URL", hook.url)
        s = _monitor(storage, review_window=f"{now - timedelta(hours=1):%H:%M}-{end:%H:%M}", review_timezone="UTC")
    assert s["retrain"]["triggered"] and s["retrain"]["flow_run_id"]
    assert s["retrain"]["scheduled_for"] == end.isoformat() and "inside the review window" in s["retrain"]["reason"]

    async def read():
        async with get_client() as client:
            return await client.read_flow_run(s["retrain"]["flow_run_id"])

    run = asyncio.run(read())
    assert run.parameters == {"bucket": storage.url} and run.deployment_id is not None
    assert run.state.is_scheduled() and abs((run.expected_start_time - end).total_seconds()) < 1
    (body,) = hook.bodies
    assert body["tagloop"]["event"] == "alert" and "dataset_drift" in body["text"]
    assert "scheduled for" in body["text"] and body["tagloop"]["retrain"]["triggered"]
