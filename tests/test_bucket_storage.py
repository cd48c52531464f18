"""The storage layer: the same behaviour on a local directory and on the GCS emulator."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from bucket.state import HISTORY, JsonState
from bucket.storage import (BucketNotFound, GCSStorage, ObjectNotFound, RetryPolicy, StorageError,
                            UnsafeObjectName, open_storage)
from ingest_helpers import Faulty


def test_round_trip_list_exists(bucket):
    bucket.write("corrections/2026-11-20/b.json", b'{"x": 1}')
    bucket.write("corrections/2026-11-20/a.png", b"\x89PNG")
    bucket.write("datasets/v1/manifest.parquet", b"PAR1")
    assert bucket.read("corrections/2026-11-20/a.png") == b"\x89PNG"
    names = [o.name for o in bucket.list("corrections/")]
    assert names == ["corrections/2026-11-20/a.png", "corrections/2026-11-20/b.json"]
    assert [o.size for o in bucket.list("corrections/")] == [4, 8]
    assert bucket.exists("datasets/v1/manifest.parquet") and not bucket.exists("datasets/v2/manifest.parquet")
    bucket.write("corrections/2026-11-20/a.png", b"new")     # overwrite is allowed for tagloop's own prefixes
    assert bucket.read("corrections/2026-11-20/a.png") == b"new"


def test_empty_bucket_lists_nothing(bucket):
    assert bucket.list("") == [] and bucket.list("corrections/") == []


def test_missing_object_is_a_clear_error(bucket):
    with pytest.raises(ObjectNotFound, match="no such object"):
        bucket.read("corrections/nope.png")


@pytest.mark.parametrize("name", ["corrections/../../evil.png", "../outside.txt", "/etc/passwd",
                                  "a//b", "a/./b", "corrections/..", "a\\..\\b"])
def test_unsafe_names_never_escape(bucket, tmp_path, name):
    with pytest.raises(UnsafeObjectName):
        bucket.write(name, b"x")
    with pytest.raises(UnsafeObjectName):
        bucket.read(name)
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "outside.txt").exists()
    assert bucket.list("") == []


def test_transient_errors_are_retried(bucket):
    bucket.write("state/x.json", b"{}")
    flaky = Faulty(bucket, transient_reads=2)
    assert flaky.read("state/x.json") == b"{}"
    assert flaky.retries_done == 2
    hopeless = Faulty(bucket, transient_reads=10)
    with pytest.raises(StorageError, match="503"):
        hopeless.read("state/x.json")
    assert hopeless.retries_done == hopeless.retry.attempts - 1


def test_missing_bucket(tmp_path, gcs_emulator):
    with pytest.raises(BucketNotFound, match="does not exist"):
        open_storage(str(tmp_path / "nope")).check()
    with pytest.raises(BucketNotFound, match="does not exist"):
        open_storage("gs://no-such-bucket-here", RetryPolicy(2, 0.01)).list("corrections/")


def test_missing_credentials_is_a_clear_error(monkeypatch):
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    def no_creds(*a, **k):
        raise DefaultCredentialsError("Could not automatically determine credentials.")

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(google.auth, "default", no_creds)
    with pytest.raises(StorageError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        open_storage("gs://some-bucket")


def test_gcs_http_503_from_the_transport_is_retried(gcs_emulator):
    """A real HTTP 503 answer on the wire (flaky session in front of the emulator) is retried."""
    import requests
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs

    class FlakySession(requests.Session):
        fail_next = 2

        def request(self, method, url, *a, **k):
            if FlakySession.fail_next > 0 and "/o" in url:
                FlakySession.fail_next -= 1
                resp = requests.Response()
                resp.status_code, resp._content, resp.url = 503, b'{"error": {"code": 503}}', url
                resp.request = requests.Request(method, url).prepare()
                return resp
            return super().request(method, url, *a, **k)

    client = gcs.Client(project="t", credentials=AnonymousCredentials(), _http=FlakySession())
    client.create_bucket("flaky")
    store = GCSStorage("flaky", RetryPolicy(4, 0.01), client=client)
    FlakySession.fail_next = 2
    store.write("state/a.json", b"{}")
    FlakySession.fail_next = 2
    assert store.read("state/a.json") == b"{}"
    assert store.retries_done == 4


def test_open_storage_urls(tmp_path):
    assert open_storage(str(tmp_path)).url == f"file://{os.path.realpath(tmp_path)}"
    assert open_storage(f"file://{tmp_path}").url == f"file://{os.path.realpath(tmp_path)}"
    with pytest.raises(StorageError, match="no bucket"):
        open_storage("")
    with pytest.raises(StorageError, match="no sub-path"):
        open_storage("gs://bucket/sub")


@dataclass
class Demo(JsonState):
    KEY: ClassVar[str] = "state/demo/state.json"
    seen: dict = field(default_factory=dict)
    history: list = field(default_factory=list)


def test_json_state_round_trip_defaults_unknown_keys_and_history(bucket):
    """One implementation of the bucket's JSON state objects (ingest, batch predict)."""
    assert Demo.load(bucket) == Demo()                      # absent: the defaults
    state = Demo({"a": 1}, [{"run": i} for i in range(HISTORY + 7)])
    state.save(bucket)
    loaded = Demo.load(bucket)
    assert loaded.seen == {"a": 1} and loaded.history == [{"run": i} for i in range(7, HISTORY + 7)]
    bucket.write(Demo.KEY, json.dumps({"seen": {"b": 2}, "written_by_a_newer_tagloop": True}).encode())
    assert Demo.load(bucket) == Demo({"b": 2})
