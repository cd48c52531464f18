"""The ``tagloop`` command line: thin wrappers over the same functions the flows call."""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import fields, replace
from typing import Any, Callable

from flows.settings import Settings, setup_environment


def _err(msg: str) -> None:
    print(f"tagloop: {msg}", file=sys.stderr)


def cmd_predict(args: argparse.Namespace) -> int:
    from loop.registry import resolve_model
    from recognizer.predict import Predictor, expand_inputs

    files, notes = expand_inputs(args.images)
    for n in notes:
        _err(n)
    predictor = Predictor(resolve_model(args.model, Settings.from_env().home), backend=args.backend)
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
    from loop.registry import resolve_model
    from recognizer.evaluate_files import evaluate_labelled, format_summary

    model_dir = resolve_model(args.model, Settings.from_env().home)
    summary = evaluate_labelled(args.images, args.labels, model_dir, backend=args.backend)
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
    from synth.pools import pretrain_pools

    settings = setup_environment()
    base = PretrainConfig()
    cfg = replace(base, samples=args.samples, seed=args.seed, workers=args.workers, init=args.init,
                  train=replace(base.train, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                warmup=args.warmup, seed=args.train_seed, device=args.device, stop_at=args.stop_at))
    res = pretrain(cfg, args.out, *pretrain_pools(cfg, settings.path("cache", "pools")))
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
    from bucket.lock import LockHeld
    from bucket.storage import StorageError
    from flows.retrain import retrain
    from ingest.pipeline import ValidationFailed
    from loop.config import RECIPE, cycle_config

    config = cycle_config(**{name: getattr(args, name) for name in RECIPE})
    try:
        summary = retrain(bucket=args.bucket, since=args.since, force=args.force, forced_by=args.forced_by,
                          config=config, break_lock=args.break_lock, progress=not args.json)
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
    from loop.registry import Registry, registry_configured, setup_mlflow

    settings = setup_environment()
    if not registry_configured(settings.home):
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


def _opt(p: argparse.ArgumentParser, name: str, default: Any, help: str, **kw: Any) -> None:
    """``--name`` (dashes for underscores), typed after its default; a False default is a flag."""
    flag = "--" + name.replace("_", "-")
    if default is False:
        p.add_argument(flag, action="store_true", help=help, **kw)
    else:
        p.add_argument(flag, type=kw.pop("type", type(default) if default is not None else str), default=default,
                       help=help, **kw)


def _fields(p: argparse.ArgumentParser, obj: Any, names: list[str], rename: dict[str, str] | None = None) -> None:
    """One option per dataclass field of ``obj``: default from ``obj``, help from the field's metadata."""
    by_name = {f.name: f for f in fields(obj)}
    for n in names:
        f, default = by_name[n], getattr(obj, n)
        typ = int if default is None and "int" in str(f.type) else None     # e.g. ``stop_at: int | None``
        _opt(p, (rename or {}).get(n, n), default, f.metadata["help"], **({"type": typ} if typ else {}))


BUCKET_HELP = "gs://BUCKET, file:///path or a directory (default: TAGLOOP_BUCKET)"
JSON_HELP = "print one JSON summary object on the last line"
MODEL_HELP = "champion (default), models:/product-code-recognizer@ALIAS or /VERSION, or a model directory"


def opts_demo(p: argparse.ArgumentParser) -> None:
    from flows.demo import DemoConfig

    _fields(p, DemoConfig(), ["n_shifted", "steps"], {"n_shifted": "n"})


def opts_ingest(p: argparse.ArgumentParser) -> None:
    from ingest.pipeline import IngestConfig

    p.add_argument("--bucket", default=None, help=BUCKET_HELP)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.add_argument("--model", default="champion",
                   help="model that screens labels for review: champion (default), a model directory, or none")
    _fields(p, IngestConfig(), ["max_failed_share", "heldout_share", "min_age_s"])


