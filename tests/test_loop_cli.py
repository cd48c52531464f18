"""``tagloop retrain`` / ``rollback`` / model references at the command line."""
from __future__ import annotations

import json

from flows.cli import main


def test_force_needs_a_name(capsys):
    assert main(["retrain", "--force"]) == 2
    assert "--forced-by" in capsys.readouterr().err
    for blank in (" ", "", "\t \n"):              # a blank name is refused before anything runs
        assert main(["retrain", "--force", "--forced-by", blank]) == 2
        assert capsys.readouterr().err == "tagloop: --forced-by needs a NAME, not blank (recorded in the audit tags)\n"
        assert main(["retrain", "--break-lock", "--forced-by", blank]) == 2
        assert "--forced-by needs a NAME, not blank" in capsys.readouterr().err


def test_retrain_with_nothing_new_reports_why(tagloop_home, tmp_path, capsys, monkeypatch):
    """... and tells the team's webhook, as it does when a run fails."""
    from webhook_helpers import Receiver

    (tmp_path / "bucket").mkdir()
    with Receiver() as hook:
        monkeypatch.setenv("TAGLOOP_WEBHOOK_URL", hook.url)
        assert main(["retrain", "--bucket", str(tmp_path / "bucket"), "--json"]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert main(["retrain", "--bucket", str(tmp_path / "no-such-bucket")]) == 3
    assert [b["tagloop"]["event"] for b in hook.bodies] == ["gate", "failure"]
    assert hook.bodies[0]["text"].startswith("tagloop retrain: nothing new, champion v1 stays")
    assert hook.bodies[1]["text"].startswith("tagloop retrain FAILED: BucketNotFound")
    assert hook.bodies[1]["tagloop"]["bucket"] == str(tmp_path / "no-such-bucket")
    assert out["promoted"] is False and out["challenger_version"] is None and out["n_new"] == 0
    assert out["reason"].startswith("nothing to learn") and out["champion_version"] == "1"
    assert {"dataset_version", "quarantine_reasons", "metrics", "report_uri"} <= set(out)


def test_registry_refs_need_a_registry(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TAGLOOP_HOME", str(tmp_path / "empty-home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    img = tmp_path / "x.png"
    img.write_bytes(b"")
    assert main(["predict", str(img), "--out", str(tmp_path / "p.csv"),
                 "--model", "models:/product-code-recognizer@champion"]) == 2
    assert "no MLflow registry" in capsys.readouterr().err
    assert main(["rollback"]) == 2
    assert not (tmp_path / "empty-home" / "mlflow").exists()            # resolving never creates a store
