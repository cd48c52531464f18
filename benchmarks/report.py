"""Markdown tables from benchmarks/results/*.json (pasted into the README).

    python -m benchmarks.report
"""
from __future__ import annotations

import json
import os

from benchmarks.common import RESULTS


def _load(name: str) -> dict | None:
    path = os.path.join(RESULTS, f"{name}.json")
    return json.load(open(path)) if os.path.exists(path) else None


def accuracy_md(r: dict) -> str:
    engines = [e for e in ("tagloop", "rapidocr", "tesseract") if e in r]
    lines = [f"Realistic held-out renders, n={r['n']} ({r['test_set']}); {r['machine']}; {r['date']}.", "",
             "| slice | n | " + " | ".join(engines) + " |", "|---|---|" + "---|" * len(engines)]
    lines.append("| **all** | {} | ".format(r["n"]) + " | ".join(f"**{r[e]['exact_match']:.3f}**" for e in engines) + " |")
    for col in ("condition", "rotation", "tilt", "length"):
        for v, s in r["tagloop"]["slices"][col].items():
            cells = [f"{r[e]['slices'][col][v]['exact_match']:.3f}" for e in engines]
            lines.append(f"| {col}={v} | {s['n']} | " + " | ".join(cells) + " |")
    ratios = ", ".join(f"{k[9:]} x{v}" for k, v in r.items() if k.startswith("ratio_vs_") and v)
    lines += ["", f"Exact-match ratio, tagloop vs peer: {ratios}."]
    return "\n".join(lines)


def latency_md(r: dict) -> str:
    rows = [("tagloop (ONNX Runtime)", r["tagloop_onnx"]), ("tagloop (PyTorch eager)", r["tagloop_torch"]),
            (r.get("rapidocr_label", "RapidOCR PP-OCRv4 rec + cls"), r["rapidocr"]), ("Tesseract 5 --psm 7", r["tesseract"])]
    lines = [f"1 thread, batch 1, per crop, end to end (decode excluded, preprocessing + orientation included); "
             f"{r['machine']}; {r['date']}.", "", "| engine | p50 ms | p95 ms | batched crops/s |", "|---|---|---|---|"]
    for name, v in rows:
        lines.append(f"| {name} | {v['p50_ms']} | {v['p95_ms']} | {v.get('batched_crops_per_s', '')} |")
    lines += ["", f"p50 speed-up: x{r['speedup_p50_vs_rapidocr']} vs RapidOCR, x{r['speedup_p50_vs_tesseract']} vs Tesseract."]
    return "\n".join(lines)


def main() -> None:
    for name, fn in (("accuracy", accuracy_md), ("latency", latency_md)):
        r = _load(name)
        if r:
            print(f"### {name}\n\n{fn(r)}\n")
    for name in ("synth_speed", "train_speed"):
        r = _load(name)
        if r:
            print(f"### {name}\n\n```\n{json.dumps({k: v for k, v in r.items() if k != 'benchmark'}, indent=1)}\n```\n")


if __name__ == "__main__":
    main()
