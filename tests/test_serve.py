"""`tagloop serve`: reading over HTTP, corrections into the bucket, the champion swapped in while serving."""
from __future__ import annotations

import base64
import json
import os
import shutil
import threading

import pytest
from fastapi.testclient import TestClient

from ingest.corrections import group_objects
from ingest.table import load_items
from recognizer.checkpoint import base_model_dir
from serve.app import create_app
from serve.models import FixedModel, ModelHolder
from serve.reading import MAX_CROPS
from serve_helpers import blank_bytes, crop_bytes, huge_header_bytes

CODES = ["DD1391-100", "GY7924", "CU4874-001"]


@pytest.fixture(scope="module")
def holder():
    h = ModelHolder(FixedModel(base_model_dir(), "base"))
    h.start()
    return h


@pytest.fixture()
def client(holder, bucket):
    return TestClient(create_app(holder, bucket, max_body=2 << 20))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _read_one(client, data: bytes) -> dict:
    r = client.post("/v1/read", files=[("files", ("c.png", data, "image/png"))])
    assert r.status_code == 200
    return r.json()["crops"][0]


@pytest.mark.parametrize("bucket", ["local"], indirect=True)
def test_read_multipart_and_json_give_text_confidence_rotation_and_version_per_crop(client):
    files = [("files", (f"{c}.png", crop_bytes(c), "image/png")) for c in CODES]
    files.append(("files", ("turned.jpg", crop_bytes("GY7924", "JPEG", turn=180), "image/jpeg")))
    r = client.post("/v1/read", files=files)
    assert r.status_code == 200
    crops = r.json()["crops"]
    assert [c["text"] for c in crops] == CODES + ["GY7924"]
    assert [c["rotation"] for c in crops] == [0, 0, 0, 180]
    assert all(0.5 < c["confidence"] <= 1 and c["model_version"] == "base" and c["error"] == "" for c in crops)
    assert len({c["crop_id"] for c in crops}) == 4

    body = {"crops": [{"image": _b64(crop_bytes("CU4874-001")), "crop_id": "shop-42"},
                      {"image": base64.urlsafe_b64encode(crop_bytes("GY7924", "WEBP")).decode().rstrip("=")}]}
    r = client.post("/v1/read", json=body)
    assert r.status_code == 200 and r.json()["model_version"] == "base"
    got = r.json()["crops"]
    assert [(c["crop_id"], c["text"]) for c in got[:1]] == [("shop-42", "CU4874-001")] and got[1]["text"] == "GY7924"


@pytest.mark.parametrize("bucket", ["local"], indirect=True)
def test_unreadable_crops_get_their_reason_and_the_rest_are_read(client):
    r = client.post("/v1/read", json={"crops": [{"image": _b64(b"not an image")}, {"image": "%%% not base64"},
                                                {"image": _b64(huge_header_bytes())}, {"image": _b64(b"")},
                                                {"image": _b64(crop_bytes("GY7924"))}]})
    assert r.status_code == 200
    crops = r.json()["crops"]
    assert [c["error"] for c in crops] == ["not a readable image: cannot identify image file bytes",
                                           "image: not valid base64 text",
                                           "image too large (8000x6000 pixels, limit 40000000)",
                                           "image: expected base64 text", ""]
    assert [c["text"] for c in crops] == ["", "", "", "", "GY7924"]
    assert all(c["confidence"] == 0.0 for c in crops[:4])


