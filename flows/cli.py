"""The ``tagloop`` command line: thin wrappers over the same functions the flows call."""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

from flows.settings import resolve_model, setup_environment


def _err(msg: str) -> None:
    print(f"tagloop: {msg}", file=sys.stderr)


def cmd_predict(args: argparse.Namespace) -> int:
    from recognizer.predict import Predictor, expand_inputs

    files, notes = expand_inputs(args.images)
    for n in notes:
        _err(n)
    predictor = Predictor(resolve_model(args.model), backend=args.backend)
    preds = predictor.predict_files(files)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "prediction", "confidence"])
        for path, p in zip(files, preds):
            if p.error:
                _err(f"{path}: {p.error}")
            w.writerow([os.path.basename(path), p.text, f"{p.confidence:.4f}"])
    n_bad = sum(1 for p in preds if p.error)
    print(f"wrote {len(files)} predictions to {args.out} ({n_bad} unreadable)")
    return 0 if files or not args.images else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recognizer.evaluate_files import evaluate_labelled, format_summary

    summary = evaluate_labelled(args.images, args.labels, resolve_model(args.model), backend=args.backend)
    print(format_summary(summary))
    if args.json:
        print(json.dumps(summary))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from synth.dataset import write_dataset
    from synth.render import RenderConfig

    cfg = RenderConfig(fonts=args.fonts, p_rot90=args.p_rot90, p_rot180=args.p_rot180)
    t = time.time()
    path = write_dataset(args.out, args.n, args.seed, cfg, workers=args.workers)
    dt = time.time() - t
    print(f"rendered {args.n} crops in {dt:.1f}s ({args.n / dt:.0f} crops/s) -> {path}")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from recognizer.pretrain import PretrainConfig, pretrain
    from recognizer.train import TrainConfig

    settings = setup_environment()
    cfg = PretrainConfig(samples=args.samples, seed=args.seed, workers=args.workers, init=args.init,
                         train=TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                           warmup=args.warmup, seed=args.train_seed, device=args.device,
                                           stop_at=args.stop_at))
    res = pretrain(cfg, args.out, settings.path("cache", "pools"))
    print(json.dumps({"out": args.out, "steps": res["step"], "wall_s": round(res["wall_s"], 1),
                      "img_per_s": round(res["img_per_s"], 1),
                      "last_eval": res["history"][-1] if res["history"] else None}))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    setup_environment()                     # before Prefect is imported: PREFECT_HOME under TAGLOOP_HOME
    from flows.ingest_flow import ingest
    from ingest.pipeline import ValidationFailed
    from bucket.storage import StorageError

    try:
        summary = ingest(bucket=args.bucket, model=args.model, max_failed_share=args.max_failed_share,
                         heldout_share=args.heldout_share, min_age_s=args.min_age_s)
    except (StorageError, ValidationFailed) as e:
        _err(str(e))
        return 3
    print(f"ingest {summary.run_id}: {summary.n_new} new -> {summary.n_accepted} accepted, "
          f"{summary.n_quarantined} quarantined {summary.quarantine_reasons}, {summary.n_review} held for review; "
          f"dataset {summary.dataset_version}")
    if args.json:
        print(summary.to_json())
    return 0


