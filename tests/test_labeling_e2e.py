"""A labeling sprint on a real Label Studio server (slow): export, annotate over its REST API, import, ingest.

The module fixture installs Label Studio into ``.venv-labelstudio`` with the project's own script
(``scripts/setup-labelstudio.sh``; about 1 minute cold, nothing when it is there) and starts
``label-studio start`` on a free port with a fresh data directory (about 30 s: it migrates its
SQLite database). The annotations are posted the way Label Studio's editor posts them.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import time

import pytest
import requests

from flows.cli import main
from ingest.pipeline import IngestConfig, run_ingest
from labeling.studio import StudioClient, StudioRefused
from labeling_helpers import code, seed_labeling, seed_review, unreadable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LS_VENV = os.path.join(REPO, ".venv-labelstudio")
ADMIN = "admin@example.com"
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """A Label Studio 1.23 server of its own: {url, token, document_root, log}."""
    subprocess.run(["bash", os.path.join(REPO, "scripts", "setup-labelstudio.sh")], cwd=REPO, check=True,
                   timeout=1200)
    root = tmp_path_factory.mktemp("label-studio")
    docroot = root / "files"
    docroot.mkdir()
    port, token = free_port(), secrets.token_hex(20)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
    env.update(LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true", LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(docroot),
               LATEST_VERSION_CHECK="false", COLLECT_ANALYTICS="false", SENTRY_DSN="", FRONTEND_SENTRY_DSN="")
    log_path = root / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([os.path.join(LS_VENV, "bin", "label-studio"), "start", "--no-browser",
                                 "--data-dir", str(root / "data"), "--internal-host", "127.0.0.1", "-p", str(port),
                                 "--username", ADMIN, "--password", secrets.token_hex(8), "--user-token", token,
                                 "--enable-legacy-api-token"], cwd=str(root), env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        while True:
            try:
                version = StudioClient(url, token, timeout_s=5).version()
                break
            except Exception:   # noqa: BLE001 - not up yet (connection refused, or migrating)
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() - t0 < 300, "label-studio did not answer in 300 s:\n" + log_path.read_text()[-3000:]
                time.sleep(1)
        print(f"label-studio {version} answered after {time.monotonic() - t0:.1f} s")
        yield {"url": url, "token": token, "document_root": str(docroot), "log": str(log_path)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture()
def ls_env(label_studio, monkeypatch, tmp_path):
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio["url"])
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio["token"])
    monkeypatch.setenv("TAGLOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USER", "kim")
    return label_studio


def _api(ls, method: str, path: str, **kw):
    r = requests.request(method, f"{ls['url']}{path}", headers={"Authorization": f"Token {ls['token']}"}, timeout=60,
                         **kw)
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text[:500]}"
    return r.json() if r.content else None


def _cli(capsys, *argv: str) -> dict:
    capsys.readouterr()
    assert main(list(argv)) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _annotate(ls, task_id: int, result, cancelled: bool = False) -> None:
    _api(ls, "POST", f"/api/tasks/{task_id}/annotations/", json={"result": result, "was_cancelled": cancelled})


def test_a_sprint_round_trip_on_a_real_server(ls_env, bucket, synth_crops, capsys):
    ls = ls_env
    review = seed_review(bucket, synth_crops[:3])
    queued = seed_labeling(bucket, synth_crops[3:7])
    url = bucket.url
    ex = _cli(capsys, "label", "export", "--bucket", url, "--json")
    assert (ex["n_tasks"], ex["n_review"], ex["n_labeling"]) == (7, 3, 4)
    tasks = {t["data"]["key"]: t for t in _api(ls, "GET", "/api/tasks/", params={"project": ex["project"],
                                                                                   "page_size": 100})["tasks"]}
    assert set(tasks) == set(review) | {q["key"] for q in queued}
    t0 = _api(ls, "GET", f"/api/tasks/{tasks[queued[0]['key']]['id']}/")
    assert t0["predictions"][0]["result"][0]["value"]["text"] == [queued[0]["prediction"]]
    assert t0["predictions"][0]["score"] == pytest.approx(queued[0]["confidence"])
    assert base64.b64decode(t0["data"]["image"].split(",", 1)[1]) == bucket.read(queued[0]["key"])
    assert "confidence 0.20" in t0["data"]["why"]

    # the annotators: accept a reading, correct one, skip one, type lower case; confirm, relabel, reject
    _annotate(ls, tasks[queued[0]["key"]]["id"], code(queued[0]["prediction"]))
    _annotate(ls, tasks[queued[1]["key"]]["id"], code(synth_crops[4].label))
    _annotate(ls, tasks[queued[2]["key"]]["id"], [], cancelled=True)
    _annotate(ls, tasks[queued[3]["key"]]["id"], code("gy7924-001"))
    _annotate(ls, tasks[review[0]]["id"], code(".AB123"))
    _annotate(ls, tasks[review[1]]["id"], code("CD456-01"))
    _annotate(ls, tasks[review[2]]["id"], unreadable())

    im = _cli(capsys, "label", "import", str(ex["project"]), "--bucket", url, "--json")
    assert (im["n_tasks"], im["n_corrections"], im["n_decisions"]) == (7, 2, 3)
    assert im["decisions"] == {"confirm": 1, "relabel": 1, "reject": 1}
    assert im["reasons"] == {"skipped": 1, "label_charset": 1}
    sidecar = json.loads(bucket.read(next(k for k in im["written"] if k.endswith(".json"))))
    assert sidecar["source"] == "labeling-sprint" and sidecar["annotator"] == ADMIN
    assert sidecar["label_studio"]["project"] == ex["project"] and sidecar["model_version"] == "4"

    before = {o.name: bucket.read(o.name) for o in bucket.list()}
    again = _cli(capsys, "label", "import", str(ex["project"]), "--bucket", url, "--json")
    assert (again["n_corrections"], again["n_decisions"], again["n_already_imported"]) == (0, 0, 5)
    assert {o.name: bucket.read(o.name) for o in bucket.list()} == before

    s = run_ingest(bucket, IngestConfig(max_failed_share=1.0, min_age_s=0))
    assert (s.n_new, s.n_accepted, s.n_released, s.n_rejected) == (2, 2, 2, 1), s


def test_local_files_images_are_served_by_the_server(ls_env, tmp_path, synth_crops, capsys):
    ls = ls_env
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    from bucket.storage import open_storage

    queued = seed_labeling(open_storage(str(bucket)), synth_crops[:2])
    ex = _cli(capsys, "label", "export", "--bucket", str(bucket), "--images", "local-files", "--document-root",
              ls["document_root"], "--json")
    for t in _api(ls, "GET", "/api/tasks/", params={"project": ex["project"]})["tasks"]:
        assert t["data"]["image"].startswith("/data/local-files/?d=tagloop/")
        served = requests.get(ls["url"] + t["data"]["image"], headers={"Authorization": f"Token {ls['token']}"},
                              timeout=30)
        key = t["data"]["key"]
        assert served.status_code == 200 and served.content == (bucket / key).read_bytes()
    assert len(queued) == 2


def test_a_personal_access_token_works_and_a_wrong_token_is_refused(ls_env):
    ls = ls_env
    pat = _api(ls, "POST", "/api/token/")["token"]
    assert ADMIN in StudioClient(ls["url"], pat).users().values()
    with pytest.raises(StudioRefused, match="refused the token"):
        StudioClient(ls["url"], "not-the-token").users()


def test_import_of_a_project_that_does_not_exist_is_a_clear_error(ls_env, tmp_path, capsys):
    (tmp_path / "b").mkdir()
    assert main(["label", "import", "987654", "--bucket", str(tmp_path / "b")]) == 3
    assert "HTTP 404" in capsys.readouterr().err


def test_the_sprint_flow_imports_then_retrains(ls_env, prefect_api, monkeypatch, tmp_path, synth_crops, capsys):
    """The deployment's flow (``sprint/import-and-retrain``): the import runs first, then the retrain flow on the
    same bucket with the run's parameters (a whole retrain takes minutes: replaced by a recorder here; the
    retrain flow has its own tests)."""
    import flows.sprint
    from bucket.storage import open_storage

    (tmp_path / "b").mkdir()
    storage = open_storage(str(tmp_path / "b"))
    queued = seed_labeling(storage, synth_crops[:1])
    ex = _cli(capsys, "label", "export", "--bucket", str(tmp_path / "b"), "--json")
    task = _api(ls_env, "GET", "/api/tasks/", params={"project": ex["project"]})["tasks"][0]
    _annotate(ls_env, task["id"], code(synth_crops[0].label))
    calls = []

    class Done:
        def to_json(self) -> str:
            return json.dumps({"promoted": False})

    def retrain(**kw):
        calls.append((kw, [o.name for o in storage.list("corrections/")]))
        return Done()

    monkeypatch.setattr(flows.sprint, "retrain", retrain)
    out = flows.sprint.after_sprint(project=ex["project"], bucket=str(tmp_path / "b"), force=True, forced_by="kim")
    assert out["import"]["n_corrections"] == 1 and out["retrain"] == {"promoted": False}
    (kw, seen), = calls
    assert kw["bucket"] == str(tmp_path / "b") and kw["force"] and kw["forced_by"] == "kim"
    assert len(seen) == 2 and all(name.startswith("corrections/2") and "n0-ls" in name for name in seen)
    sidecar = json.loads(storage.read(next(n for n in seen if n.endswith(".json"))))
    assert (sidecar["origin_key"], sidecar["corrected_label"]) == (queued[0]["key"], synth_crops[0].label)
