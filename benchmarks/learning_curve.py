"""Learning curve: one cycle from the shipped model with 0 / 250 / 1000 / 4000 corrections from a new domain.

The new domain is a new source of crops: box-end labels in a warehouse, ink-jet dot-matrix
print (never rendered for the base model), shot by a fixed camera (little tilt, blur or low
resolution; palette, texture and neighbouring text as usual): ``DOMAIN`` below. For each N
a fresh home + bucket receives N corrections (sidecars carry the base model's reading),
``loop.cycle.run_cycle`` runs once, and the base model and the challenger are scored on the
same held-out crops of the domain (other seed) and on the frozen regression suite (forgetting).

    python -m benchmarks.learning_curve [--n 0,250,1000,4000] [--test-n 500] [--steps 250]

Defaults: the nightly retrain flow's recipe (steps, learning rate, mix shares).
"""
from __future__ import annotations

import argparse
import os
import shutil
import time

from benchmarks.common import save
from flows.settings import setup_environment
from recognizer.checkpoint import base_model_dir
from flows.simulate import DOT_MATRIX_DOMAIN
from ingest.corrections import write_correction
from ingest.pipeline import IngestConfig
from bucket.storage import open_storage
from loop.config import CycleConfig
from loop.cycle import run_cycle
from loop.gate import EvalData, GateConfig, score_sets
from loop.mix import MixConfig
from loop.registry import Registry
from loop.regression import RegressionConfig
from loop.stages import read_with
from recognizer.checkpoint import read_config
from recognizer.finetune import FinetuneConfig
from recognizer.metrics import TextMatch
from recognizer.train import TrainConfig

DOMAIN = DOT_MATRIX_DOMAIN


def render_jpegs(n: int, seed: int, workers: int) -> tuple[list[bytes], list[str]]:
    """``n`` dot-matrix crops as JPEG q95 bytes (what phones upload) + labels."""
    import tempfile

    from synth.dataset import read_rows, write_dataset
    from synth.render import RenderConfig

    with tempfile.TemporaryDirectory() as d:
        labels_csv = write_dataset(d, n, seed, RenderConfig(**DOMAIN), workers=workers)
        rows = read_rows(labels_csv)
        data = [open(os.path.join(d, "images", r["filename"]), "rb").read() for r in rows]
    return data, [r["label"] for r in rows]


def fill_bucket(root: str, images: list[bytes], labels: list[str]) -> None:
    """Write corrections as the serving app would (prediction = base model's reading)."""
    storage = open_storage(root)
    preds = read_with(base_model_dir())(EvalData("fill", [str(i) for i in range(len(images))], labels, images)) \
        if images else []
    for i, (img, lab, (pred, conf)) in enumerate(zip(images, labels, preds)):
        write_correction(storage, img, "jpg", predicted_label=pred, confidence=round(conf, 4), corrected_label=lab,
                         model_version="1", crop_id=f"c{i:05d}", created_at="2026-11-20T03:12:09Z")


def exact(scores) -> float:
    tm = TextMatch()
    for p, lab in zip(scores.predictions, scores.labels):
        tm.update(p, lab)
    return tm.summary()["exact_match"]


