"""Real corrections in the loop: one nightly cycle whose corrections include real phone photos.

The corrections stream of each fold is the real photos of ONE photographer of ``../shared/real-dev``
(used here as corrections, as its README allows for a benchmark of the loop; never for the shipped
model) plus ``--domain-n`` dot-matrix renders (the project's simulated new print). The cycle runs
with the nightly recipe; then the base model and the challenger read:
- the OTHER photographer's photos (real lift, on photos the cycle never saw: what the hidden set asks),
- held-out dot-matrix renders (lift on the rendered domain),
- the regression suite (forgetting on renders; from the cycle's own metrics).
Two folds (T2042 -> T2213 and T2213 -> T2042); pooled over both, every real photo is read once
as a test crop. Also reports the photos of the training photographer that ingest held out.

    python -m benchmarks.real_loop [--dir ../shared/real-dev] [--domain-n 250] [--test-n 300]
"""
from __future__ import annotations

import argparse
import os
import shutil
import time

from benchmarks.common import save
from benchmarks.learning_curve import exact, render_jpegs
from benchmarks.real import DEFAULT_DIR
from bucket.storage import open_storage
from flows.settings import setup_environment
from ingest.corrections import write_correction
from ingest.pipeline import IngestConfig
from loop.config import CycleConfig
from loop.cycle import run_cycle
from loop.gate import EvalData, score_sets
from loop.registry import Registry
from loop.stages import read_with
from recognizer.checkpoint import base_model_dir
from recognizer.evaluate_files import read_labels


def photos(root: str) -> dict[str, list[tuple[str, bytes, str]]]:
    """Photographer (file name prefix) -> [(file name, bytes, label)]."""
    out: dict[str, list] = {}
    for row in read_labels(os.path.join(root, "labels.csv"))[0]:
        name = row["filename"]
        with open(os.path.join(root, "images", name), "rb") as f:
            out.setdefault(name.split("_")[0], []).append((name, f.read(), row["label"]))
    return out


def fill(bucket: str, items: list[tuple[str, bytes, str]]) -> None:
    """Corrections as the app writes them: the base model's reading as the prediction."""
    storage = open_storage(bucket)
    data = EvalData("fill", [n for n, _, _ in items], [lab for _, _, lab in items], [b for _, b, _ in items])
    preds = read_with(base_model_dir())(data)
    for i, ((name, img, lab), (pred, conf)) in enumerate(zip(items, preds)):
        ext = os.path.splitext(name)[1].lstrip(".").lower().replace("jpeg", "jpg")
        write_correction(storage, img, ext, predicted_label=pred, confidence=round(conf, 4), corrected_label=lab,
                         model_version="1", crop_id=f"c{i:05d}", created_at="2026-11-20T03:12:09Z")


