"""prefect.yaml on a real local Prefect server: deploy, run batch-predict through a process worker."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from flows_helpers import jsonl, put_incoming

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY = "2026-11-21"
QUIET_SERVICES = ["SCHEDULER", "LATE_RUNS", "FOREMAN", "PAUSE_EXPIRATIONS", "CANCELLATION_CLEANUP", "TRIGGERS",
                  "REPOSSESSOR", "DB_VACUUM"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_env(tmp_path, port: int) -> dict[str, str]:
    """Environment of every Prefect subprocess: its own home + SQLite, this checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
               PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp_path}/prefect.db",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="true", PREFECT_SERVER_UI_ENABLED="false",
               TAGLOOP_HOME=str(tmp_path / "home"), TAGLOOP_REPO=REPO,
               PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    env.update({f"PREFECT_SERVER_SERVICES_{s}_ENABLED": "false" for s in QUIET_SERVICES})
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    res = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, f"prefect {' '.join(args)}:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def deployable_yaml(tmp_path) -> str:
    """The repository's prefect.yaml minus deployments whose entrypoint file does not exist yet."""
    doc = yaml.safe_load(open(os.path.join(REPO, "prefect.yaml")))
    doc["deployments"] = [d for d in doc["deployments"]
                          if os.path.isfile(os.path.join(REPO, d["entrypoint"].split(":")[0]))]
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


@pytest.fixture()
def server(tmp_path):
    port = free_port()
    env = prefect_env(tmp_path, port)
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                             str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.5)
        else:
            pytest.fail("prefect server did not start in 90 s:\n" + (tmp_path / "server.log").read_text())
        yield env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.mark.slow
def test_deploy_all_and_run_batch_predict_through_a_worker(server, tmp_path):
    from bucket.storage import open_storage
    from synth.dataset import iter_crops

    env, api = server, server["PREFECT_API_URL"]
    cli(env, "work-pool", "create", "tagloop-local", "--type", "process")
    cli(env, "--no-prompt", "deploy", "--all", "--prefect-file", deployable_yaml(tmp_path))
    deps = {d["name"]: d for d in httpx.post(f"{api}/deployments/filter", json={}).json()}
    assert {"every-4h", "daily"} <= set(deps)
    assert deps["every-4h"]["work_pool_name"] == "tagloop-local" and deps["every-4h"]["parameters"]["queue_max"] == 200
    assert deps["every-4h"]["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == REPO
    sched = httpx.get(f"{api}/deployments/{deps['daily']['id']}/schedules").json()[0]["schedule"]
    assert (sched["cron"], sched["timezone"]) == ("30 6 * * *", "Europe/Berlin")
    sprint = deps["import-and-retrain"]            # the manual retrain after a labeling sprint: no schedule
    assert sprint["parameters"]["project"] is None and sprint["entrypoint"] == "flows/sprint.py:after_sprint"
    assert httpx.get(f"{api}/deployments/{sprint['id']}/schedules").json() == []

    bucket = tmp_path / "bucket"
    storage = open_storage(str(bucket.mkdir() or bucket))
    keys = put_incoming(storage, DAY, list(iter_crops(3, seed=41)))
    out = cli(env, "deployment", "run", "batch-predict/every-4h", "--param", f"bucket={bucket}",
              "--param", "batch_size=2")
    run_id = next(line.split()[-1] for line in out.splitlines() if "UUID" in line)
    worker = subprocess.run([sys.executable, "-m", "prefect", "worker", "start", "--pool", "tagloop-local",
                             "--run-once"], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=180)
    run = httpx.get(f"{api}/flow_runs/{run_id}").json()
    assert run["state_type"] == "COMPLETED", worker.stdout[-3000:] + worker.stderr[-3000:]
    lines = jsonl(storage, f"predictions/{DAY}.jsonl")
    assert [r["key"] for r in lines] == keys and all(r["model_version"] for r in lines)
    assert json.loads(storage.read("state/batch_predict/state.json"))["scored"].keys() == set(keys)


@pytest.mark.slow
def test_automations_watch_for_dead_and_hung_runs(prefect_api):
    """Both automations land on the Prefect server with the webhook block; applying twice replaces them."""
    from prefect.automations import Automation
    from prefect.blocks.notifications import SlackWebhook

    from flows.automations import BLOCK, CRASHED, STUCK, apply_automations

    first = apply_automations("https://hooks.example.com/services/T/B/one", hours=4)
    again = apply_automations("https://hooks.example.com/services/T/B/two", hours=3)
    assert set(again) == {CRASHED, STUCK} and set(first.values()).isdisjoint(again.values())
    assert SlackWebhook.load(BLOCK).url.get_secret_value().endswith("/two")
    crashed, stuck = Automation.read(name=CRASHED), Automation.read(name=STUCK)
    assert str(crashed.id) == again[CRASHED] and crashed.trigger.expect == {"prefect.flow-run.Crashed",
                                                                              "prefect.flow-run.Failed"}
    assert crashed.trigger.match_related["prefect.resource.name"] == ["retrain", "monitor", "batch-predict"]
    assert stuck.trigger.posture == "Proactive" and stuck.trigger.within.total_seconds() == 3 * 3600
    assert [a.type for a in stuck.actions] == ["send-notification", "cancel-flow-run"]
    with pytest.raises(ValueError, match="http"):
        apply_automations("ftp://x")
