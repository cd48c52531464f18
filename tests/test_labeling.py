"""Labeling sprints against a local Label Studio stand-in (``FakeStudio``) and both bucket backends.

The same round trip on a real Label Studio server: ``test_labeling_e2e.py`` (slow).
"""
from __future__ import annotations

import base64
import io
import json
import os
import socket

import pandas as pd
import pytest

from ingest.pipeline import IngestConfig, run_ingest
from labeling.annotations import verdict
from labeling.export import ExportConfig, export_sprint
from labeling.importer import import_project
from labeling_helpers import DAY, FakeStudio, code, seed_labeling, seed_review, unreadable

BUCKET = "test-bucket"


def ann(aid: int, result, user: int = 2, cancelled: bool = False, truth: bool = False, at: str = "2026-11-29T10:00:00Z"):
    return {"id": aid, "completed_by": user, "result": result, "was_cancelled": cancelled, "ground_truth": truth,
            "created_at": at, "updated_at": at}


USERS = {1: "admin@example.com", 2: "ann@example.com", 3: "bo@example.com"}


@pytest.mark.parametrize("annotations, problem", [
    ([], "no_annotation"),
    ([ann(1, code("DD1391-100"), cancelled=True)], "skipped"),
    ([ann(1, [])], "empty_annotation"),
    ([ann(1, code("DD1391-100") + unreadable())], "contradictory_annotation"),
    ([ann(1, code("DD1391-100")), ann(2, code("DD1391-1O0"), user=3)], "annotators_disagree"),
    ([ann(1, code("dd1391-100"))], "label_charset"),
    ([ann(1, code("DD1391-100 ✓"))], "label_charset"),
    ([ann(1, code("DD1"))], "label_length"),
    ([ann(1, code("DD1391-100-DD1391-100-X"))], "label_length"),
    ([ann(1, code("DD1391-100"), at="yesterday")], "bad_annotation"),
])
def test_a_task_without_a_usable_label_says_why(annotations, problem):
    v = verdict({"id": 1, "annotations": annotations}, USERS)
    assert not v.ok and v.problem == problem and v.detail


def test_verdict_normalizes_the_code_and_names_the_latest_agreeing_annotator():
    v = verdict({"annotations": [ann(1, code(" AV3133   001 "), at="2026-11-29T10:00:00Z"),
                                 ann(2, code("AV3133 001"), user=3, at="2026-11-29T11:30:05.123Z"),
                                 ann(3, code("XX0000-000"), user=1, cancelled=True)]}, USERS)
    assert v.ok and (v.label, v.annotator, v.at, v.annotation) == ("AV3133 001", "bo@example.com",
                                                                   "2026-11-29T11:30:05Z", 2)


def test_a_ground_truth_annotation_decides_alone_and_extra_chars_are_admitted():
    v = verdict({"annotations": [ann(1, code("GY7924+")), ann(2, unreadable(), user=3, truth=True)]}, USERS, "+")
    assert v.ok and v.unreadable and v.annotator == "bo@example.com"
    assert verdict({"annotations": [ann(1, code("GY7924+"))]}, USERS, "+").label == "GY7924+"


def _export(bucket, studio, **kw):
    return export_sprint(bucket, studio, ExportConfig(**kw), BUCKET, "kim")


def test_export_turns_both_queues_into_one_project(bucket, synth_crops):
    review = seed_review(bucket, synth_crops[:3])
    queued = seed_labeling(bucket, synth_crops[3:7])
    studio = FakeStudio()
    s = _export(bucket, studio)
    assert (s.n_tasks, s.n_review, s.n_labeling, s.missing) == (7, 3, 4, [])
    tasks = {t["data"]["key"]: t for t in studio.project_tasks(s.project)}
    assert set(tasks) == set(review) | {r["key"] for r in queued}
    low = tasks[queued[0]["key"]]
    pred = low["predictions"][0]
    assert pred["result"][0]["value"]["text"] == [queued[0]["prediction"]] and pred["score"] == queued[0]["confidence"]
    assert pred["model_version"] == "4" and "confidence 0.20" in low["data"]["why"]
    assert low["data"]["image"].startswith("data:image/png;base64,")
    assert base64.b64decode(low["data"]["image"].split(",", 1)[1]) == bucket.read(queued[0]["key"])
    held = tasks[review[0]]
    assert "unknown_format" in held["data"]["why"] and "'.AB123'" in held["data"]["why"]
    record = json.loads(bucket.read(f"labeling/sprints/{s.sprint}.json"))
    assert record["project"] == s.project and set(record["items"]) == set(tasks) and record["created_by"] == "kim"


