"""One nightly cycle per new domain: does the recipe learn kinds of print nobody tuned it for?

For each domain of ``benchmarks.domains`` (dot-matrix: the tuning domain; dark low-resolution labels
and a serif family with a new character: never tuned on) a fresh home + bucket receives ``--n``
corrections (the app's sidecars: the base model's reading as prediction), ``loop.cycle.run_cycle``
runs once with the recipe, and the base model and the challenger read
- ``--test-n`` held-out crops of the domain (another seed),
- the regression suite (the cycle's own metrics) and
- the real photos of ``../shared/real-dev`` (forgetting on what users photograph; when present).
The challenger's readers are also tallied on the domain's crops (``benchmarks.readers``: what a perfect
arbiter between them could gain over the champion, against the target).

    python -m benchmarks.domain_curve [--domains dot_matrix,dark_lowres,serif_plus] [--n 1000] [--budget-s 0]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import replace

from benchmarks.common import save
from benchmarks.domains import DOMAINS, EXTRA_CHARS, TUNED_ON
from benchmarks.learning_curve import exact
from benchmarks.real import DEFAULT_DIR
from benchmarks.readers import ceiling
from benchmarks.real_loop import fill, photos
from bucket.storage import open_storage
from flows.settings import setup_environment
from ingest.pipeline import IngestConfig
from ingest.review import DECISIONS, QUEUE
from loop.config import CycleConfig, cycle_config
from loop.cycle import run_cycle
from loop.gate import EvalData, score_sets
from loop.registry import Registry
from loop.stages import read_with
from recognizer.checkpoint import base_model_dir, read_config
from recognizer.preprocess import decode_image


def compare(base, chall) -> dict:
    rb = [p == lab for p, lab in zip(base.predictions, base.labels)]
    rc = [p == lab for p, lab in zip(chall.predictions, chall.labels)]
    return {"n": len(rb), "base": round(exact(base), 4), "challenger": round(exact(chall), 4),
            "gain_points": round(100 * (exact(chall) - exact(base)), 2),
            "gained": sum(c and not b for b, c in zip(rb, rc)), "lost": sum(b and not c for b, c in zip(rb, rc))}


def one_domain(name: str, args, root: str, real: EvalData | None) -> dict:
    home, bucket = os.path.join(root, name, "home"), os.path.join(root, name, "bucket")
    shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    os.makedirs(bucket)
    os.environ["TAGLOOP_HOME"] = home
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    imgs, labels = DOMAINS[name](args.n, 9_101)
    fill(bucket, [(f"{name}{i:05d}.jpg", b, lab) for i, (b, lab) in enumerate(zip(imgs, labels))])
    recipe = {k: getattr(args, k) for k in ("steps", "eval_every", "patience", "lr", "budget_s")
              if getattr(args, k) is not None}
    cfg = cycle_config(CycleConfig(embed_evidently=False), **recipe)
    cfg = replace(cfg, ingest=IngestConfig(min_age_s=0, extra_chars=EXTRA_CHARS.get(name, "")))
    t = time.time()
    log = lambda m: print(f"  [{name}] {m}", flush=True)  # noqa: E731
    s = run_cycle(open_storage(bucket), home, base_model_dir(), cfg, log=log)
    first = None
    if args.confirm_review and s.ingest["n_review"] and s.challenger_version is None:
        # what a labeling sprint does: a person confirms every held correction, the next night trains on them
        first = {"n_review": s.ingest["n_review"], "review_reasons": s.ingest.get("review_reasons"), "reason": s.reason}
        storage = open_storage(bucket)
        queue = [json.loads(line) for line in storage.read(QUEUE).decode().splitlines() if line.strip()]
        storage.write(DECISIONS, "".join(json.dumps({"key": q["key"], "decision": "confirm"}) + "\n"
                                         for q in queue).encode())
        s = run_cycle(storage, home, base_model_dir(), cfg, log=log)
    wall = time.time() - t
    test_imgs, test_labels = DOMAINS[name](args.test_n, 9_202)
    sets = [EvalData(f"{name}_test", [f"t{i}" for i in range(len(test_imgs))], test_labels, test_imgs)]
    sets += [real] if real is not None else []
    out = {"domain": name, "tuned_on": name in TUNED_ON, "corrections": args.n, "n_accepted": s.ingest["n_accepted"],
           "n_review": s.ingest["n_review"], "quarantine": s.ingest["quarantine_reasons"], "verdict": s.verdict,
           "reason": s.reason[:600], "cycle_wall_s": round(wall, 1), "first_night_all_held_for_review": first,
           "n_released_from_review": s.ingest.get("n_released"), "stage_s": s.timings_s, "finetune": s.finetune,
           "recipe": {"steps": cfg.finetune.train.steps, "eval_every": cfg.finetune.train.eval_every,
                      "patience": cfg.finetune.patience, "lr": cfg.finetune.train.lr,
                      "budget_s": cfg.finetune.train.seconds}}
    if not s.challenger_version:
        return out
    chall_dir = Registry().download(s.challenger_version, os.path.join(home, "cache", "models"))
    base, chall = score_sets(read_with(base_model_dir()), sets), score_sets(read_with(chall_dir), sets)
    out["domain_test"] = compare(base[sets[0].name], chall[sets[0].name])
    # who reads what: how much a perfect arbiter between the challenger's readers could gain (benchmarks.readers)
    out["readers"] = ceiling(chall_dir, [decode_image(b) for b in test_imgs], test_labels, out["domain_test"]["base"])
    if real is not None:
        out["real_dev"] = compare(base[real.name], chall[real.name])
    reg = {r: s.metrics[r]["sets"]["regression"]["exact_match"] for r in ("champion", "challenger")}
    out["regression_suite"] = {"n": s.metrics["champion"]["sets"]["regression"]["n"],
                               **{k: round(v, 4) for k, v in reg.items()},
                               "change_points": round(100 * (reg["challenger"] - reg["champion"]), 2)}
    out["validation_history"] = [{k: h.get(k) for k in ("step", "train_s", "exact_match")}
                                 for h in read_config(chall_dir)["meta"].get("history", [])]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domains", default=",".join(DOMAINS), help="comma-separated, from benchmarks.domains")
    ap.add_argument("--n", type=int, default=1000, help="corrections per domain")
    ap.add_argument("--test-n", type=int, default=300, help="held-out crops of the domain scored")
    ap.add_argument("--steps", type=int, default=None, help="fine-tune step cap (default: the nightly recipe)")
    ap.add_argument("--eval-every", type=int, default=None, help="steps between validation checks")
    ap.add_argument("--patience", type=int, default=None, help="validation checks without a gain before stopping")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="fine-tune time budget in seconds (default: the nightly recipe's; 0: none, the step cap and "
                         "patience alone end it, as on an idle machine)")
    ap.add_argument("--confirm-review", action="store_true",
                    help="when a night holds every correction for review, confirm them all (a sprint) and run again")
    ap.add_argument("--real", default=DEFAULT_DIR, help="real photos read for forgetting ('' to skip)")
    ap.add_argument("--name", default="domain_curve", help="results file name (benchmarks/results/NAME.json)")
    args = ap.parse_args()
    settings = setup_environment()
    root = settings.path("bench", args.name)
    real = None
    if args.real and os.path.isdir(args.real):
        items = [x for shots in photos(args.real).values() for x in shots]
        real = EvalData("real_dev", [n for n, _, _ in items], [lab for _, _, lab in items], [b for _, b, _ in items])
    results = []
    for name in args.domains.split(","):
        results.append(one_domain(name, args, root, real))
        print({k: v for k, v in results[-1].items() if k not in ("validation_history", "stage_s")}, flush=True)
        save(args.name, {"what": "one nightly cycle per domain from the shipped model", "config": vars(args),
                         "domains": results})


if __name__ == "__main__":
    main()
