"""Incremental ingest end to end, on a local directory and on the GCS emulator (same tests)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ingest import dataset
from ingest.pipeline import IngestConfig, ValidationFailed, run_ingest
from ingest.state import IngestState
from bucket.storage import ObjectInfo
from ingest_helpers import DAY, EchoReader, Faulty, add, huge_png, png_bytes, sidecar

LENIENT = IngestConfig(max_failed_share=1.0, min_age_s=0)


def _good(bucket, crops, n=4, prefix="g"):
    for i, c in enumerate(crops[:n]):
        add(bucket, f"{prefix}{i}", png_bytes(c.image), c.label)
    return [c.label for c in crops[:n]]


def _manifest(bucket, version):
    return dataset.read_manifest(bucket, version)


def _snapshot(bucket, prefix="corrections/"):
    return {o.name: bucket.read(o.name) for o in bucket.list(prefix)}


def _reasons(bucket, run_id):
    docs = [json.loads(bucket.read(o.name)) for o in bucket.list(f"quarantine/{run_id}/") if o.name.endswith("reasons.json")]
    return {d["key"].rsplit("/", 1)[-1]: d["reasons"][0] for d in docs}


def test_clean_batch_then_rerun_adds_nothing(bucket, synth_crops):
    labels = _good(bucket, synth_crops, n=6)
    s = run_ingest(bucket, LENIENT, EchoReader())
    assert (s.n_new, s.n_accepted, s.n_quarantined, s.n_review) == (6, 6, 0, 0)
    m = _manifest(bucket, s.dataset_version)
    assert sorted(m["label"]) == sorted(labels)
    assert set(m["split"]) <= {"train", "heldout"}
    assert dataset.version_id(m) == s.dataset_version          # version = content hash of the rows
    assert m["content_hash"].is_unique and m["source_object"].str.endswith(".png").all()
    assert (m["model_version"] == "7").all() and m["width"].gt(0).all()
    again = run_ingest(bucket, LENIENT, EchoReader())
    assert (again.n_new, again.n_accepted, again.dataset_version) == (0, 0, s.dataset_version)


def test_empty_bucket(bucket):
    s = run_ingest(bucket, LENIENT, EchoReader())
    assert (s.n_new, s.n_accepted, s.n_quarantined, s.quarantine_reasons) == (0, 0, 0, {})
    assert len(_manifest(bucket, s.dataset_version)) == 0


def _seed_bad(bucket, crops):
    img = [png_bytes(c.image) for c in crops]
    add(bucket, "corrupt", b"\x89PNG\r\n\x1a\nthis is not really a png", "AB1234")
    add(bucket, "zero", b"", "AB1234")
    bucket.write(f"corrections/{DAY}/badjson.png", img[1])
    bucket.write(f"corrections/{DAY}/badjson.json", b'{"corrected_label": "AB1234",')
    bucket.write(f"corrections/{DAY}/noimage.json", sidecar("noimage", "AB1234"))
    bucket.write(f"corrections/{DAY}/nosidecar.png", img[2])
    add(bucket, "charset", img[3], "ab1234-é")
    add(bucket, "emptylabel", img[4], "")
    add(bucket, "longlabel", img[5], "A" * 200)
    add(bucket, "huge", huge_png(20_000, 20_000), "AB1234")
    add(bucket, "dupA", img[6], "CU4874-001")
    add(bucket, "dupB", img[6], "CU4874-007")
    add(bucket, "blank", png_bytes(np.full((40, 160, 3), 200, np.uint8)), "AB1234")
    add(bucket, "conf", img[7], "GY7924", confidence=1.7)
    add(bucket, "old", png_bytes(crops[0].image[::-1].copy()), "GY7925", created_at="1999-01-01T00:00:00Z")


EXPECTED = {"corrupt": "corrupt_image", "zero": "empty_image", "badjson": "bad_sidecar_json",
            "noimage": "missing_image", "nosidecar": "missing_sidecar", "charset": "label_charset",
            "emptylabel": "label_length", "longlabel": "label_length", "huge": "image_too_large",
            "dupA": "conflicting_labels", "dupB": "conflicting_labels", "blank": "blank_image",
            "conf": "confidence_range", "old": "timestamp_out_of_range", "evil.png": "unsafe_name"}


def test_every_bad_case_is_quarantined_with_its_reason(bucket, synth_crops):
    _good(bucket, synth_crops, n=2)
    _seed_bad(bucket, synth_crops)
    before = _snapshot(bucket)
    # neither backend can hold a "../" name, real GCS can: list one, and answer reads with two 503s
    evil = ObjectInfo(f"corrections/{DAY}/../../evil.png", 10, pd.Timestamp("2026-11-20", tz="UTC").to_pydatetime())
    store = Faulty(bucket, transient_reads=2, extra_listing=[evil])
    s = run_ingest(store, LENIENT, EchoReader())
    assert s.n_accepted == 2 and s.n_review == 0
    assert s.n_new == s.n_accepted + s.n_quarantined + s.n_review == 2 + len(EXPECTED)
    assert _reasons(bucket, s.run_id) == EXPECTED
    expected_counts: dict[str, int] = {}
    for r in EXPECTED.values():
        expected_counts[r] = expected_counts.get(r, 0) + 1
    assert s.quarantine_reasons == expected_counts
    assert s.n_retries >= 2                                     # the injected 503s were retried, not quarantined
    assert _snapshot(bucket) == before                          # user objects untouched
    q = f"quarantine/{s.run_id}/corrections__{DAY}__corrupt/"
    assert bucket.read(q + "corrupt.png") == before[f"corrections/{DAY}/corrupt.png"]
    assert not any("evil" in o.name and "unsafe-" not in o.name for o in bucket.list("quarantine/"))
    results = json.loads(bucket.read(f"reports/validation/{s.run_id}/results.json"))
    assert results["success"] is True and results["meta"]["every_row_passed"] is False   # accepted, rows quarantined
    assert results["meta"]["tagloop"].startswith(f"accepted: {len(EXPECTED)} of {2 + len(EXPECTED)} rows failed")
    assert run_ingest(bucket, LENIENT, EchoReader()).n_new == 0


def test_duplicate_of_dataset_crop_is_deduplicated_or_conflicting(bucket, synth_crops):
    img = png_bytes(synth_crops[0].image)
    add(bucket, "first", img, synth_crops[0].label)
    run_ingest(bucket, LENIENT, EchoReader())
    add(bucket, "again", img, synth_crops[0].label)
    assert run_ingest(bucket, LENIENT, EchoReader()).quarantine_reasons == {"duplicate_image": 1}
    add(bucket, "relabelled", img, "CU4874-001")                # same bytes, another label than the dataset's
    s = run_ingest(bucket, LENIENT, EchoReader())
    assert s.quarantine_reasons == {"conflicting_labels": 1}
    assert list(_manifest(bucket, s.dataset_version)["label"]) == [synth_crops[0].label]


def test_failed_share_over_threshold_fails_loudly_and_commits_nothing(bucket, synth_crops):
    _good(bucket, synth_crops, n=1)
    _seed_bad(bucket, synth_crops)
    with pytest.raises(ValidationFailed, match="failed validation"):
        run_ingest(bucket, IngestConfig(max_failed_share=0.2, min_age_s=0), EchoReader())
    assert IngestState.load(bucket).processed == {} and bucket.list("datasets/") == []
    assert bucket.list("quarantine/")                           # the evidence is kept
    s = run_ingest(bucket, LENIENT, EchoReader())               # operator accepts the batch
    assert s.n_new == 1 + len(EXPECTED) - 1 and s.n_accepted == 1


@pytest.mark.parametrize("crash_at", ["quarantine/", "datasets/", "state/ingest/state.json"])
def test_crash_mid_run_then_rerun_loses_and_duplicates_nothing(bucket, synth_crops, crash_at):
    labels = _good(bucket, synth_crops, n=5)
    add(bucket, "zero", b"", "AB1234")
    with pytest.raises(RuntimeError, match="injected crash"):
        run_ingest(Faulty(bucket, crash_on_write=crash_at), LENIENT, EchoReader())
    s = run_ingest(bucket, LENIENT, EchoReader())
    assert (s.n_new, s.n_accepted, s.n_quarantined) == (6, 5, 1)
    m = _manifest(bucket, s.dataset_version)
    assert sorted(m["label"]) == sorted(labels) and m["sample_id"].is_unique
    runs = {o.name.split("/")[1] for o in bucket.list("quarantine/")}
    assert runs == {s.run_id}                                   # the crashed run was resumed, not duplicated
    assert [o.name.endswith("reasons.json") for o in bucket.list("quarantine/")].count(True) == 1
    assert run_ingest(bucket, LENIENT, EchoReader()).n_new == 0


def test_review_queue_holds_then_releases(bucket, synth_crops):
    c0, c1, c2 = synth_crops[:3]
    add(bucket, "odd", png_bytes(c0.image), "DD1391--100")     # fits no known code format
    add(bucket, "disputed", png_bytes(c1.image), c1.label)
    add(bucket, "fine", png_bytes(c2.image), c2.label)
    reader = EchoReader({c1.image.shape[1]: ("ZZ9999-999", 0.99), c2.image.shape[1]: (c2.label, 0.99)})
    s = run_ingest(bucket, LENIENT, reader)
    assert (s.n_new, s.n_accepted, s.n_review) == (3, 1, 2)
    assert s.review_reasons == {"unknown_format": 1, "champion_disagrees": 1}
    queue = [json.loads(x) for x in bucket.read("review/queue.jsonl").decode().splitlines()]
    assert {q["key"].rsplit("/", 1)[-1] for q in queue} == {"odd", "disputed"}
    assert len(_manifest(bucket, s.dataset_version)) == 1
    decisions = [{"key": f"corrections/{DAY}/disputed", "decision": "confirm"},
                 {"key": f"corrections/{DAY}/odd", "decision": "reject"}]
    bucket.write("review/decisions.jsonl", "\n".join(json.dumps(d) for d in decisions).encode())
    s2 = run_ingest(bucket, LENIENT, reader)
    assert (s2.n_new, s2.n_released, s2.n_rejected) == (0, 1, 1)
    m = _manifest(bucket, s2.dataset_version)
    assert sorted(m["label"]) == sorted([c1.label, c2.label])
    assert bucket.read("review/queue.jsonl") == b""
    assert run_ingest(bucket, LENIENT, reader).n_released == 0


def test_legacy_objects_are_imported(bucket, synth_crops):
    gray = png_bytes(synth_crops[0].image, gray=True)
    bucket.write("legacy/0b6f1234-aaaa-bbbb-cccc-1234567890ab_232040/BBK_20240102030405", gray)
    bucket.write("legacy/1c7e5678-aaaa-bbbb-cccc-1234567890ab_DD1391-100_1704164645.png",
                 png_bytes(synth_crops[1].image, gray=True))
    bucket.write("legacy/garbage-name.png", gray)
    s = run_ingest(bucket, LENIENT, EchoReader())
    assert (s.n_new, s.n_accepted, s.quarantine_reasons) == (3, 2, {"unexpected_name": 1})
    m = _manifest(bucket, s.dataset_version).set_index("label")
    assert set(m.index) == {"232040/BBK", "DD1391-100"}
    assert (m["source"] == "legacy").all()
    assert m.loc["232040/BBK", "created_at"] == "2024-01-02T03:04:05Z"


def test_young_orphans_wait_for_their_sidecar(bucket, synth_crops):
    bucket.write(f"corrections/{DAY}/late.png", png_bytes(synth_crops[0].image))
    s = run_ingest(bucket, IngestConfig(max_failed_share=1.0, min_age_s=600), EchoReader())
    assert (s.n_new, s.n_deferred) == (0, 1)
    bucket.write(f"corrections/{DAY}/late.json", sidecar("late", synth_crops[0].label))
    s = run_ingest(bucket, IngestConfig(max_failed_share=1.0, min_age_s=600), EchoReader())
    assert (s.n_new, s.n_accepted, s.n_deferred) == (1, 1, 0)