def one_point(n: int, pool: tuple[list[bytes], list[str]], test: EvalData, args, root: str) -> dict:
    home, bucket = os.path.join(root, f"n{n}", "home"), os.path.join(root, f"n{n}", "bucket")
    shutil.rmtree(os.path.join(root, f"n{n}"), ignore_errors=True)
    os.makedirs(bucket)
    os.environ["TAGLOOP_HOME"] = home
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    fill_bucket(bucket, pool[0][:n], pool[1][:n])
    new, replay, synthetic = (float(x) for x in args.mix.split(","))
    cfg = CycleConfig(mix=MixConfig(new=new, replay=replay, synthetic=synthetic, min_synthetic=args.min_synthetic,
                                    workers=args.workers, seed=args.seed, anchor=args.anchor),
                      finetune=FinetuneConfig(distill=args.distill, trainable=args.trainable, adapter=args.adapter,
                                              patience=args.patience,
                                              train=TrainConfig(
                          steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=30,
                          eval_every=args.eval_every, ckpt_every=args.eval_every, seed=args.seed, workers=0)),
                      regression=RegressionConfig(per_family=args.suite_per_family),
                      gate=GateConfig(regression_tolerance=args.regression_tolerance),
                      ingest=IngestConfig(min_age_s=0), embed_evidently=False)
    t = time.time()
    s = run_cycle(open_storage(bucket), home, base_model_dir(), cfg, log=lambda m: print(f"  [{n}] {m}", flush=True))
    wall = time.time() - t
    base = score_sets(read_with(base_model_dir()), [test])[test.name]
    out = {"corrections": n, "n_accepted": s.ingest["n_accepted"], "n_review": s.ingest["n_review"],
           "mix": s.mix, "promoted": s.promoted, "verdict": s.verdict, "reason": s.reason, "cycle_wall_s": round(wall, 1),
           "stage_s": s.timings_s, "domain_em_base": round(exact(base), 4)}
    if s.challenger_version:
        chall_dir = Registry().download(s.challenger_version, os.path.join(home, "cache", "models"))
        chall = score_sets(read_with(chall_dir), [test])[test.name]
        meta = read_config(chall_dir)["meta"]
        out.update(blend_alpha=meta.get("blend_alpha"), blends=meta.get("blends"))
        reg = {r: s.metrics[r]["sets"]["regression"]["exact_match"] for r in ("champion", "challenger")}
        out.update(domain_em_challenger=round(exact(chall), 4),
                   domain_em_gain_points=round(100 * (exact(chall) - exact(base)), 2),
                   regression_em={k: round(v, 4) for k, v in reg.items()},
                   regression_change_points=round(100 * (reg["challenger"] - reg["champion"]), 2),
                   regression_n=s.metrics["champion"]["sets"]["regression"]["n"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="0,250,1000,4000", help="numbers of corrections, comma-separated")
    ap.add_argument("--test-n", type=int, default=500, help="held-out dot-matrix crops scored per point")
    ap.add_argument("--mix", default="0.5,0.25,0.25", help="shares new,replay,synthetic")
    ap.add_argument("--min-synthetic", type=int, default=3000, help="unique synthetic crops at least")
    ap.add_argument("--steps", type=int, default=FinetuneConfig().train.steps,
                    help="fine-tune step cap and LR schedule (a validation plateau may end sooner)")
    ap.add_argument("--batch-size", type=int, default=64, help="crops per step")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    ap.add_argument("--eval-every", type=int, default=FinetuneConfig().train.eval_every,
                    help="steps between validation checks")
    ap.add_argument("--patience", type=int, default=FinetuneConfig().patience,
                    help="validation checks without a gain before stopping")
    ap.add_argument("--suite-per-family", type=int, default=60, help="regression suite crops per brand family")
    ap.add_argument("--distill", type=float, default=FinetuneConfig().distill,
                    help="weight of distillation from the champion on the crops it reads right (0: off)")
    ap.add_argument("--trainable", default=FinetuneConfig().trainable, choices=("all", "cnn", "adapter"),
                    help="what the fine-tune trains: everything, the convolutional front end, or added adapters")
    ap.add_argument("--adapter", type=int, default=FinetuneConfig().adapter,
                    help="bottleneck channels of the adapters a fine-tune adds (--trainable adapter)")
    ap.add_argument("--anchor", type=int, default=MixConfig().anchor,
                    help="anchor renders for choosing the champion/fine-tune blend (0: no blending)")
    ap.add_argument("--regression-tolerance", type=float, default=GateConfig().regression_tolerance,
                    help="exact-match drop allowed on the regression suite (gate) and on the anchor (kept blend)")
    ap.add_argument("--workers", type=int, default=2, help="rendering processes")
    ap.add_argument("--seed", type=int, default=0, help="mix and training seed")
    ap.add_argument("--name", default="learning_curve", help="results file name (benchmarks/results/NAME.json)")
    args = ap.parse_args()
    settings = setup_environment()
    root = settings.path("bench", args.name)
    ns = [int(x) for x in args.n.split(",")]
    pool = render_jpegs(max(ns), seed=9_101, workers=args.workers)
    imgs, labels = render_jpegs(args.test_n, seed=9_202, workers=args.workers)
    test = EvalData("domain_test", [f"t{i}" for i in range(len(imgs))], labels, imgs)
    points = []
    for n in ns:
        points.append(one_point(n, pool, test, args, root))
        print(points[-1], flush=True)
        save(args.name, {"domain": f"warehouse dot-matrix print, RenderConfig overrides {DOMAIN}",
                                "config": vars(args), "test_n": args.test_n, "points": points})


if __name__ == "__main__":
    main()
