"""Exact match on realistic held-out renders: ours vs RapidOCR vs Tesseract, same crops.

    python -m benchmarks.accuracy [--n 1000] [--model DIR] [--skip-tesseract]
"""
from __future__ import annotations

import argparse
import os
import time

from benchmarks.common import save, test_set
from benchmarks.peers import RapidOCRPeer, TesseractPeer
from flows.settings import Settings
from loop.modelref import resolve_model
from recognizer.metrics import TextMatch
from recognizer.predict import Predictor
from crops.image import load_image

SLICES = ("condition", "brand", "length", "tilt", "rotation")


def score(preds: list[str], rows: list[dict[str, str]]) -> dict:
    tm = TextMatch()
    for p, r in zip(preds, rows):
        tm.update(p, r["label"], {c: r[c] for c in SLICES})
    return tm.summary()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000, help="test crops")
    ap.add_argument("--model", default="champion", help="model directory (default: shipped base model)")
    ap.add_argument("--skip-tesseract", action="store_true", help="leave Tesseract out (slow)")
    args = ap.parse_args()
    img_dir, rows = test_set(args.n)
    paths = [os.path.join(img_dir, r["filename"]) for r in rows]
    images = [load_image(p) for p in paths]
    out: dict = {"n": len(rows), "test_set": "held-out seed, held-out fonts, 7% turned 90, 3% turned 180"}

    t = time.time()
    ours = Predictor(resolve_model(args.model, Settings.from_env().home)).predict_arrays(images)
    out["tagloop"] = {**score([p.text for p in ours], rows), "wall_s": round(time.time() - t, 2)}
    peers = [RapidOCRPeer()] + ([] if args.skip_tesseract else [TesseractPeer()])
    for peer in peers:
        t = time.time()
        preds = [peer.read(im) for im in images]
        out[peer.name] = {**score(preds, rows), "wall_s": round(time.time() - t, 2)}
    for peer in peers:
        em = out[peer.name]["exact_match"]
        out[f"ratio_vs_{peer.name}"] = round(out["tagloop"]["exact_match"] / em, 3) if em else None
    print(f"saved {save('accuracy', out)}")
    for k in ["tagloop"] + [p.name for p in peers]:
        print(f"{k:<10} exact match {out[k]['exact_match']:.4f}  NED {out[k]['norm_edit_distance']:.4f}")
        for v, s in out[k]["slices"]["condition"].items():
            print(f"    {v:<14} {s['exact_match']:.3f} (n={s['n']})")


if __name__ == "__main__":
    main()
