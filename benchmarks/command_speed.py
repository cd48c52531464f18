"""The ``tagloop predict`` command as a user times it: process start to preds.csv, one thread.

Measures, in one run on the same crops:
- start: ``tagloop predict ONE.png`` wall time (median of 5) on a fresh home (no registry: the shipped
  model) and on a home whose registry champion was downloaded before (the nightly loop's machines);
- whole command on N held-out renders (``tagloop predict DIR``, ``OMP_NUM_THREADS=1``) against RapidOCR's
  recognition alone on the same crops in this process (1 thread; its engine load not counted).

    python -m benchmarks.command_speed [--n 500]

Writes ``benchmarks/results/command_speed.json``. Targets (issue 13): start <= 1 s; the whole command
at least 5x faster than RapidOCR recognition-only.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.common import save, test_set
from benchmarks.peers import RapidOCRPeer
from crops.image import load_image


def _env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(TAGLOOP_HOME=home, OMP_NUM_THREADS="1", DO_NOT_TRACK="true", MLFLOW_DISABLE_TELEMETRY="true")
    return env


def run_predict(inputs: list[str], home: str, out: str) -> float:
    """Wall seconds of one ``tagloop predict`` process (raises when it fails)."""
    cmd = [sys.executable, "-m", "flows.cli", "predict", *inputs, "--out", out]
    t = time.perf_counter()
    done = subprocess.run(cmd, env=_env(home), capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"tagloop predict exited {done.returncode}: {done.stderr[-2000:]}")
    return wall


def start_times(one: str, home: str, out: str, runs: int = 5) -> dict:
    run_predict([one], home, out)                         # page cache warm, as for any repeated command
    ts = [run_predict([one], home, out) for _ in range(runs)]
    return {"median_s": round(statistics.median(ts), 3), "min_s": round(min(ts), 3), "max_s": round(max(ts), 3),
            "runs": runs}


def registry_home(root: str) -> str:
    """A home whose embedded registry holds the shipped model as champion, downloaded once (as after any
    earlier ``tagloop predict``)."""
    from loop.modelref import resolve_model
    from loop.registry import Registry, bootstrap, setup_mlflow
    from recognizer.checkpoint import base_model_dir

    home = os.path.join(root, "with-registry")
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        setup_mlflow(home)
        bootstrap(Registry(), base_model_dir())
        resolve_model("champion", home)
    finally:
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    return home


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="crops for the whole-command comparison")
    args = ap.parse_args()
    img_dir, rows = test_set(1000)
    rows = rows[:args.n]
    root = tempfile.mkdtemp(prefix="tagloop-cmd-")
    try:
        crops = os.path.join(root, "crops")
        os.makedirs(crops)
        for r in rows:
            shutil.copyfile(os.path.join(img_dir, r["filename"]), os.path.join(crops, r["filename"]))
        out_csv = os.path.join(root, "preds.csv")
        one = os.path.join(crops, rows[0]["filename"])
        result: dict = {"threads": 1, "n": len(rows)}
        result["start_fresh_home"] = start_times(one, os.path.join(root, "fresh"), out_csv)
        result["start_registry_champion"] = start_times(one, registry_home(root), out_csv)
        wall = run_predict([crops], os.path.join(root, "fresh"), out_csv)
        result["tagloop_command_s"] = round(wall, 2)
        result["tagloop_ms_per_crop"] = round(wall / len(rows) * 1000, 2)
        rapid = RapidOCRPeer(threads=1)
        images = [load_image(os.path.join(img_dir, r["filename"])) for r in rows]
        rapid.read(images[0])
        t = time.perf_counter()
        for im in images:
            rapid.read(im)
        rapid_s = time.perf_counter() - t
        result["rapidocr_recognition_s"] = round(rapid_s, 2)
        result["rapidocr_label"] = rapid.label
        result["speedup_vs_rapidocr"] = round(rapid_s / wall, 2)
        result["load_avg_1min"] = round(os.getloadavg()[0], 2)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(result)
    print(f"saved {save('command_speed', result)}")


if __name__ == "__main__":
    main()
