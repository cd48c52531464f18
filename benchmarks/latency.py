"""CPU latency per crop (1 thread, batch 1, p50/p95) and batched throughput, vs RapidOCR.

    python -m benchmarks.latency [--n 300] [--model DIR]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from benchmarks.common import save, test_set
from benchmarks.peers import RapidOCRPeer, TesseractPeer
from flows.settings import Settings
from loop.modelref import resolve_model
from recognizer.predict import Predictor
from crops.image import load_image


def per_crop(fn, images: list[np.ndarray], warmup: int = 20) -> dict:
    for im in images[:warmup]:
        fn(im)
    ts = []
    for im in images:
        t = time.perf_counter()
        fn(im)
        ts.append(time.perf_counter() - t)
    ms = np.array(ts) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3),
            "mean_ms": round(float(ms.mean()), 3), "n": len(ms)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=300, help="crops timed")
    ap.add_argument("--model", default="champion", help="model directory")
    args = ap.parse_args()
    torch.set_num_threads(1)
    img_dir, rows = test_set(1000)
    images = [load_image(os.path.join(img_dir, r["filename"])) for r in rows[:args.n]]
    out: dict = {"threads": 1, "crop_px_median": [int(np.median([i.shape[0] for i in images])),
                                                  int(np.median([i.shape[1] for i in images]))]}
    model = resolve_model(args.model, Settings.from_env().home)
    for backend in ("onnx", "torch"):
        pred = Predictor(model, backend=backend)
        out[f"tagloop_{backend}"] = per_crop(lambda im: pred.predict_arrays([im]), images)
        t = time.perf_counter()
        pred.predict_arrays(images)
        out[f"tagloop_{backend}"]["batched_crops_per_s"] = round(len(images) / (time.perf_counter() - t), 1)
    rapid = RapidOCRPeer(threads=1)
    out["rapidocr"] = per_crop(rapid.read, images)
    out["rapidocr_label"] = rapid.label
    tess = TesseractPeer()
    out["tesseract"] = per_crop(tess.read, images[:50], warmup=3)
    base = out["tagloop_onnx"]["p50_ms"]
    out["speedup_p50_vs_rapidocr"] = round(out["rapidocr"]["p50_ms"] / base, 2)
    out["speedup_p50_vs_tesseract"] = round(out["tesseract"]["p50_ms"] / base, 2)
    print(f"saved {save('latency', out)}")
    for k, v in out.items():
        print(k, v)


if __name__ == "__main__":
    main()