def cmd_batch_predict(args: argparse.Namespace) -> int:
    setup_environment()                     # before Prefect is imported: PREFECT_HOME under TAGLOOP_HOME
    from flows.batch_predict import batch_predict
    from bucket.storage import StorageError

    try:
        s = batch_predict(bucket=args.bucket, date=args.date, model=args.model, batch_size=args.batch_size,
                          queue_threshold=args.queue_threshold, queue_max=args.queue_max,
                          dask_address=args.dask_address)
    except StorageError as e:
        _err(str(e))
        return 3
    print(f"batch-predict {s['run_id']}: {s['n_new']} new crops -> {s['n_scored']} scored, "
          f"{s['n_unreadable']} unreadable, {s['n_queued']} queued for labeling; "
          f"{s['n_already_scored']} scored before")
    for key, why in s["unreadable"].items():
        _err(f"{key}: {why}")
    if args.json:
        print(json.dumps(s, sort_keys=True))
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    setup_environment()
    from flows.monitor import monitor
    from bucket.storage import StorageError

    try:
        s = monitor(bucket=args.bucket, since=args.since, trigger_retrain=not args.no_trigger)
    except StorageError as e:
        _err(str(e))
        return 3
    alerts = ", ".join(a["name"] for a in s.get("alerts", [])) or "none"
    print(f"monitor {s['run_id']}: drift share {s.get('drift_share', s.get('drift_skipped'))}, "
          f"correction rate {s.get('correction_rate')}, alerts: {alerts}; retrain: {s['retrain']['reason']}")
    if args.json:
        print(json.dumps(s, sort_keys=True, default=str))
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    if args.force and not args.forced_by:
        _err("--force needs --forced-by NAME (recorded on the model version and the MLflow run)")
        return 2
    if args.break_lock and not args.forced_by:
        _err("--break-lock needs --forced-by NAME (recorded with the broken lock in the bucket)")
        return 2
    setup_environment()
    from flows.retrain import retrain
    from ingest.pipeline import ValidationFailed
    from bucket.storage import StorageError
    from bucket.lock import LockHeld

    try:
        summary = retrain(bucket=args.bucket, since=args.since, force=args.force, forced_by=args.forced_by,
                          steps=args.steps, batch_size=args.batch_size, lr=args.lr, eval_every=args.eval_every,
                          patience=args.patience, mix_new=args.mix_new, mix_replay=args.mix_replay,
                          mix_synthetic=args.mix_synthetic, targeted=args.targeted, min_synthetic=args.min_synthetic,
                          margin=args.margin, slice_tolerance=args.slice_tolerance,
                          regression_tolerance=args.regression_tolerance, seed=args.seed, workers=args.workers,
                          device=args.device, break_lock=args.break_lock, progress=not args.json)
    except (StorageError, ValidationFailed) as e:
        _err(str(e))
        return 3
    except LockHeld as e:
        _err(str(e))
        return 4
    print(f"retrain: champion v{summary.champion_version}, challenger "
          f"{'v' + summary.challenger_version if summary.challenger_version else 'none'}: {summary.reason}")
    if args.json:
        print(summary.to_json())
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from loop.registry import Registry, setup_mlflow
    from flows.settings import registry_configured

    settings = setup_environment()
    if not registry_configured(settings):
        _err(f"no model registry under {settings.home} (and MLFLOW_TRACKING_URI is not set): nothing to roll back")
        return 2
    setup_mlflow(settings.home)
    move = Registry().rollback(by=args.by or os.environ.get("USER", ""))
    print(f"rollback: champion v{move.before['champion']} -> v{move.champion}; "
          f"previous-champion now {move.previous_champion or 'unset'}")
    if args.json:
        print(json.dumps({"champion": move.champion, "previous_champion": move.previous_champion,
                          "before": move.before}))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import DemoConfig, run_demo

    return run_demo(setup_environment(), DemoConfig(n_shifted=args.n, steps=args.steps))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tagloop", description="Continual-learning loop for a product-code OCR.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="one full cycle on embedded defaults")
    d.add_argument("--n", type=int, default=240, help="simulated corrections from the new (dot-matrix) domain")
    d.add_argument("--steps", type=int, default=150, help="fine-tune steps (the LR schedule; early stopping may end sooner)")
    d.set_defaults(func=cmd_demo)

    ig = sub.add_parser("ingest", help="pull + validate new corrections -> dataset version")
    ig.add_argument("--bucket", default=None, help="gs://BUCKET, file:///path or a directory (default: TAGLOOP_BUCKET)")
    ig.add_argument("--json", action="store_true", help="print one JSON summary object on the last line")
    ig.add_argument("--model", default="champion",
                    help="model that screens labels for review: champion (default), a model directory, or none")
    ig.add_argument("--max-failed-share", type=float, default=0.5,
                    help="fail the run (commit nothing) when more than this share of new crops fails validation")
    ig.add_argument("--heldout-share", type=float, default=0.2, help="share of new product codes held out")
    ig.add_argument("--min-age-s", type=float, default=600.0,
                    help="seconds an image without sidecar (or the reverse) waits before it is quarantined")
    ig.set_defaults(func=cmd_ingest)

    bp = sub.add_parser("batch-predict", help="score new crops under incoming/ with the champion (Prefect flow)")
    bp.add_argument("--bucket", default=None, help="gs://BUCKET, file:///path or a directory (default: TAGLOOP_BUCKET)")
    bp.add_argument("--date", default=None, help="only incoming/YYYY-MM-DD/ (default: every day with new crops)")
    bp.add_argument("--model", default="champion", help="champion (default), a registry REF or a model directory")
    bp.add_argument("--batch-size", type=int, default=256, help="crops per scoring task")
    bp.add_argument("--queue-threshold", type=float, default=0.9,
                    help="crops read with less confidence are queued for labeling")
    bp.add_argument("--queue-max", type=int, default=200, help="at most this many crops queued per day")
    bp.add_argument("--dask-address", default=None,
                    help="score chunks on this Dask scheduler (tcp://host:8786); default: in this process")
    bp.add_argument("--json", action="store_true", help="print one JSON summary object on the last line")
    bp.set_defaults(func=cmd_batch_predict)

    mo = sub.add_parser("monitor", help="drift + correction-rate report on new corrections (Prefect flow)")
    mo.add_argument("--bucket", default=None, help="gs://BUCKET, file:///path or a directory (default: TAGLOOP_BUCKET)")
    mo.add_argument("--since", default=None,
                    help="compare corrections dated on/after YYYY-MM-DD (default: those not in a dataset version yet)")
    mo.add_argument("--no-trigger", action="store_true", help="never start the retrain deployment")
    mo.add_argument("--json", action="store_true", help="print one JSON summary object on the last line")
    mo.set_defaults(func=cmd_monitor)


    rt = sub.add_parser("retrain", help="one full cycle now: ingest, mix, fine-tune, gate, registry, reports")
    rt.add_argument("--bucket", default=None, help="gs://BUCKET, file:///path or a directory (default: TAGLOOP_BUCKET)")
    rt.add_argument("--json", action="store_true", help="print one JSON summary object on the last line")
    rt.add_argument("--since", default=None, help="only corrections created on/after this date (YYYY-MM-DD) count as new")
    rt.add_argument("--force", action="store_true", help="promote the challenger whatever the gate says (audited)")
    rt.add_argument("--forced-by", default=None,
                    help="name of the person forcing the promotion or breaking the lock (required with both)")
    rt.add_argument("--break-lock", action="store_true",
                    help="take over another run's live bucket lock (a killed run; recorded under "
                         "state/retrain/broken-locks/); the broken run stops at its next stage")
    rt.add_argument("--steps", type=int, default=250, help="fine-tune LR schedule length in optimizer steps")
    rt.add_argument("--batch-size", type=int, default=64, help="crops per step")
    rt.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the fine-tune (adapters)")
    rt.add_argument("--eval-every", type=int, default=100, help="steps between validation checks (an 'epoch')")
    rt.add_argument("--patience", type=int, default=3, help="validation checks without improvement before stopping")
    rt.add_argument("--mix-new", type=float, default=0.5, help="share of new corrections in the training mix")
    rt.add_argument("--mix-replay", type=float, default=0.25, help="share of replayed earlier real crops")
    rt.add_argument("--mix-synthetic", type=float, default=0.25, help="share of freshly rendered synthetic crops")
    rt.add_argument("--targeted", type=float, default=0.7, help="share of synthetic crops aimed at the champion's errors")
    rt.add_argument("--min-synthetic", type=int, default=2000,
                    help="at least this many unique synthetic crops (real rows repeat to keep the shares)")
    rt.add_argument("--margin", type=float, default=0.005, help="exact-match margin the challenger must win by")
    rt.add_argument("--slice-tolerance", type=float, default=0.03, help="largest exact-match drop allowed on a slice")
    rt.add_argument("--regression-tolerance", type=float, default=0.005,
                    help="largest exact-match drop allowed on the synthetic regression suite")
    rt.add_argument("--seed", type=int, default=0, help="seed for the mix, rendering and training")
    rt.add_argument("--workers", type=int, default=2, help="rendering processes")
    rt.add_argument("--device", default="auto", help="auto (CUDA with bf16 when present), cpu or cuda")
    rt.set_defaults(func=cmd_retrain)

    rb = sub.add_parser("rollback", help="champion <- previous-champion")
    rb.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    rb.add_argument("--by", default=None, help="who rolls back (recorded on the demoted version; default $USER)")
    rb.set_defaults(func=cmd_rollback)

    pr = sub.add_parser("predict", help="read crops and write filename,prediction,confidence")
    pr.add_argument("images", nargs="+", help="image files or directories of images")
    pr.add_argument("--out", required=True, help="output CSV path")
    pr.add_argument("--model", default="champion", help="champion (default), models:/product-code-recognizer@ALIAS or /VERSION, or a model directory")
    pr.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"],
                    help="inference engine (auto: ONNX Runtime when available)")
    pr.set_defaults(func=cmd_predict)

    ev = sub.add_parser("evaluate", help="exact match overall and per slice on labelled crops")
    ev.add_argument("--images", required=True, help="directory holding the crops")
    ev.add_argument("--labels", required=True, help="CSV with filename,label and optional slice columns")
    ev.add_argument("--model", default="champion", help="champion (default), models:/product-code-recognizer@ALIAS or /VERSION, or a model directory")
    ev.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"], help="inference engine")
    ev.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    ev.set_defaults(func=cmd_evaluate)

    sy = sub.add_parser("synth", help="render synthetic crops to DIR/images + DIR/labels.csv")
    sy.add_argument("--out", required=True, help="output directory")
    sy.add_argument("--n", type=int, default=1000, help="number of crops")
    sy.add_argument("--seed", type=int, default=0, help="random seed (same seed, same crops)")
    sy.add_argument("--workers", type=int, default=2, help="rendering processes")
    sy.add_argument("--fonts", default="train", choices=["train", "heldout", "all"], help="font pool")
    sy.add_argument("--p-rot90", type=float, default=0.07, help="share of crops turned 90/270 degrees")
    sy.add_argument("--p-rot180", type=float, default=0.03, help="share of crops turned upside down")
    sy.set_defaults(func=cmd_synth)

    pt = sub.add_parser("pretrain", help="train a base model from synthetic data only")
    pt.add_argument("--out", required=True, help="output model directory (resumes if it holds a run)")
    pt.add_argument("--samples", type=int, default=100_000, help="synthetic training crops")
    pt.add_argument("--steps", type=int, default=12_000, help="optimizer steps")
    pt.add_argument("--batch-size", type=int, default=64, help="crops per step")
    pt.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate")
    pt.add_argument("--seed", type=int, default=1, help="data seed (shard k rendered with seed+k)")
    pt.add_argument("--train-seed", type=int, default=0, help="seed for init, shuffling and augmentation")
    pt.add_argument("--workers", type=int, default=2, help="rendering processes")
    pt.add_argument("--warmup", type=int, default=300, help="linear warm-up steps")
    pt.add_argument("--stop-at", type=int, default=None, help="stop at this step, keeping the --steps schedule")
    pt.add_argument("--init", default=None, help="warm start from this model directory (second phase)")
    pt.add_argument("--device", default="auto", help="auto, cpu or cuda")
    pt.set_defaults(func=cmd_pretrain)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:
        _err(str(e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
