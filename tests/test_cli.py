import csv
import json
import os
import subprocess
import sys
import time

import pytest

from flows.cli import build_parser, main


def test_every_option_has_help_text():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.dest} lacks help"


def test_version_names_the_installed_package(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == "tagloop 0.1.0"


def test_help_states_the_recipe_defaults_from_the_config(capsys):
    from recognizer.finetune import FinetuneConfig

    with pytest.raises(SystemExit):
        main(["retrain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {FinetuneConfig().train.steps})" in text and f"(default: {FinetuneConfig().train.lr})" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_synth_command_writes_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["synth", "--out", str(out), "--n", "5", "--seed", "3", "--workers", "1", "--p-rot90", "1"]) == 0
    rows = list(csv.DictReader(open(out / "labels.csv")))
    assert len(rows) == 5 and all(r["rotation"] in ("90", "270") for r in rows)
    assert "crops/s" in capsys.readouterr().out


def test_progress_bars_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    """Rendering and reading many files show a bar on a terminal's stderr; piped output stays clean."""
    import flows.cli

    out = tmp_path / "ds"
    assert main(["synth", "--out", str(out), "--n", "12", "--seed", "1", "--workers", "1"]) == 0
    assert "rendering" not in capsys.readouterr().err                     # not a terminal: no bar
    monkeypatch.setattr(flows.cli, "_is_terminal", lambda: True)
    assert main(["synth", "--out", str(out), "--n", "12", "--seed", "1", "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert "rendering: 100%" in err and "12/12" in err
    (out / "images" / "broken.jpg").write_bytes(b"not an image")
    assert main(["predict", str(out / "images"), "--out", str(tmp_path / "p.csv")]) == 0
    err = capsys.readouterr().err
    assert "reading" in err and "13/13" in err and "broken.jpg" in err


@pytest.mark.slow
def test_demo_runs_on_embedded_defaults(tmp_path):
    """A shortened demo (few crops and steps): emulator, flow, summary, reports copied out of the bucket."""
    env = {**os.environ, "TAGLOOP_HOME": str(tmp_path / "home")}
    env.pop("PREFECT_HOME", None)
    res = subprocess.run([sys.executable, "-m", "flows.cli", "demo", "--n", "40", "--steps", "10"], env=env,
                         capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert "SIMULATED" in out and "[10/10] drift + accuracy reports" in out
    assert "decision:" in out and "exact match" in out and "fine-tune: best step" in out and "-> kept " in out, out
    (demo_home,) = (tmp_path / "home" / "demo").iterdir()
    reports = list((demo_home / "bucket" / "reports").glob("retrain-*/accuracy.html"))
    assert len(reports) == 1 and str(reports[0].parent) in out
    # every bad upload is quarantined with its reason, and the summary counts what the bucket holds
    found = {json.loads(p.read_text())["key"].rsplit("/", 1)[-1]: json.loads(p.read_text())["reasons"]
             for p in (demo_home / "bucket" / "quarantine").glob("*/*/reasons.json")}
    assert {k: v[0] for k, v in found.items() if "-bad" in k} == {
        "sim-2026-bad000": "empty_image", "sim-2026-bad001": "corrupt_image", "sim-2026-bad002": "bad_sidecar_json",
        "sim-2026-bad003": "label_charset", "sim-2026-bad004": "duplicate_image"}, (found, out)
    assert f"{len(found)} quarantined" in out, (found, out)
    assert (demo_home / "mlflow" / "mlflow.db").is_file() and (demo_home / "evidently").is_dir()


def test_demo_refuses_an_empty_stream_before_starting_anything(tmp_path, monkeypatch, capsys):
    """`tagloop demo --n 0` says what is wrong (exit 2) instead of failing half way with a traceback."""
    from flows.cli import main

    monkeypatch.setenv("TAGLOOP_HOME", str(tmp_path / "home"))
    assert main(["demo", "--n", "0"]) == 2
    assert "--n (0) and --steps (300) must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "home" / "demo").exists()


def test_demo_prints_the_verdict_and_the_paired_test(capsys):
    """What a newcomer reads at the end of the demo: the verdict in words and the counts behind it."""
    from types import SimpleNamespace

    from flows.demo import print_decision
    from loop.gate import EvalData, decide, score_sets

    labels = [f"CD{i:04d}" for i in range(60)]
    sets = [EvalData("heldout", [], [], []), EvalData("new_batch", labels, labels, [x.encode() for x in labels]),
            EvalData("regression", labels, labels, [x.encode() for x in labels])]

    def reads(right):
        return {s.name: score_sets(lambda d: [(x.decode() if i < right or d.name == "regression" else "?", 0.9)
                                              for i, x in enumerate(d.images)], [s])[s.name] for s in sets}

    d = decide(reads(30), reads(33))
    print_decision(SimpleNamespace(verdict=d.verdict, gate=d.to_dict(), reason=d.reason))
    out = capsys.readouterr().out
    assert "NO DECISION: too few crops to tell the models apart, the champion stays" in out
    assert "0.550 vs 0.500 on the same 60 held-out crops (+0.050" in out
    assert "challenger alone: 3, by the champion alone: 0; exact McNemar p=0.2500" in out
    assert "the smallest gain this batch can show: +0.100" in out and "set heldout" not in out


def test_unknown_model_reference_is_a_clear_error(tmp_path, capsys):
    img = tmp_path / "x.png"
    img.write_bytes(b"")
    assert main(["predict", str(img), "--out", str(tmp_path / "p.csv"), "--model", str(tmp_path / "nope")]) == 2
    assert "model directory not found" in capsys.readouterr().err


def test_a_stop_signal_is_reported_as_a_stop_whatever_error_the_unwinding_raises(capsys, monkeypatch):
    """SIGTERM mid-command exits 130 with one line, even when a library's cleanup turns the interrupt into
    another error (CI once saw exit 2 from a FileNotFoundError raised while an ingest was unwinding)."""
    import signal

    from flows import cli

    def killed_then_cleanup_fails(_args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt:
            raise FileNotFoundError(2, "No such file or directory", "/tmp/staging") from None
        return 0

    def plain_missing_file(_args):
        raise FileNotFoundError(2, "No such file or directory", "crops.csv")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setitem(cli.COMMANDS, "status", (cli.COMMANDS["status"][0], lambda sp: None, killed_then_cleanup_fails))
    assert main(["status"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tagloop: stopped by a signal") and "FileNotFoundError" in err[0]
    assert signal.getsignal(signal.SIGTERM) is before                # the process's own handler is back

    monkeypatch.setitem(cli.COMMANDS, "status", (cli.COMMANDS["status"][0], lambda sp: None, plain_missing_file))
    assert main(["status"]) == 2                           # no signal: a missing file is the user's error, exit 2
    assert "crops.csv" in capsys.readouterr().err


def test_a_stop_prefect_loses_while_creating_a_task_run_is_still_a_stop(capsys, monkeypatch):
    """What CI saw (exit 2): SIGTERM landed while Prefect was creating a task run; Prefect's SIGTERM bridge (which
    replaces our handler inside a flow) raised ``TerminationSignal``, its crash handler then raised
    ``ValueError('Task run is not set')`` in its place, so the bridge never passed the signal on to our handler."""
    import signal

    from prefect.exceptions import TerminationSignal
    from prefect.utilities.engine import capture_sigterm

    from flows import cli

    def prefect_loses_the_signal(_args):
        with capture_sigterm():                            # Prefect's bridge, as a flow run installs it
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            except TerminationSignal:
                raise ValueError("Task run is not set")
        return 0

    def plain_bad_value(_args):
        raise ValueError("--date must be YYYY-MM-DD")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setitem(cli.COMMANDS, "status", (cli.COMMANDS["status"][0], lambda sp: None, prefect_loses_the_signal))
    assert main(["status"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tagloop: stopped by a signal") and "Task run is not set" in err[0]
    assert signal.getsignal(signal.SIGTERM) is before
    monkeypatch.setitem(cli.COMMANDS, "status", (cli.COMMANDS["status"][0], lambda sp: None, plain_bad_value))
    assert main(["status"]) == 2                           # no signal: the user's error, exit 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