def opts_batch_predict(p: argparse.ArgumentParser) -> None:
    from scoring.outputs import QueueConfig

    p.add_argument("--bucket", default=None, help=BUCKET_HELP)
    p.add_argument("--date", default=None, help="only incoming/YYYY-MM-DD/ (default: every day with new crops)")
    p.add_argument("--model", default="champion", help=MODEL_HELP)
    _opt(p, "batch_size", 256, "crops per scoring task")
    _fields(p, QueueConfig(), ["threshold", "max_count"], {"threshold": "queue_threshold", "max_count": "queue_max"})
    p.add_argument("--dask-address", default=None,
                   help="score chunks on this Dask scheduler (tcp://host:8786); default: in this process")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def opts_monitor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bucket", default=None, help=BUCKET_HELP)
    p.add_argument("--since", default=None,
                   help="compare corrections dated on/after YYYY-MM-DD (default: those not in a dataset version yet)")
    p.add_argument("--no-trigger", action="store_true", help="never start the retrain deployment")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def opts_retrain(p: argparse.ArgumentParser) -> None:
    from loop.config import RECIPE, recipe_default, recipe_help

    p.add_argument("--bucket", default=None, help=BUCKET_HELP)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.add_argument("--since", default=None, help="only corrections created on/after this date (YYYY-MM-DD) count as new")
    p.add_argument("--force", action="store_true", help="promote the challenger whatever the gate says (audited)")
    p.add_argument("--forced-by", default=None,
                   help="name of the person forcing the promotion or breaking the lock (required with both)")
    p.add_argument("--break-lock", action="store_true",
                   help="take over another run's live bucket lock (a killed run; recorded under "
                        "state/retrain/broken-locks/); the broken run stops at its next stage")
    for name in RECIPE:                     # the recipe: defaults and help from the config dataclasses
        _opt(p, name, recipe_default(name), recipe_help(name))


def opts_rollback(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.add_argument("--by", default=None, help="who rolls back (recorded on the demoted version; default $USER)")


def opts_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", help="image files or directories of images")
    p.add_argument("--out", required=True, help="output CSV path")
    p.add_argument("--model", default="champion", help=MODEL_HELP)
    p.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"],
                   help="inference engine (auto: ONNX Runtime when available)")


def opts_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, help="directory holding the crops")
    p.add_argument("--labels", required=True, help="CSV with filename,label and optional slice columns")
    p.add_argument("--model", default="champion", help=MODEL_HELP)
    p.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"], help="inference engine")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def opts_synth(p: argparse.ArgumentParser) -> None:
    from synth.render import RenderConfig

    render = RenderConfig()
    p.add_argument("--out", required=True, help="output directory")
    _opt(p, "n", 1000, "number of crops")
    _opt(p, "seed", 0, "random seed (same seed, same crops)")
    _opt(p, "workers", 2, "rendering processes")
    _opt(p, "fonts", render.fonts, "font pool", choices=["train", "heldout", "all"])
    _opt(p, "p_rot90", 0.07, "share of crops turned 90/270 degrees")       # a dataset turns some crops;
    _opt(p, "p_rot180", 0.03, "share of crops turned upside down")      # RenderConfig turns none


def opts_pretrain(p: argparse.ArgumentParser) -> None:
    from recognizer.pretrain import PretrainConfig

    cfg = PretrainConfig()
    p.add_argument("--out", required=True, help="output model directory (resumes if it holds a run)")
    _fields(p, cfg, ["samples", "seed", "workers", "init"])
    _fields(p, cfg.train, ["steps", "batch_size", "lr", "warmup", "stop_at", "device"])
    _fields(p, cfg.train, ["seed"], {"seed": "train_seed"})


# command -> (help, options, run)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "demo": ("one full cycle on embedded defaults", opts_demo, cmd_demo),
    "ingest": ("pull + validate new corrections -> dataset version", opts_ingest, cmd_ingest),
    "batch-predict": ("score new crops under incoming/ with the champion (Prefect flow)", opts_batch_predict,
                      cmd_batch_predict),
    "monitor": ("drift + correction-rate report on new corrections (Prefect flow)", opts_monitor, cmd_monitor),
    "retrain": ("one full cycle now: ingest, mix, fine-tune, gate, registry, reports", opts_retrain, cmd_retrain),
    "rollback": ("champion <- previous-champion", opts_rollback, cmd_rollback),
    "predict": ("read crops and write filename,prediction,confidence", opts_predict, cmd_predict),
    "evaluate": ("exact match overall and per slice on labelled crops", opts_evaluate, cmd_evaluate),
    "synth": ("render synthetic crops to DIR/images + DIR/labels.csv", opts_synth, cmd_synth),
    "pretrain": ("train a base model from synthetic data only", opts_pretrain, cmd_pretrain),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``tagloop`` parser; ``only``: add options for that command alone (what ``main`` runs imports
    just its own configuration, so no command pays for another's imports)."""
    p = argparse.ArgumentParser(prog="tagloop", description="Continual-learning loop for a product-code OCR.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (text, options, run) in COMMANDS.items():
        sp = sub.add_parser(name, help=text)
        if only is None or only == name:
            options(sp)
        sp.set_defaults(func=run)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else "").parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:
        _err(str(e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
