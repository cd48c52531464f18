"""Embedded MLflow registry: bootstrap, aliases on promotion and rollback, the pyfunc, model refs."""
from __future__ import annotations

import io
import json
import os

import mlflow
import pandas as pd
import pytest
from PIL import Image

from recognizer.checkpoint import base_model_dir
from loop.pyfunc import log_recognizer
from loop.modelref import parse_model_ref, resolve_model, tracking_uri
from loop.registry import Registry, bootstrap


def _register_copy(registry: Registry, model_dir: str) -> str:
    with mlflow.start_run():
        info = log_recognizer(model_dir)
    return registry.register(info.model_uri)


def test_default_tracking_is_sqlite_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(str(tmp_path)) == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert tracking_uri(str(tmp_path)) == "http://mlflow.internal:5000"


@pytest.mark.slow
def test_embedded_store_stays_with_its_home(tmp_path, monkeypatch):
    """mlflow.set_tracking_uri exports the URI; an embedded store must not leak into the next home."""
    from loop.registry import setup_mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = setup_mlflow(str(tmp_path / "a"))
    assert first.endswith("/a/mlflow/mlflow.db") and "MLFLOW_TRACKING_URI" not in os.environ
    assert mlflow.get_tracking_uri() == first
    assert setup_mlflow(str(tmp_path / "b")).endswith("/b/mlflow/mlflow.db")
    assert mlflow.get_tracking_uri().endswith("/b/mlflow/mlflow.db")


def test_bootstrap_promote_rollback_move_aliases(tagloop_home):
    reg = Registry()
    assert resolve_model("champion", tagloop_home) == base_model_dir()           # empty registry: shipped model
    assert bootstrap(reg, base_model_dir()) == "1" and bootstrap(reg, base_model_dir()) is None
    assert reg.aliases() == {"champion": "1", "challenger": None, "previous-champion": None}
    champ_dir = resolve_model("champion", tagloop_home)
    assert champ_dir.startswith(tagloop_home)
    assert open(os.path.join(champ_dir, "model.safetensors"), "rb").read() == \
        open(os.path.join(base_model_dir(), "model.safetensors"), "rb").read()

    v2 = _register_copy(reg, base_model_dir())
    reg.set_alias("challenger", v2)
    move = reg.promote(v2, "test promotion", forced_by="kim")
    assert (move.champion, move.previous_champion) == ("2", "1")
    assert reg.aliases() == {"champion": "2", "challenger": "2", "previous-champion": "1"}
    tags = reg.version_tags("2")
    assert tags["forced_by"] == "kim" and tags["replaced"] == "1" and tags["promotion_reason"] == "test promotion"
    with pytest.raises(ValueError, match="already the champion"):
        reg.promote("2", "again")
    v3 = _register_copy(reg, base_model_dir())
    reg.promote(v3, "third")
    assert reg.aliases()["previous-champion"] == "2"

    back = reg.rollback(by="lee")
    assert (back.champion, back.previous_champion) == ("2", "1")   # walks back along 'replaced'
    assert reg.version_tags("3")["rolled_back_by"] == "lee"
    reg.rollback()
    assert reg.aliases()["champion"] == "1" and reg.aliases()["previous-champion"] is None
    with pytest.raises(ValueError, match="no 'previous-champion'"):
        reg.rollback()
    v3_dir = resolve_model("models:/product-code-recognizer/3", tagloop_home)
    assert v3_dir.endswith(os.path.join("3", "artifacts", "base_model"))
    with pytest.raises(ValueError, match="no such registered model version"):
        resolve_model("models:/product-code-recognizer/9", tagloop_home)