def test_a_second_export_skips_crops_an_earlier_sprint_holds(bucket, synth_crops):
    queued = seed_labeling(bucket, synth_crops[:4])
    studio = FakeStudio()
    first = _export(bucket, studio, max_tasks=3)
    assert (first.n_tasks, first.n_over_max) == (3, 1)
    second = _export(bucket, studio)
    assert (second.n_tasks, second.n_already_exported) == (1, 3)
    assert [t["data"]["key"] for t in studio.project_tasks(second.project)] == [queued[3]["key"]]
    third = _export(bucket, studio)
    assert (third.project, third.n_tasks, third.n_already_exported) == (None, 0, 4)
    assert _export(bucket, studio, include_exported=True, queue="labeling", day=DAY).n_tasks == 4


def test_a_failed_task_import_leaves_no_project_and_no_record(bucket, synth_crops):
    seed_labeling(bucket, synth_crops[:2])
    studio = FakeStudio()
    studio.fail_import = True
    with pytest.raises(RuntimeError, match="import refused"):
        _export(bucket, studio)
    assert studio.projects == {} and bucket.list("labeling/sprints/") == []


def test_a_crop_gone_from_the_bucket_is_reported_not_exported(tmp_path, synth_crops):
    from bucket.storage import open_storage

    storage = open_storage(str(tmp_path))
    queued = seed_labeling(storage, synth_crops[:2])
    (tmp_path / queued[1]["key"]).unlink()
    s = _export(storage, FakeStudio())
    assert (s.n_tasks, s.missing) == (1, [queued[1]["key"]])


def test_bad_export_options_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="document-root"):
        ExportConfig(images="local-files")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        ExportConfig(day="21.11.2026")
    with pytest.raises(ValueError, match="queue"):
        ExportConfig(queue="all")


def _sprint(bucket, crops):
    """Both queues exported to a stand-in and annotated: accepted, corrected, skipped, lower case; confirm,
    relabel, reject."""
    review = seed_review(bucket, crops[:3])
    queued = seed_labeling(bucket, crops[3:7])
    studio = FakeStudio()
    p = _export(bucket, studio).project
    studio.annotate(p, queued[0]["key"], code(queued[0]["prediction"]))
    studio.annotate(p, queued[1]["key"], code(crops[4].label), user=1)
    studio.annotate(p, queued[2]["key"], [], cancelled=True)
    studio.annotate(p, queued[3]["key"], code("gy7924-001"))       # lower case: not a code as written
    studio.annotate(p, review[0], code(".AB123"))
    studio.annotate(p, review[1], code("CD456-01"))
    studio.annotate(p, review[2], unreadable())
    return studio, p, review, queued


def test_import_writes_corrections_and_review_decisions(bucket, synth_crops):
    studio, p, review, queued = _sprint(bucket, synth_crops)
    s = import_project(bucket, studio, p)
    assert (s.n_tasks, s.n_corrections, s.n_decisions, s.decisions) == (7, 2, 3, {"confirm": 1, "relabel": 1,
                                                                                  "reject": 1})
    assert s.reasons == {"skipped": 1, "label_charset": 1}
    assert {r["key"] for r in s.reported} == {queued[2]["key"], queued[3]["key"]}
    sidecars = [json.loads(bucket.read(k)) for k in s.written if k.endswith(".json")]
    by_origin = {d["origin_key"]: d for d in sidecars}
    d = by_origin[queued[1]["key"]]
    assert d["corrected_label"] == synth_crops[4].label and d["source"] == "labeling-sprint"
    assert (d["predicted_label"], d["confidence"], d["model_version"]) == (queued[1]["prediction"],
                                                                           queued[1]["confidence"], "4")
    assert d["annotator"] == "admin@example.com" and d["origin_crop_id"] == "n1" and d["created_at"] == "2026-11-29T14:39:37Z"
    assert d["label_studio"]["project"] == p and d["label_studio"]["url"] == studio.url
    image_key = f"corrections/2026-11-29/{d['crop_id']}.png"
    assert bucket.read(image_key) == bucket.read(queued[1]["key"])
    decisions = [json.loads(x) for x in bucket.read("review/decisions.jsonl").decode().splitlines()]
    assert [(x["key"], x["decision"], x.get("label")) for x in decisions] == [
        (review[0], "confirm", None), (review[1], "relabel", "CD456-01"), (review[2], "reject", None)]
    assert all(x["annotator"] == "ann@example.com" and x["source"] == "labeling-sprint" for x in decisions)


def test_a_second_import_writes_nothing_new(bucket, synth_crops):
    studio, p, _, _ = _sprint(bucket, synth_crops)
    import_project(bucket, studio, p)
    before = {o.name: bucket.read(o.name) for o in bucket.list()}
    again = import_project(bucket, studio, p)
    assert (again.n_corrections, again.n_decisions, again.n_already_imported) == (0, 0, 5)
    assert {o.name: bucket.read(o.name) for o in bucket.list()} == before


def test_import_keeps_earlier_decisions_byte_for_byte(bucket, synth_crops):
    studio, p, review, _ = _sprint(bucket, synth_crops)
    by_hand = b'{"key": "corrections/2026-11-01/x", "decision": "confirm"}\nnot json at all'
    bucket.write("review/decisions.jsonl", by_hand)
    import_project(bucket, studio, p)
    after = bucket.read("review/decisions.jsonl")
    assert after.startswith(by_hand + b"\n") and len(after.splitlines()) == 5


