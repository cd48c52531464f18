"""Training on several devices: torchrun + DDP, run here as two CPU processes (gloo)."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from recognizer import distributed
from recognizer.checkpoint import read_config
from recognizer.predict import Predictor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_two_ranks_train_one_model(tmp_path, base_model_dir):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "recognizer.stream_train", "--out", str(out), "--seconds", "4", "--workers", "0",
           "--buffer", "64", "--fresh-per-batch", "4", "--batch-size", "16", "--eval-every", "1000000",
           "--val-samples", "20", "--gpus", "2", "--init", base_model_dir]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "torch.distributed.run" in p.stdout and "--nproc_per_node=2" in p.stdout
    # each rank trained on its own stream, yet DDP kept their weights identical
    shas = dict(re.findall(r"rank (\d)/2 weights ([0-9a-f]{16})", p.stdout + p.stderr))
    assert set(shas) == {"0", "1"} and shas["0"] == shas["1"], p.stdout[-2000:]
    summary = json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])
    assert summary["world_size"] == 2 and summary["weights_sha"] == shas["0"] and summary["step"] > 0
    cfg = read_config(str(out))
    assert cfg["meta"]["recipe"]["world_size"] == 2
    assert len(Predictor(str(out)).predict_arrays([np.full((32, 100), 255, "uint8")])) == 1


def test_relaunch_only_with_several_devices(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.relaunch_argv("recognizer.stream_train", ["--out", "x"], 1) is None
    cmd = distributed.relaunch_argv("recognizer.stream_train", ["--out", "x"], 4)
    assert cmd[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4",
                       "-m", "recognizer.stream_train", "--out", "x"]
    monkeypatch.setenv("WORLD_SIZE", "4")              # already a torchrun rank: never again
    assert distributed.relaunch_argv("recognizer.stream_train", ["--out", "x"], 4) is None
