"""Training throughput (images/s) of the recognizer: CPU, and CUDA with bf16 when present.

    python -m benchmarks.train_speed [--steps 30] [--batch-size 64]
"""
from __future__ import annotations

import argparse
import os
import tempfile

import torch

from benchmarks.common import save
from recognizer.model import CRNN, ModelConfig
from synth.pools import render_pool
from recognizer.tokenizer import CTCTokenizer
from recognizer.train import TrainConfig, fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=30, help="timed optimizer steps")
    ap.add_argument("--batch-size", type=int, default=64, help="crops per step (CPU)")
    ap.add_argument("--gpu-batch-size", type=int, default=1024, help="crops per step (CUDA)")
    args = ap.parse_args()
    pool = render_pool(4000, seed=3, workers=min(8, os.cpu_count() or 2))
    tok = CTCTokenizer()
    out = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        bs = args.batch_size if dev == "cpu" else args.gpu_batch_size
        model = CRNN(ModelConfig(num_classes=tok.num_classes))
        with tempfile.TemporaryDirectory() as d:
            workers = max(2, (os.cpu_count() or 2) - 2) if dev == "cuda" else 1
            res = fit(model, tok, pool, TrainConfig(steps=args.steps, batch_size=bs, device=dev, ckpt_every=10**9,
                                                    workers=workers), d, log=lambda s: None)
        out[dev] = {"batch_size": bs, "steps": args.steps, "img_per_s": round(res["img_per_s"], 1),
                    "threads": torch.get_num_threads()}
        print(dev, out[dev])
    print(f"saved {save('train_speed', out)}")


if __name__ == "__main__":
    main()