def test_the_next_ingest_takes_the_sprint_in(bucket, synth_crops):
    studio, p, review, queued = _sprint(bucket, synth_crops)
    import_project(bucket, studio, p)
    s = run_ingest(bucket, IngestConfig(max_failed_share=1.0, min_age_s=0))
    assert (s.n_new, s.n_accepted, s.n_released, s.n_rejected) == (2, 2, 2, 1), s
    rejected = [json.loads(bucket.read(o.name)) for o in bucket.list("quarantine/") if o.name.endswith("reasons.json")]
    assert [(r["key"], r["reasons"]) for r in rejected] == [(review[2], ["rejected_in_review"])]
    version = json.loads(bucket.read("state/ingest/state.json"))["dataset_version"]
    rows = pd.read_parquet(io.BytesIO(bucket.read(f"datasets/{version}/manifest.parquet")))
    sprint_rows = rows[rows["sidecar_source"] == "labeling-sprint"]
    assert sorted(sprint_rows["label"]) == sorted([queued[0]["prediction"], synth_crops[4].label])
    assert set(rows[rows["sample_id"] == review[1]]["label"]) == {"CD456-01"}
    assert review[2] not in set(rows["sample_id"])


def test_tasks_tagloop_did_not_export_are_reported(bucket, synth_crops):
    studio, p, review, queued = _sprint(bucket, synth_crops)
    studio.import_tasks(p, [{"data": {"key": "incoming/2026-11-21/evil.png", "image": "x"}}])
    forged = studio.task(p, queued[0]["key"])
    studio.projects[p]["tasks"].append({**forged, "id": 999, "data": {**forged["data"], "key": "state/ingest/state.json"}})
    other = studio.create_project("other", "")
    studio.projects[other]["tasks"] = [dict(t) for t in studio.projects[p]["tasks"] if t["data"]["key"] == review[0]]
    s = import_project(bucket, studio, p)
    assert s.reasons["not_from_tagloop"] == 1 and s.reasons["unknown_task"] == 1
    assert import_project(bucket, studio, other).reasons == {"other_project": 1}


def test_an_item_decided_since_the_export_is_reported_not_decided_again(bucket, synth_crops):
    studio, p, review, queued = _sprint(bucket, synth_crops)
    bucket.write("review/queue.jsonl", b"")                  # decided by hand meanwhile, ingested
    s = import_project(bucket, studio, p)
    assert s.reasons["no_longer_pending"] == 3 and s.n_decisions == 0 and s.n_corrections == 2


def test_a_crop_deleted_after_the_export_is_reported(tmp_path, synth_crops):
    from bucket.storage import open_storage

    storage = open_storage(str(tmp_path))
    studio, p, review, queued = _sprint(storage, synth_crops)
    os.remove(tmp_path / queued[0]["key"])
    s = import_project(storage, studio, p)
    assert s.reasons["crop_missing"] == 1 and s.n_corrections == 1


def test_local_files_export_copies_the_crops_under_the_document_root(tmp_path, synth_crops):
    from bucket.storage import open_storage

    for d in ("b", "docroot"):
        (tmp_path / d).mkdir()
    storage = open_storage(str(tmp_path / "b"))
    queued = seed_labeling(storage, synth_crops[:2])
    studio = FakeStudio()
    s = _export(storage, studio, images="local-files", document_root=str(tmp_path / "docroot"))
    folder = tmp_path / "docroot" / "tagloop" / s.sprint
    assert studio.projects[s.project]["storages"] == [str(folder)]
    for t in studio.project_tasks(s.project):
        rel = t["data"]["image"].split("?d=", 1)[1]
        assert (tmp_path / "docroot" / rel).read_bytes() == storage.read(t["data"]["key"])
    assert len(queued) == 2


def test_label_commands_fail_clearly_without_a_token_or_a_server(tmp_path, synth_crops, monkeypatch, capsys):
    from bucket.storage import open_storage
    from flows.cli import main

    (tmp_path / "b").mkdir()
    storage = open_storage(str(tmp_path / "b"))
    seed_labeling(storage, synth_crops[:1])
    monkeypatch.setenv("TAGLOOP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    assert main(["label", "export", "--bucket", str(tmp_path / "b")]) == 2
    assert "LABEL_STUDIO_API_KEY" in capsys.readouterr().err
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "t0ken-t0ken")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert main(["label", "export", "--bucket", str(tmp_path / "b"), "--url", closed]) == 3
    assert "did not answer" in capsys.readouterr().err
    assert main(["label", "import", "1", "--bucket", str(tmp_path / "b"), "--url", closed]) == 3
    assert main(["label", "export", "--bucket", str(tmp_path / "nope"), "--url", closed]) == 3
    assert storage.list("labeling/sprints/") == [] and storage.list("state/retrain/") == []
