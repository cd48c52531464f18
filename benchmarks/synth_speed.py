"""Synthetic rendering throughput (crops/s) writing images + labels.csv with N processes.

    python -m benchmarks.synth_speed [--n 4000] [--workers 2]
"""
from __future__ import annotations

import argparse
import tempfile
import time

from benchmarks.common import save
from synth.dataset import write_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=4000, help="crops rendered")
    ap.add_argument("--workers", type=int, default=2, help="processes")
    args = ap.parse_args()
    out = {}
    for workers in sorted({1, args.workers}):
        with tempfile.TemporaryDirectory() as d:
            t = time.time()
            write_dataset(d, args.n, seed=1, workers=workers)
            dt = time.time() - t
        out[f"workers_{workers}"] = {"crops": args.n, "wall_s": round(dt, 2), "crops_per_s": round(args.n / dt, 1)}
        print(workers, out[f"workers_{workers}"])
    print(f"saved {save('synth_speed', out)}")


if __name__ == "__main__":
    main()
