"""Monitoring speed: feature extraction (crops/s) and the time to build all reports for N crops.

    python -m benchmarks.report_speed [--n 10000] [--pool 400] [--no-save]

A pool of ``--pool`` rendered crops is repeated up to N (rendering is not what is
measured). Reports = drift (reference N vs current N, the drift page + Evidently's own HTML beside it) +
accuracy (champion vs challenger on N crops, worst-example thumbnails) + JSON.
Targets (issue 5): feature extraction >= 1000 crops/s; a 10k-crop report <= 30 s on 2 cores.
"""
from __future__ import annotations

import argparse
import time

from monitoring.accuracy import EvalSet
from monitoring.report import build_reports
from monitoring.table import table_from_crops
from synth.dataset import iter_crops
from synth.render import RenderConfig


def _misread(label: str, i: int, every: int) -> str:
    return label if i % every else label.replace("0", "O")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000, help="crops per table / evaluation set")
    ap.add_argument("--pool", type=int, default=400, help="distinct rendered crops, repeated up to --n")
    ap.add_argument("--no-save", action="store_true", help="print only, do not write benchmarks/results")
    args = ap.parse_args()
    pool = list(iter_crops(args.pool, seed=7))
    shifted = list(iter_crops(args.pool, seed=8, cfg=RenderConfig(text_px=(12, 24), p_inverted=0.5)))
    crops = [pool[i % len(pool)] for i in range(args.n)]
    current = [shifted[i % len(shifted)] for i in range(args.n)]
    labels = [c.label for c in current]

    t = time.perf_counter()
    ref = table_from_crops([c.image for c in crops], [c.label for c in crops])
    feat_s = time.perf_counter() - t
    cur = table_from_crops([c.image for c in current], labels, [_misread(x, i, 7) for i, x in enumerate(labels)])
    sets = [EvalSet("bench", labels, {"champion": [_misread(x, i, 5) for i, x in enumerate(labels)],
                                      "challenger": [_misread(x, i, 9) for i, x in enumerate(labels)]},
                    slices={"brand": [c.brand for c in current]}, images=[c.image for c in current])]
    t = time.perf_counter()
    reports = build_reports("bench", ref, cur, sets, {"promoted": True, "reason": "bench"})
    report_s = time.perf_counter() - t
    out = {"crops": args.n, "pool": args.pool, "feature_crops_per_s": round(args.n / feat_s, 1),
           "report_wall_s": round(report_s, 2), "html_bytes": {k: len(v) for k, v in reports.files.items()}}
    print(out)
    if not args.no_save:
        from benchmarks.common import save

        print(f"saved {save('report_speed', out)}")


if __name__ == "__main__":
    main()