def test_cli_rollback_json(tagloop_home, capsys):
    from flows.cli import main

    reg = Registry()
    bootstrap(reg, base_model_dir())
    reg.promote(_register_copy(reg, base_model_dir()), "test")
    assert main(["rollback", "--json", "--by", "ops"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["champion"] == "1" and out["before"]["champion"] == "2" and out["previous_champion"] is None
    assert Registry().alias("champion") == "1"
    assert main(["rollback"]) == 2                                  # nothing left to roll back to


def test_cli_promote_moves_the_champion_by_hand_and_audits_it(tagloop_home, capsys):
    from flows.cli import main

    reg = Registry()
    bootstrap(reg, base_model_dir())
    v2 = _register_copy(reg, base_model_dir())
    assert main(["promote", v2, "--by", "ops", "--reason", "approved after review", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["champion"], out["previous_champion"], out["before"]["champion"]) == ("2", "1", "1")
    tags = reg.version_tags("2")
    assert tags["forced_by"] == "ops" and tags["promotion_reason"] == "promoted by hand by ops: approved after review"
    assert main(["promote", "9", "--by", "ops"]) == 2 and "no registered version '9'" in capsys.readouterr().err
    assert main(["promote", "1", "--by", "  "]) == 2 and Registry().alias("champion") == "2"
    assert main(["promote", "2", "--by", "ops"]) == 2 and "already the champion" in capsys.readouterr().err


def test_cli_status_shows_aliases_last_verdicts_review_queue_and_lock(tagloop_home, tmp_path, synth_crops, capsys):
    from bucket.lock import BucketLock
    from bucket.storage import open_storage
    from flows.cli import main
    from ingest.pipeline import IngestConfig, run_ingest
    from ingest_helpers import add, png_bytes

    assert main(["status", "--json"]) == 0
    empty = json.loads(capsys.readouterr().out)["registry"]
    assert empty["aliases"]["champion"] is None and empty["runs"] == []
    reg = Registry()
    bootstrap(reg, base_model_dir())
    reg.promote(_register_copy(reg, base_model_dir()), "test", forced_by="kim")
    for verdict in ("refused", "no decision"):
        with mlflow.start_run():
            mlflow.set_tags({"tagloop.kind": "retrain", "gate.verdict": verdict, "gate.reason": f"{verdict}: why"})
    (tmp_path / "b").mkdir()
    bucket = open_storage(str(tmp_path / "b"))
    for i, c in enumerate(synth_crops[:3]):
        add(bucket, f"c{i}", png_bytes(c.image), c.label)
    run_ingest(bucket, IngestConfig(min_age_s=0))
    BucketLock(bucket, "retrain on host-a").acquire(log=lambda _: None)
    assert main(["status", "--bucket", str(tmp_path / "b"), "--runs", "1", "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["registry"]["aliases"]["champion"]["version"] == "2"
    assert out["registry"]["aliases"]["champion"]["forced_by"] == "kim"
    assert [r["verdict"] for r in out["registry"]["runs"]] == ["no decision"]          # newest first, --runs 1
    assert out["bucket"]["processed"] == 3 and out["bucket"]["last_ingest"]["n_accepted"] == 3
    assert out["bucket"]["lock"]["owner"] == "retrain on host-a"
    assert "champion           v2" in captured.err and "held by retrain on host-a" in captured.err


def test_pyfunc_reads_variable_width_crops_without_pickles(tagloop_home, synth_crops):
    reg = Registry()
    bootstrap(reg, base_model_dir())
    model = mlflow.pyfunc.load_model("models:/product-code-recognizer@champion")
    crops = synth_crops[:4]
    assert len({c.image.shape[1] for c in crops}) > 1
    def png(rgb):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="PNG")
        return buf.getvalue()
    out = model.predict(pd.DataFrame({"image": [png(c.image) for c in crops] + [b"not an image"]}))
    assert list(out.columns) == ["prediction", "confidence", "error"] and len(out) == 5
    assert (out["error"][:4] == "").all() and out["error"][4].startswith("not a readable image")
    assert out["confidence"][4] == 0 and out["confidence"][:4].between(0, 1).all()
    from recognizer.predict import Predictor

    direct = [p.text for p in Predictor(base_model_dir()).predict_arrays([c.image for c in crops])]
    assert list(out["prediction"][:4]) == direct
    local = mlflow.artifacts.download_artifacts("models:/product-code-recognizer/1")
    assert not [f for _, _, fs in os.walk(local) for f in fs if f.endswith((".pkl", ".pickle", ".cloudpickle"))]


def test_model_refs():
    assert parse_model_ref("champion") == ("product-code-recognizer", "alias", "champion")
    assert parse_model_ref("models:/product-code-recognizer@previous-champion")[2] == "previous-champion"
    assert parse_model_ref("models:/product-code-recognizer/12") == ("product-code-recognizer", "version", "12")
    with pytest.raises(ValueError):
        parse_model_ref("models:/product-code-recognizer/latest")


def test_approval_mode_waits_for_a_person_and_refuses_stale_evidence(tagloop_home, capsys):
    """require_approval: a passing gate registers the challenger as pending; `approve` promotes it (not forced),
    `reject` keeps the champion; evidence judged against another champion is refused."""
    from flows.cli import main
    from loop.gate import AWAITING, PROMOTED, REFUSED, Check, GateConfig, GateDecision, await_approval
    from loop.stages import register_stage

    reg = Registry()
    bootstrap(reg, base_model_dir())
    passed = GateDecision(PROMOTED, "promoted: challenger wins overall 0.6 vs 0.5", [Check("overall", True, "")])
    waiting = await_approval(passed)
    assert (waiting.verdict, waiting.promote) == (AWAITING, False) and "0.6 vs 0.5" in waiting.reason
    refused = GateDecision(REFUSED, "not promoted: x", [Check("overall", False, "")])
    assert await_approval(refused) is refused
    assert GateConfig().require_approval is False                   # the nightly default promotes on the gate

    v2 = register_stage(reg, base_model_dir(), waiting, "ds-1", "run-1")
    assert reg.aliases()["champion"] == "1" and reg.aliases()["challenger"] == v2
    assert [p["version"] for p in reg.pending_approvals()] == [v2] and reg.pending_approvals()[0]["gate_champion"] == "1"
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["registry"]["pending_approvals"][0]["version"] == v2
    assert main(["status"]) == 0 and f"tagloop approve {v2} --by NAME" in capsys.readouterr().out

    assert main(["approve", "1", "--by", "ops"]) == 2 and "not waiting for approval" in capsys.readouterr().err
    assert main(["approve", v2, "--by", " "]) == 2 and reg.aliases()["champion"] == "1"
    assert main(["approve", v2, "--by", "ops", "--note", "looked at the worst crops", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["champion"], out["previous_champion"], out["by"]) == (v2, "1", "ops")
    tags = reg.version_tags(v2)
    assert tags["approval"] == "approved" and tags["approved_by"] == "ops" and "forced_by" not in tags
    assert tags["promotion_reason"].startswith("approved by ops (looked at the worst crops); the gate said: awaiting")
    assert reg.pending_approvals() == []
    assert main(["approve", v2, "--by", "ops"]) == 2                 # decided once

    v3 = _register_copy(reg, base_model_dir())
    reg.await_approval(v3, "awaiting approval (the gate passed): ...")
    v4 = _register_copy(reg, base_model_dir())
    reg.await_approval(v4, "awaiting approval (the gate passed): ...")
    assert main(["reject", v3, "--by", "lee", "--note", "brand X slice looks off"]) == 0
    assert reg.version_tags(v3)["approval"] == "rejected" and reg.version_tags(v3)["rejected_by"] == "lee"
    assert reg.aliases()["champion"] == v2
    reg.rollback(by="lee")                                          # the champion changes under the pending v4
    assert main(["approve", v4, "--by", "ops"]) == 2
    assert f"judged against v{v2} but the champion is now v1" in capsys.readouterr().err
    assert reg.aliases()["champion"] == "1" and reg.version_tags(v4)["approval"] == "pending"


def test_the_champion_is_resolved_without_mlflow_once_downloaded(tagloop_home):
    """``tagloop predict`` reads the embedded store's alias table itself (importing MLflow costs more than
    the rest of a one-photo command); it follows every alias move and never serves a deleted version."""
    import subprocess
    import sys

    from loop.modelref import cached_registry_model
    from loop.registry import resolve_registry_model

    reg = Registry()
    bootstrap(reg, base_model_dir())
    assert cached_registry_model("champion", tagloop_home) is None          # not downloaded yet: ask MLflow
    v1_dir = resolve_model("champion", tagloop_home)
    assert cached_registry_model("champion", tagloop_home) == v1_dir
    v2 = _register_copy(reg, base_model_dir())
    reg.promote(v2, "test")
    assert cached_registry_model("champion", tagloop_home) is None          # moved to a version not downloaded
    v2_dir = resolve_model("champion", tagloop_home)
    assert v2_dir != v1_dir and v2_dir == resolve_registry_model("champion", tagloop_home)
    assert cached_registry_model("champion", tagloop_home) == v2_dir
    reg.rollback()
    assert cached_registry_model("champion", tagloop_home) == v1_dir        # rolled back: the cached v1
    assert cached_registry_model("models:/product-code-recognizer@previous-champion", tagloop_home) is None
    assert cached_registry_model("models:/product-code-recognizer/2", tagloop_home) == v2_dir
    reg.client.delete_model_version(reg.name, v2)
    assert cached_registry_model("models:/product-code-recognizer/2", tagloop_home) is None
    with pytest.raises(ValueError, match="no such registered model version"):
        resolve_model("models:/product-code-recognizer/2", tagloop_home)

    code = ("import sys; from loop.modelref import resolve_model; print(resolve_model('champion', sys.argv[1])); "
            "print('mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, tagloop_home], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}).stdout.split()
    assert out == [v1_dir, "False"]