@pytest.mark.parametrize("bucket", ["local"], indirect=True)
def test_bad_requests_are_refused_with_a_reason(client):
    assert client.post("/v1/read", json={"crops": []}).status_code == 422
    too_many = {"crops": [{"image": _b64(b"x")}] * (MAX_CROPS + 1)}
    assert client.post("/v1/read", json=too_many).status_code == 422
    r = client.post("/v1/read", json={"crops": [{"image": _b64(b"x"), "crop_id": "../../etc"}]})
    assert r.status_code == 422 and "crop_id" in r.json()["detail"]
    assert client.post("/v1/read", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    r = client.post("/v1/read", files=[("files", ("big.bin", os.urandom(3 << 20), "image/png"))])
    assert r.status_code == 413 and "larger than" in r.json()["detail"]


def test_a_correction_lands_in_the_contract_filled_from_the_reading_and_ingest_accepts_it(client, bucket):
    crop = _read_one(client, crop_bytes("DD1391-1O0"))
    r = client.post("/v1/corrections", json={"crop_id": crop["crop_id"], "corrected_label": "DD1391-100",
                                             "source": "app"})
    assert r.status_code == 201, r.text
    doc = r.json()["correction"]
    assert doc["predicted_label"] == crop["text"] and doc["confidence"] == crop["confidence"]
    assert (doc["corrected_label"], doc["model_version"], doc["source"]) == ("DD1391-100", "base", "app")
    day = doc["created_at"][:10]
    names = [o.name for o in bucket.list("corrections/")]
    assert names == [f"corrections/{day}/{crop['crop_id']}.json", f"corrections/{day}/{crop['crop_id']}.png"]
    assert bucket.read(names[1]) == crop_bytes("DD1391-1O0")               # the crop's bytes as sent
    assert r.json()["object"] == bucket.uri(names[0])
    items = group_objects(bucket.list("corrections/"))
    loaded = load_items(bucket, items, bucket.list("corrections/"))
    assert [it.problem for it in items] == [""] and loaded.rows[0]["label"] == "DD1391-100"

    again = client.post("/v1/corrections", json={"crop_id": crop["crop_id"], "corrected_label": "DD1391-100"})
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["correction"] == doc
    other = client.post("/v1/corrections", json={"crop_id": crop["crop_id"], "corrected_label": "DD1391-101"})
    assert other.status_code == 409 and "never rewritten" in other.json()["detail"]
    assert json.loads(bucket.read(names[0]))["corrected_label"] == "DD1391-100"


@pytest.mark.parametrize("bucket", ["local"], indirect=True)
@pytest.mark.parametrize("label, data, reason", [("dd1391-100", crop_bytes(), "label_charset"),
                                                 ("DD1", crop_bytes(), "label_length"),
                                                 ("DD1391-100", blank_bytes(), "blank_image"),
                                                 ("DD1391-100", crop_bytes(size=(400, 12)), "bad_aspect")])
def test_what_ingest_would_quarantine_is_refused_and_nothing_is_written(client, bucket, label, data, reason):
    crop = _read_one(client, data)
    r = client.post("/v1/corrections", json={"crop_id": crop["crop_id"], "corrected_label": label})
    assert r.status_code == 422 and r.json()["reason"] == reason
    assert bucket.list("corrections/") == []


@pytest.mark.parametrize("bucket", ["local"], indirect=True)
def test_an_unknown_crop_id_needs_the_image_which_is_then_read_again(client, bucket, holder):
    r = client.post("/v1/corrections", json={"crop_id": "app-7", "corrected_label": "GY7924"})
    assert r.status_code == 404 and bucket.list("corrections/") == []
    for bad in ("", "../x", "a" * 65):
        r = client.post("/v1/corrections", json={"crop_id": bad, "corrected_label": "GY7924",
                                                 "image": _b64(crop_bytes("GY7924"))})
        assert r.status_code == 422 and "crop_id" in r.json()["detail"]
    assert bucket.list("corrections/") == []
    r = client.post("/v1/corrections", data={"crop_id": "app-7", "corrected_label": "GY7924"},
                    files={"file": ("c.jpg", crop_bytes("GY7924", "JPEG"), "image/jpeg")})
    assert r.status_code == 201, r.text
    doc = r.json()["correction"]
    assert (doc["predicted_label"], doc["image"]) == ("GY7924", "app-7.jpg") and doc["confidence"] > 0.5


def test_no_bucket_means_503_for_corrections_and_reading_still_works(holder):
    client = TestClient(create_app(holder, None))
    assert _read_one(client, crop_bytes())["text"] == "DD1391-100"
    r = client.post("/v1/corrections", json={"crop_id": "x1", "corrected_label": "DD1391-100"})
    assert r.status_code == 503 and "--bucket" in r.json()["detail"]
    assert client.get("/healthz").json()["status"] == "ok"
    assert set(client.get("/openapi.json").json()["paths"]) == {"/v1/read", "/v1/corrections", "/healthz", "/v1/model"}


class Toggle:
    """A source whose wanted version the test moves; ``broken`` versions fail to load."""

    ref = "test"

    def __init__(self, broken_dir: str) -> None:
        self.version, self.broken_dir = "1", broken_dir

    def wanted(self) -> str:
        return self.version

    def fetch(self, version: str) -> str:
        return self.broken_dir if version == "bad" else base_model_dir()


def test_a_new_champion_is_swapped_in_without_a_failed_request_and_a_broken_one_is_not(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(base_model_dir(), broken)
    (broken / "config.json").write_text("{}")
    source = Toggle(str(broken))
    holder = ModelHolder(source, poll_s=0)
    holder.start()
    client = TestClient(create_app(holder, None))
    seen, failures, stop = set(), [], threading.Event()

    def hammer():
        while not stop.is_set():
            r = client.post("/v1/read", files=[("files", ("c.png", crop_bytes("GY7924"), "image/png"))])
            if r.status_code != 200 or r.json()["crops"][0]["text"] != "GY7924":
                failures.append(r.text)
            else:
                seen.add(r.json()["model_version"])

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for v in ["2", "3", "4"]:
            source.version = v
            assert holder.poll() is True and holder.current.version == v
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [] and len(seen) >= 2

    source.version = "bad"
    assert holder.poll() is False and holder.current.version == "4"
    assert "version bad failed to load, still serving 4" in holder.error
    assert client.get("/healthz").status_code == 200
    assert client.get("/v1/model").json()["error"] == holder.error
    assert _read_one(client, crop_bytes())["model_version"] == "4"
    source.version = "4"                       # the alias moved back: all is well again
    assert holder.poll() is False and holder.error == ""


@pytest.mark.slow
def test_the_registry_champion_serves_and_a_promotion_is_followed(tagloop_home):
    import mlflow

    from loop.pyfunc import log_recognizer
    from loop.registry import Registry, bootstrap
    from serve.models import RegistryAlias

    holder = ModelHolder(RegistryAlias(tagloop_home), poll_s=0)
    assert holder.start().version == "base"            # no version registered yet: the shipped model
    reg = Registry()
    bootstrap(reg, base_model_dir())
    assert holder.poll() and holder.current.version == "1"
    with mlflow.start_run():
        v2 = reg.register(log_recognizer(base_model_dir()).model_uri)
    assert holder.poll() is False                      # registered, not promoted: nothing moves
    reg.promote(v2, "test")
    assert holder.poll() and holder.current.version == "2"
    assert holder.current.predictor.backend == "onnx"
    client = TestClient(create_app(holder, None))
    assert _read_one(client, crop_bytes())["model_version"] == "2"


@pytest.mark.slow
def test_tagloop_serve_answers_on_loopback_and_stops_on_sigterm(tmp_path):
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TAGLOOP_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--port", str(port), "--poll-s", "0"],
                            env=env, cwd=os.path.dirname(os.path.dirname(__file__)), stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/model", timeout=2) as r:
                    model = json.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                time.sleep(0.3)
        assert model["version"] == "base" and model["backend"] == "onnx"    # no registry: the shipped model
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/read", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"crops": [{"image": _b64(crop_bytes("GY7924"))}]}).encode())
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["crops"][0]["text"] == "GY7924"
        assert not (tmp_path / "home" / "mlflow").exists()                # serving created no registry
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
