"""Hostile bucket content: each case is quarantined with its own reason, the valid corrections beside it are
ingested, the user's objects are unchanged, nothing is retried that cannot succeed (issue 15).

Every content case runs on a local directory and on the GCS emulator; the filesystem cases (symlinks, FIFOs,
a full disk) only exist on a directory; lock and signal cases run the CLI as a user would."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bucket.lock import BucketLock
from bucket.storage import OutOfSpace, open_storage
from ingest.pipeline import IngestConfig, run_ingest
from ingest_helpers import CREATED, DAY, EchoReader, add, png_bytes, sidecar

LENIENT = IngestConfig(max_failed_share=1.0, min_age_s=0)


def _reasons(bucket, run_id):
    docs = [json.loads(bucket.read(o.name)) for o in bucket.list(f"quarantine/{run_id}/") if o.name.endswith("reasons.json")]
    return {d["key"].rsplit("/", 1)[-1]: d["reasons"][0] for d in docs}


def _snapshot(bucket):
    return {o.name: bucket.read(o.name) for o in bucket.list("corrections/")}


def _raw_sidecar(crop_id: str, body: str) -> bytes:
    """A sidecar whose ``confidence`` (or whole body) is the given JSON text."""
    return body.replace("@ID@", crop_id).encode()


GOOD_FIELDS = ('"crop_id": "@ID@", "image": "@ID@.png", "corrected_label": "AB1234", "model_version": "7", '
               f'"created_at": "{CREATED}"')
HOSTILE_SIDECARS = {
    "nested": ("[" * 20_000 + "]" * 20_000, "bad_sidecar_json"),              # RecursionError in json
    "digits400": ("{" + GOOD_FIELDS + ', "confidence": 1' + "0" * 400 + "}", "bad_sidecar_fields"),  # float overflow
    "digits5000": ("{" + GOOD_FIELDS + ', "confidence": ' + "9" * 5000 + "}", "bad_sidecar_json"),  # int digit limit
    "nan": ("{" + GOOD_FIELDS + ', "confidence": NaN}', "bad_sidecar_fields"),
    "infinity": ("{" + GOOD_FIELDS + ', "confidence": -Infinity}', "bad_sidecar_fields"),
    "boolconf": ("{" + GOOD_FIELDS + ', "confidence": true}', "bad_sidecar_fields"),
    "otherid": ('{"crop_id": "someone-else", "image": "@ID@.png", "corrected_label": "AB1234"}', "sidecar_mismatch"),
    "otherimage": ('{"crop_id": "@ID@", "image": "../../etc/passwd", "corrected_label": "AB1234"}', "sidecar_mismatch"),
    "huge": ("{" + GOOD_FIELDS + ', "pad": "' + "x" * 200_000 + '"}', "sidecar_too_large"),
}


def test_hostile_sidecars_are_quarantined_and_the_batch_goes_on(bucket, synth_crops):
    good = [add(bucket, f"g{i}", png_bytes(c.image), c.label) for i, c in enumerate(synth_crops[:3])]
    image = png_bytes(synth_crops[3].image)
    for crop_id, (body, _) in HOSTILE_SIDECARS.items():
        bucket.write(f"corrections/{DAY}/{crop_id}.png", image)
        bucket.write(f"corrections/{DAY}/{crop_id}.json", _raw_sidecar(crop_id, body))
    before = _snapshot(bucket)
    s = run_ingest(bucket, LENIENT, EchoReader())
    assert _reasons(bucket, s.run_id) == {k: reason for k, (_, reason) in HOSTILE_SIDECARS.items()}
    assert (s.n_new, s.n_accepted) == (3 + len(HOSTILE_SIDECARS), 3) and len(good) == 3
    assert _snapshot(bucket) == before                                   # the user's objects are untouched
    again = run_ingest(bucket, LENIENT, EchoReader())
    assert again.n_new == 0                                              # processed: no endless retry


def test_a_crop_that_breaks_feature_extraction_is_its_own_problem(bucket, synth_crops, monkeypatch):
    """Whatever an item's content makes fail (here: the feature code raising on one crop) quarantines that
    item with the error recorded; the others are ingested."""
    import ingest.table as table

    add(bucket, "ok", png_bytes(synth_crops[0].image), synth_crops[0].label)
    add(bucket, "boom", png_bytes(synth_crops[1].image), "BOOM1234")
    real = table.crop_features

    def features(data, label, conf):
        if label == "BOOM1234":
            raise MemoryError("cannot allocate")
        return real(data, label, conf)

    monkeypatch.setattr(table, "crop_features", features)
    s = run_ingest(bucket, LENIENT, EchoReader())
    assert (s.n_accepted, s.quarantine_reasons) == (1, {"unprocessable_item": 1})
    doc = json.loads(bucket.read(next(o.name for o in bucket.list(f"quarantine/{s.run_id}/")
                                      if o.name.endswith("reasons.json"))))
    assert doc["detail"] == "MemoryError: cannot allocate" and doc["objects"]   # what was read is kept


def test_symlinks_and_fifos_in_a_directory_bucket_are_quarantined(tmp_path, synth_crops):
    root = tmp_path / "bucket"
    root.mkdir()
    bucket = open_storage(str(root))
    add(bucket, "ok", png_bytes(synth_crops[0].image), synth_crops[0].label)
    day = root / "corrections" / DAY
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes(synth_crops[1].image))
    (day / "outside.json").write_bytes(sidecar("outside", "AB1234"))
    os.symlink(secret, day / "outside.png")                              # points outside the bucket
    (day / "dangling.json").write_bytes(sidecar("dangling", "AB1234"))
    os.symlink(tmp_path / "nothing-here.png", day / "dangling.png")
    (day / "loop.json").write_bytes(sidecar("loop", "AB1234"))
    os.symlink(day / "loop.png", day / "loop.png")                       # ELOOP
    (day / "pipe.json").write_bytes(sidecar("pipe", "AB1234"))
    os.mkfifo(day / "pipe.png")                                          # reading it would hang
    s = run_ingest(bucket, LENIENT, EchoReader())
    assert _reasons(bucket, s.run_id) == {"outside": "symlink", "dangling": "symlink", "loop": "symlink",
                                          "pipe": "not_a_regular_file"}
    assert s.n_accepted == 1
    assert not any(o.name.endswith("outside.png") for o in bucket.list("quarantine/"))  # nothing copied from outside


def test_a_full_disk_leaves_no_temporary_file_and_says_so(tmp_path, monkeypatch):
    bucket = open_storage(str(tmp_path))

    class Full:
        def __init__(self, fd, mode):
            os.close(fd)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", Full)
    with pytest.raises(OutOfSpace, match="disk full"):
        bucket.write("reports/x.json", b"{}" * 10_000)
    monkeypatch.undo()
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]


def test_objects_tagloop_writes_are_readable_by_people(tmp_path):
    bucket = open_storage(str(tmp_path))
    bucket.write("review/queue.jsonl", b"{}\n")
    assert (tmp_path / "review" / "queue.jsonl").stat().st_mode & 0o044 == 0o044


def _cli(args, home, **kw):
    env = {**os.environ, "TAGLOOP_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_ingest_refuses_while_another_run_holds_the_bucket(tmp_path, synth_crops):
    (tmp_path / "b").mkdir()
    bucket = open_storage(str(tmp_path / "b"))
    add(bucket, "ok", png_bytes(synth_crops[0].image), synth_crops[0].label)
    lock = BucketLock(bucket, "retrain elsewhere:123")
    lock.acquire(log=lambda _: None)
    p = _cli(["ingest", "--bucket", str(tmp_path / "b"), "--min-age-s", "0", "--model", "none"], tmp_path / "h")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 4 and not bucket.list("datasets/")
    ours = [line for line in err.splitlines() if line.startswith("tagloop:")]   # Prefect logs the crashed flow too
    assert len(ours) == 1 and ours[0].startswith("tagloop: another run holds") and "retrain elsewhere:123" in ours[0]
    lock.release()


@pytest.mark.slow
def test_sigterm_stops_ingest_cleanly_and_the_next_run_completes(tmp_path):
    """``kill`` of a running ingest: exit 130 with one line, the lock released, the temporary Prefect server
    stopped (nothing left in the process group), no temporary file; the next run ingests everything."""
    from flows.simulate import seed_corrections

    root = tmp_path / "b"
    root.mkdir()
    seed_corrections(open_storage(str(root)), 150, DAY, 1, None, None, n_bad=0)
    args = ["ingest", "--bucket", str(root), "--min-age-s", "0", "--model", "none", "--json"]
    p = _cli(args, tmp_path / "h")
    lock = root / "state" / "retrain" / "lock.json"
    deadline = time.time() + 240
    while not lock.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "stopped by a signal" in err and "Traceback" not in err, err[-3000:]
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.killpg(p.pid, 0)                                              # no orphaned Prefect server
    assert not lock.exists() and not [q for q in root.rglob(".tmp-*")]
    again = _cli(args, tmp_path / "h")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["n_accepted"] == 150


@pytest.mark.slow
def test_two_commands_on_a_fresh_home_create_the_prefect_database_once(tmp_path):
    """Two tagloop processes starting together on a new home used to migrate the same SQLite database at
    once (``duplicate column name``); the first now migrates under a file lock, the other waits."""
    from flows.settings import MIGRATED_MARK

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    code = "from flows.settings import prepare_prefect_database as p; p()"
    ps = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in ps]
    assert [p.returncode for p in ps] == [0, 0], errs
    assert (tmp_path / "prefect" / "prefect.db").exists() and (tmp_path / "prefect" / MIGRATED_MARK).exists()
    assert not any("OperationalError" in e for e in errs)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert time.perf_counter() - t < 3            # marked: no second migration (the upgrade alone takes ~5 s)
