"""The batch-predict flow on a local-directory bucket and on the GCS emulator."""
from __future__ import annotations

import pytest

from flows_helpers import jsonl, put_incoming
from bucket.storage import TransientStorageError

D1, D2 = "2026-11-21", "2026-11-22"


@pytest.fixture(scope="module")
def crops():
    from synth.dataset import iter_crops

    return list(iter_crops(9, seed=21))


def _run(storage, **kw):
    from flows.batch_predict import batch_predict

    return batch_predict(bucket=storage.url, batch_size=3, **kw)


def test_scores_each_crop_once_and_queues_the_least_confident(prefect_api, bucket, crops, base_model_dir):
    from recognizer.predict import Predictor

    k1 = put_incoming(bucket, D1, crops[:4])
    put_incoming(bucket, D2, crops[4:6])
    bucket.write(f"incoming/{D2}/broken.jpg", b"\xff\xd8\xff\xe0 truncated jpeg")
    bucket.write(f"incoming/{D2}/notes.txt", b"off the contract")
    s = _run(bucket, queue_threshold=0.99, queue_max=2)
    assert (s["n_new"], s["n_scored"], s["n_unreadable"], s["n_skipped_names"]) == (7, 6, 1, 1)
    assert "broken.jpg" in next(iter(s["unreadable"]))
    day1, day2 = jsonl(bucket, f"predictions/{D1}.jsonl"), jsonl(bucket, f"predictions/{D2}.jsonl")
    assert [r["key"] for r in day1] == k1 and len(day2) == 3
    expected = Predictor(base_model_dir).predict_arrays([c.image for c in crops[:4]])
    assert [r["prediction"] for r in day1] == [p.text for p in expected]
    assert all(r["model_ref"] == "champion" and r["model_version"].startswith("sha256:") for r in day1 + day2)
    assert {"crop_id", "key", "prediction", "confidence", "model_version", "scored_at"} <= set(day1[0])
    broken = next(r for r in day2 if r["crop_id"] == "broken")
    assert broken["prediction"] == "" and broken["confidence"] == 0.0 and broken["error"]
    q1 = jsonl(bucket, f"labeling/queue/{D1}.jsonl")
    below = sorted((r["confidence"], r["key"]) for r in day1 if r["confidence"] < 0.99)
    assert [(r["confidence"], r["key"]) for r in q1] == below[:2]
    assert all(r["crop_id"] != "broken" for r in jsonl(bucket, f"labeling/queue/{D2}.jsonl"))

    k3 = put_incoming(bucket, D1, crops[6:9], prefix="late")
    again = _run(bucket, queue_threshold=0.99, queue_max=2)
    assert (again["n_new"], again["n_already_scored"]) == (3, 7)
    day1b = jsonl(bucket, f"predictions/{D1}.jsonl")
    assert day1b[:4] == day1 and [r["key"] for r in day1b[4:]] == k3    # old lines untouched, new appended
    assert jsonl(bucket, f"predictions/{D2}.jsonl") == day2
    assert _run(bucket)["n_new"] == 0


def test_date_parameter_scores_one_day(prefect_api, tmp_path, crops):
    from bucket.storage import open_storage

    storage = open_storage(str(tmp_path))
    put_incoming(storage, D1, crops[:2])
    put_incoming(storage, D2, crops[2:3])
    s = _run(storage, date=D2)
    assert s["n_new"] == 1 and not storage.exists(f"predictions/{D1}.jsonl")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        _run(storage, date="21.11.2026")


def test_crash_before_commit_redoes_only_unfinished_work(prefect_api, tmp_path, crops, monkeypatch):
    """A run dying after the predictions were written: the re-run rescores those crops, no duplicate lines."""
    import scoring.incoming
    import tasks.predict
    from bucket.storage import open_storage

    storage = open_storage(str(tmp_path))
    put_incoming(storage, D1, crops[:2], prefix="early")
    assert _run(storage)["n_new"] == 2
    put_incoming(storage, D1, crops[2:5])

    def crash(*a, **k):
        raise TransientStorageError("injected: bucket went away while committing")

    monkeypatch.setattr(tasks.predict.commit_scored, "retries", 0)
    monkeypatch.setattr(scoring.incoming, "commit", crash)
    with pytest.raises(TransientStorageError):
        _run(storage)
    assert len(jsonl(storage, f"predictions/{D1}.jsonl")) == 5         # written, not committed
    monkeypatch.undo()
    s = _run(storage)
    assert (s["n_new"], s["n_already_scored"]) == (3, 2)             # only the unfinished work
    keys = [r["key"] for r in jsonl(storage, f"predictions/{D1}.jsonl")]
    assert len(keys) == len(set(keys)) == 5
    assert _run(storage)["n_new"] == 0


def test_missing_bucket_is_a_clear_error(prefect_api, tmp_path):
    from flows.batch_predict import batch_predict
    from bucket.storage import BucketNotFound

    with pytest.raises(BucketNotFound, match="does not exist"):
        batch_predict(bucket=str(tmp_path / "nope"))


def test_cli_batch_predict_and_monitor_print_json(prefect_api, tmp_path, crops, capsys):
    import json

    from flows.cli import main
    from bucket.storage import open_storage

    put_incoming(open_storage(str(tmp_path)), D1, crops[:2])
    assert main(["batch-predict", "--bucket", str(tmp_path), "--date", D1, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["n_new"], out["n_scored"]) == (2, 2) and out["days"][0]["day"] == D1
    assert main(["monitor", "--bucket", str(tmp_path), "--json"]) == 0    # no dataset, no corrections yet
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["alerts"] == [] and "no rows to compare" in out["drift_skipped"]
    assert main(["batch-predict", "--bucket", str(tmp_path / "missing")]) == 3