def fold(train: str, test: str, shots: dict, domain: tuple, domain_test: EvalData, args, root: str) -> dict:
    home, bucket = os.path.join(root, train, "home"), os.path.join(root, train, "bucket")
    shutil.rmtree(os.path.join(root, train), ignore_errors=True)
    os.makedirs(bucket)
    os.environ["TAGLOOP_HOME"] = home
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    rendered = [(f"dm{i:05d}.jpg", b, lab) for i, (b, lab) in enumerate(zip(*domain))][: args.domain_n]
    fill(bucket, shots[train] + rendered)
    cfg = CycleConfig(ingest=IngestConfig(min_age_s=0), embed_evidently=False)
    t = time.time()
    s = run_cycle(open_storage(bucket), home, base_model_dir(), cfg, log=lambda m: print(f"  [{train}] {m}", flush=True))
    wall = time.time() - t
    real_test = EvalData(f"real_{test}", [n for n, _, _ in shots[test]], [lab for _, _, lab in shots[test]],
                         [b for _, b, _ in shots[test]])
    sets = [real_test, domain_test]
    base = score_sets(read_with(base_model_dir()), sets)
    out = {"train_photographer": train, "test_photographer": test, "n_real_corrections": len(shots[train]),
           "n_domain_corrections": len(rendered), "n_accepted": s.ingest["n_accepted"],
           "n_review": s.ingest["n_review"], "quarantine": s.ingest["quarantine_reasons"], "verdict": s.verdict,
           "reason": s.reason, "cycle_wall_s": round(wall, 1), "mix": s.mix}
    if not s.challenger_version:
        return out
    chall_dir = Registry().download(s.challenger_version, os.path.join(home, "cache", "models"))
    chall = score_sets(read_with(chall_dir), sets)
    for x in sets:
        b, c = base[x.name], chall[x.name]
        right_b = [p == lab for p, lab in zip(b.predictions, b.labels)]
        right_c = [p == lab for p, lab in zip(c.predictions, c.labels)]
        out[x.name if x is domain_test else "real_other_photographer"] = {
            "n": len(x.labels), "base": round(exact(b), 4), "challenger": round(exact(c), 4),
            "gain_points": round(100 * (exact(c) - exact(b)), 2),
            "gained": sum(c and not b for b, c in zip(right_b, right_c)),
            "lost": sum(b and not c for b, c in zip(right_b, right_c))}
    reg = {r: s.metrics[r]["sets"]["regression"]["exact_match"] for r in ("champion", "challenger")}
    out["regression_suite"] = {"n": s.metrics["champion"]["sets"]["regression"]["n"],
                               **{k: round(v, 4) for k, v in reg.items()},
                               "change_points": round(100 * (reg["challenger"] - reg["champion"]), 2)}
    out["gate_sets"] = {n: {r: s.metrics[r]["sets"][n] for r in ("champion", "challenger")}
                        for n in s.metrics["champion"]["sets"] if n != "regression"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=DEFAULT_DIR, help="real photos: images/ + labels.csv (filename,label)")
    ap.add_argument("--domain-n", type=int, default=250, help="dot-matrix corrections beside the real ones")
    ap.add_argument("--test-n", type=int, default=300, help="held-out dot-matrix crops scored")
    ap.add_argument("--workers", type=int, default=2, help="rendering processes")
    ap.add_argument("--name", default="real_loop", help="results file name (benchmarks/results/NAME.json)")
    args = ap.parse_args()
    settings = setup_environment()
    root = settings.path("bench", args.name)
    shots = photos(args.dir)
    if len(shots) != 2:
        raise SystemExit(f"expected two photographers (file name prefixes), found {sorted(shots)}")
    domain = render_jpegs(args.domain_n, seed=9_101, workers=args.workers)
    imgs, labels = render_jpegs(args.test_n, seed=9_202, workers=args.workers)
    domain_test = EvalData("dot_matrix_heldout", [f"t{i}" for i in range(len(imgs))], labels, imgs)
    a, b = sorted(shots)
    folds = []
    for train, test in ((a, b), (b, a)):
        folds.append(fold(train, test, shots, domain, domain_test, args, root))
        print(folds[-1], flush=True)
        pooled = [f["real_other_photographer"] for f in folds if "real_other_photographer" in f]
        summary = {"real_n": sum(p["n"] for p in pooled), "real_gained": sum(p["gained"] for p in pooled),
                   "real_lost": sum(p["lost"] for p in pooled),
                   "real_base": round(sum(p["base"] * p["n"] for p in pooled) / max(1, sum(p["n"] for p in pooled)), 4),
                   "real_challenger": round(sum(p["challenger"] * p["n"] for p in pooled)
                                            / max(1, sum(p["n"] for p in pooled)), 4)}
        save(args.name, {"what": "one nightly cycle per fold; corrections = one photographer's real photos + "
                                 "dot-matrix renders; scored on the other photographer's photos",
                         "config": vars(args), "pooled": summary, "folds": folds})


if __name__ == "__main__":
    main()
