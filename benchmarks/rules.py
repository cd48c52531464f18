"""What each reading rule of the predictor is worth, on renders and on real photos.

    python -m benchmarks.rules [--model champion] [--n 1000] [--real ../shared/real-dev]

Reads the held-out renders (``benchmarks.common.test_set``) and the real photos with the
predictor as it serves, then with one rule switched off at a time, and reports exact match,
mean and p95 time per crop (1 thread, one crop per call, decode excluded) and the expected
calibration error of the confidence (10 equal-width bins: |accuracy - mean confidence|,
weighted by bin size). Writes ``benchmarks/results/rules.json``.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.common import save, test_set
from benchmarks.real import DEFAULT_DIR, load
from recognizer.evaluate_files import read_labels
from recognizer.metrics import exact_match
from recognizer.preprocess import load_image

# rule -> Predictor arguments that switch it off
RULES: dict[str, dict] = {
    "as served": {},
    "no 180-degree check": {"flip_check": 1.01, "sure": 0.0, "formats": False},
    "no brand-layout preference": {"formats": False},
    "no deskew retries": {"deskew_below": 0.0},
    "180-degree turns not confirmed by the photo reader (until 2026-11-30)": {"photo_turns": False},
    "sure readings outside every brand layout not re-read (until 2026-11-30)": {"photo_outside_layouts": False},
    "turned unsure readings: upright view not read by the photo reader (until 2026-12-07)": {"photo_upright_view": False},
    "sure readings outside the layouts: confusable-glyph photo readings do not replace (until 2026-12-07)":
        {"photo_confusables_outside": False},
    "unsure brand-layout readings stand against less sure photo readings that fit none (tried 2026-12-07, not served)":
        {"layout_over_photo": True},
    "where the readers disagree, the confidence rules decide (until 2026-12-07)": {"photo_weighed": None},
    "where they disagree, both readers' scores weighed equally (tried 2026-12-07)": {"photo_weighed": 1.0},
    "photo reader below 0.9 only (until 2026-11-29)": {"photo_below": 0.9, "photo_outside_layouts": False},
    "no photo reader (TAGLOOP_PHOTO_READER=off)": {"photo": None},
}


def ece(conf: list[float], ok: list[bool], bins: int = 10) -> float:
    """Expected calibration error: sum over bins of n_bin/n * |accuracy - mean confidence|."""
    c, o = np.asarray(conf, float), np.asarray(ok, float)
    idx = np.minimum((c * bins).astype(int), bins - 1)
    return float(sum(abs(o[idx == b].mean() - c[idx == b].mean()) * (idx == b).sum()
                     for b in range(bins) if (idx == b).any()) / max(1, len(c)))


def measure(predictor, images: list, labels: list[str]) -> dict:
    times, preds = [], []
    for im in images:
        t = time.perf_counter()
        preds.append(predictor.predict_arrays([im])[0])
        times.append((time.perf_counter() - t) * 1000)
    ok = [exact_match(p.text, lab) for p, lab in zip(preds, labels)]
    return {"n": len(labels), "exact_match": round(float(np.mean(ok)), 4),
            "ms_mean": round(float(np.mean(times)), 2), "ms_p95": round(float(np.percentile(times, 95)), 2),
            "ece": round(ece([p.confidence for p in preds], ok), 4)}


def main() -> None:
    from flows.settings import Settings
    from loop.modelref import resolve_model
    from recognizer.predict import Predictor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="champion", help="model to read with (default: the shipped base model)")
    ap.add_argument("--n", type=int, default=1000, help="held-out renders")
    ap.add_argument("--real", default=os.environ.get("TAGLOOP_REAL_DEV", DEFAULT_DIR), help="real photos folder")
    ap.add_argument("--name", default="rules", help="results file name")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    img_dir, rows = test_set(args.n)
    renders = ([load_image(os.path.join(img_dir, r["filename"])) for r in rows], [r["label"] for r in rows])
    real_rows, _ = read_labels(os.path.join(args.real, "labels.csv"))
    real = ([load(os.path.join(args.real, "images", r["filename"]), False) for r in real_rows],
            [r["label"] for r in real_rows])
    model = resolve_model(args.model, Settings.from_env().home)
    out: dict = {"model": args.model, "threads": 1, "rules": {}}
    for rule, kwargs in RULES.items():
        predictor = Predictor(model, **kwargs)
        out["rules"][rule] = {"renders": measure(predictor, *renders), "real": measure(predictor, *real)}
        r = out["rules"][rule]
        print(f"{rule:<28} renders {r['renders']['exact_match']:.3f} ({r['renders']['ms_mean']} ms, "
              f"p95 {r['renders']['ms_p95']}) real {r['real']['exact_match']:.3f} ({r['real']['ms_mean']} ms)", flush=True)
    print(f"saved {save(args.name, out)}")


if __name__ == "__main__":
    main()
