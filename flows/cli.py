"""The ``tagloop`` command line: thin wrappers over the same functions the flows call."""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Iterator

from flows.options import (opts_approve, opts_batch_predict, opts_demo, opts_evaluate, opts_ingest, opts_monitor, opts_predict,
                           opts_pretrain, opts_promote, opts_retrain, opts_rollback, opts_status,
                           opts_synth)
from flows.label import cmd_label, opts_label
from flows.serve_cmd import cmd_serve, opts_serve
from flows.settings import Settings, setup_environment


class StopSignal:
    """What ``stop_on_signals`` saw: the name of the first stop signal that arrived, or None."""

    def __init__(self) -> None:
        self.name: str | None = None


@contextmanager
def stop_on_signals() -> Iterator[StopSignal]:
    """SIGTERM (``kill``, a scheduler stopping the run) raises KeyboardInterrupt like Ctrl-C does, so the run
    unwinds: ``finally`` blocks release the bucket lock and remove temporary files, Prefect marks the run and
    stops the temporary server it started. Without it the default action kills the process on the spot.

    The yielded ``StopSignal`` records the signal, so the caller can report a stop as a stop even when
    the unwinding surfaces as another error (a library's cleanup failing part-way)."""
    seen = StopSignal()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def interrupt(signum: int, _frame: object) -> None:
        seen.name = seen.name or signal.Signals(signum).name
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGTERM, previous)


def _say(args: argparse.Namespace, text: str) -> None:
    """A human summary line: stdout, or stderr under ``--json`` so that stdout holds only the JSON document."""
    print(text, file=sys.stderr if getattr(args, "json", False) else sys.stdout)


def _err(msg: str) -> None:
    print(f"tagloop: {msg}", file=sys.stderr)


# preds.csv cells starting with one of these get a leading ' (OWASP's CSV-injection rule: a spreadsheet
# would run them as a formula)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NOTHING_READ = 1        # predict's exit code when no input could be read (the CSV is still written)


def _is_terminal() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress_bar(total: int, unit: str, desc: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr when it is a terminal (``update(k)``: k more done); None otherwise, so logs
    and pipes get no carriage-return noise."""
    try:
        from tqdm import tqdm          # in the full install; the slim reading install has no bars
    except ImportError:
        tqdm = None
    if total <= 0 or not _is_terminal() or tqdm is None:
        yield None
        return

    with tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True) as bar:
        yield bar.update


def csv_cell(text: str) -> str:
    """``text`` as a preds.csv cell a spreadsheet shows as text."""
    return "'" + text if text.startswith(FORMULA_START) else text


def cmd_predict(args: argparse.Namespace) -> int:
    from bucket.files import atomic_write
    from loop.modelref import resolve_model
    from recognizer.predict import Predictor, display_name, expand_inputs

    files, notes = expand_inputs(args.images)
    for n in notes:
        _err(n)
    predictor = Predictor(resolve_model(args.model, Settings.from_env().home), backend=args.backend)
    with progress_bar(len(files), "file", "reading") as tick:
        preds = predictor.predict_files(files, on_done=tick)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["filename", "prediction", "confidence"])
    for path, p in zip(files, preds):
        name = display_name(path)
        if p.error:
            _err(f"{name}: {p.error}")
        w.writerow([csv_cell(name), csv_cell(p.text), f"{p.confidence:.4f}"])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write(args.out, out.getvalue().encode("utf-8"))
    n_bad = sum(1 for p in preds if p.error)
    print(f"wrote {len(files)} predictions to {args.out} ({n_bad} unreadable)")
    if n_bad == len(files):
        _err(f"no input could be read (exit {NOTHING_READ})")
        return NOTHING_READ
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from loop.modelref import resolve_model
    from recognizer.evaluate_files import evaluate_labelled, format_summary

    model_dir = resolve_model(args.model, Settings.from_env().home)
    summary = evaluate_labelled(args.images, args.labels, model_dir, backend=args.backend)
    _say(args, format_summary(summary))
    if args.json:
        print(json.dumps(summary))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from synth.dataset import write_dataset
    from synth.render import RenderConfig

    cfg = RenderConfig(fonts=args.fonts, p_rot90=args.p_rot90, p_rot180=args.p_rot180)
    t = time.time()
    with progress_bar(args.n, "crop", "rendering") as tick:
        path = write_dataset(args.out, args.n, args.seed, cfg, workers=args.workers, on_crops=tick)
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
    from bucket.lock import LockHeld
    from bucket.storage import StorageError
    from flows.ingest_flow import ingest
    from ingest.pipeline import ValidationFailed

    try:
        summary = ingest(bucket=args.bucket, model=args.model, max_failed_share=args.max_failed_share,
                         heldout_share=args.heldout_share, min_age_s=args.min_age_s)
    except (StorageError, ValidationFailed) as e:
        _err(str(e))
        return 3
    except LockHeld as e:
        _err(str(e))
        return 4
    _say(args, f"ingest {summary.run_id}: {summary.n_new} new -> {summary.n_accepted} accepted, "
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
    _say(args, f"batch-predict {s['run_id']}: {s['n_new']} new crops -> {s['n_scored']} scored, "
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
    _say(args, f"monitor {s['run_id']}: drift share {s.get('drift_share', s.get('drift_skipped'))}, "
               f"correction rate {s.get('correction_rate')}, alerts: {alerts}; retrain: {s['retrain']['reason']}")
    if args.json:
        print(json.dumps(s, sort_keys=True, default=str))
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    if args.forced_by is not None:
        args.forced_by = args.forced_by.strip()
        if not args.forced_by:
            _err("--forced-by needs a NAME, not blank (recorded in the audit tags)")
            return 2
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
    _say(args, f"retrain: champion v{summary.champion_version}, challenger "
               f"{'v' + summary.challenger_version if summary.challenger_version else 'none'}: {summary.reason}")
    if summary.verdict == "awaiting approval":
        _say(args, f"approve with: tagloop approve {summary.challenger_version} --by NAME   "
                   f"(or tagloop reject {summary.challenger_version} --by NAME)")
    if args.json:
        print(summary.to_json())
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from loop.modelref import registry_configured
    from loop.registry import Registry, setup_mlflow

    settings = setup_environment()
    if not registry_configured(settings.home):
        _err(f"no model registry under {settings.home} (and MLFLOW_TRACKING_URI is not set): nothing to roll back")
        return 2
    setup_mlflow(settings.home)
    move = Registry().rollback(by=args.by or settings.user)
    _say(args, f"rollback: champion v{move.before['champion']} -> v{move.champion}; "
               f"previous-champion now {move.previous_champion or 'unset'}")
    if args.json:
        print(json.dumps({"champion": move.champion, "previous_champion": move.previous_champion,
                          "before": move.before}))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """Make an existing registered version champion by hand (after a review, or to undo a rollback)."""
    from loop.modelref import registry_configured
    from loop.registry import Registry, setup_mlflow

    by = args.by.strip()
    if not by:
        _err("--by needs a name (recorded on the version)")
        return 2
    settings = setup_environment()
    if not registry_configured(settings.home):
        _err(f"no model registry under {settings.home} (and MLFLOW_TRACKING_URI is not set): nothing to promote")
        return 2
    setup_mlflow(settings.home)
    registry = Registry()
    if args.version not in registry.versions():
        _err(f"no registered version {args.version!r} (versions: {', '.join(registry.versions()) or 'none'})")
        return 2
    reason = f"promoted by hand by {by}" + (f": {args.reason.strip()}" if args.reason.strip() else "")
    move = registry.promote(args.version, reason, forced_by=by)
    _say(args, f"promote: champion v{move.before['champion']} -> v{move.champion}; "
               f"previous-champion now {move.previous_champion or 'unset'}")
    if args.json:
        print(json.dumps({"champion": move.champion, "previous_champion": move.previous_champion,
                          "before": move.before, "reason": reason}))
    return 0


def _approval(args: argparse.Namespace, approve: bool) -> int:
    from loop.modelref import registry_configured
    from loop.registry import Registry, setup_mlflow

    settings = setup_environment()
    if not registry_configured(settings.home):
        _err(f"no model registry under {settings.home} (and MLFLOW_TRACKING_URI is not set): nothing waits for approval")
        return 2
    setup_mlflow(settings.home)
    registry = Registry()
    if approve:
        move = registry.approve(args.version, args.by, args.note)
        out = {"decision": "approved", "champion": move.champion, "previous_champion": move.previous_champion,
               "before": move.before, "by": args.by.strip()}
        _say(args, f"approve: champion v{move.before['champion']} -> v{move.champion} (approved by {args.by.strip()}); "
                   f"previous-champion now {move.previous_champion or 'unset'}")
    else:
        registry.reject(args.version, args.by, args.note)
        out = {"decision": "rejected", "version": args.version, "champion": registry.alias("champion"),
               "by": args.by.strip()}
        _say(args, f"reject: v{args.version} turned down by {args.by.strip()}; champion stays v{out['champion']}")
    if args.json:
        print(json.dumps(out))
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    """Approval mode: the gate passed VERSION; a person makes it champion."""
    return _approval(args, approve=True)


def cmd_reject(args: argparse.Namespace) -> int:
    """Approval mode: the gate passed VERSION; a person turns it down (the champion stays)."""
    return _approval(args, approve=False)


def cmd_status(args: argparse.Namespace) -> int:
    """Champion and aliases, the last retrains and their verdicts, the bucket's review queue and lock."""
    from bucket.storage import StorageError, open_storage
    from loop.status import bucket_status, registry_status

    settings = setup_environment()
    out: dict = {"home": settings.home, "registry": registry_status(settings.home, args.runs), "bucket": None}
    url = args.bucket or settings.bucket
    if url:
        try:
            storage = open_storage(url)
            storage.check()
            out["bucket"] = bucket_status(storage)
        except StorageError as e:
            _err(str(e))
            return 3
    for line in _status_lines(out):
        _say(args, line)
    if args.json:
        print(json.dumps(out, sort_keys=True, default=str))
    return 0


def _status_lines(out: dict) -> list[str]:
    reg, bucket = out["registry"], out["bucket"]
    if reg is None:
        lines = [f"registry: none under {out['home']} yet (the shipped base model serves)"]
    else:
        lines = ["registry:"]
        for alias, v in reg["aliases"].items():
            how = "" if not v else "  " + "; ".join(f"{k} {v[k]}" for k in ("promoted_at", "forced_by", "approved_by",
                                                                                   "rolled_back_at")
                                                     if v.get(k))
            lines.append(f"  {alias:<18} {'v' + v['version'] if v else '-'}{how}".rstrip())
        for p in reg.get("pending_approvals", []):
            lines.append(f"  waiting for approval: v{p['version']} (judged against v{p['gate_champion'] or '-'}, since "
                         f"{p['awaiting_since'] or '-'}): tagloop approve {p['version']} --by NAME  |  tagloop reject "
                         f"{p['version']} --by NAME")
        lines.append(f"last {len(reg['runs'])} retrain runs:" if reg["runs"] else "no retrain run yet")
        lines += [f"  {r['started']}  {r['status']:<8} {r['verdict'] or '-':<11} {(r['reason'] or '')[:110]}"
                  for r in reg["runs"]]
    if bucket:
        lock = bucket["lock"]
        last = bucket["last_ingest"] or {}
        lines += [f"bucket {bucket['url']}: dataset {bucket['dataset_version'] or '-'}, {bucket['processed']} items "
                  f"processed, {bucket['pending_review']} waiting for review",
                  f"  last ingest {last.get('run_id', '-')}: {last.get('n_new', 0)} new -> {last.get('n_accepted', 0)} "
                  f"accepted, {last.get('n_quarantined', 0)} quarantined",
                  f"  lock: {'free' if lock is None else 'held by ' + str(lock['owner']) + ' until ' + str(lock['expires'])}"]
    return lines


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import DemoConfig, run_demo

    return run_demo(setup_environment(), DemoConfig(n_shifted=args.n, steps=args.steps, seed=args.seed))


# command -> (help, options, run)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "demo": ("one full cycle on embedded defaults", opts_demo, cmd_demo),
    "ingest": ("pull + validate new corrections -> dataset version", opts_ingest, cmd_ingest),
    "batch-predict": ("score new crops under incoming/ with the champion (Prefect flow)", opts_batch_predict,
                      cmd_batch_predict),
    "monitor": ("drift + correction-rate report on new corrections (Prefect flow)", opts_monitor, cmd_monitor),
    "retrain": ("one full cycle now: ingest, mix, fine-tune, gate, registry, reports", opts_retrain, cmd_retrain),
    "rollback": ("champion <- previous-champion", opts_rollback, cmd_rollback),
    "promote": ("champion <- a registered version, by hand (audited)", opts_promote, cmd_promote),
    "approve": ("approval mode: a challenger the gate passed becomes champion", opts_approve, cmd_approve),
    "reject": ("approval mode: turn down a challenger the gate passed (champion stays)", opts_approve, cmd_reject),
    "status": ("champion, last retrains and their verdicts, review queue, bucket lock", opts_status, cmd_status),
    "predict": ("read crops and write filename,prediction,confidence", opts_predict, cmd_predict),
    "evaluate": ("exact match overall and per slice on labelled crops", opts_evaluate, cmd_evaluate),
    "synth": ("render synthetic crops to DIR/images + DIR/labels.csv", opts_synth, cmd_synth),
    "pretrain": ("train a base model from synthetic data only", opts_pretrain, cmd_pretrain),
    "serve": ("HTTP API: read crops, record corrections; serves the champion, swapped in when promoted", opts_serve,
              cmd_serve),
    "label": ("labeling sprints in Label Studio: export the queues, import the annotations", opts_label, cmd_label),
}


class DefaultsShown(argparse.HelpFormatter):
    """``--help`` states each option's default (the config dataclass's value), unless it has none or says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tagloop")
    except PackageNotFoundError:      # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``tagloop`` parser; ``only``: add options for that command alone (what ``main`` runs imports
    just its own configuration, so no command pays for another's imports)."""
    p = argparse.ArgumentParser(prog="tagloop", description="Continual-learning loop for a product-code OCR.")
    p.add_argument("--version", action="version", version=f"tagloop {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (text, options, run) in COMMANDS.items():
        sp = sub.add_parser(name, help=text, description=text, formatter_class=DefaultsShown)
        if only is None or only == name:
            options(sp)
        sp.set_defaults(func=run)
    return p


def _raised_by_a_stop(e: BaseException) -> bool:
    """Whether ``e`` is, or was raised while handling, a stop: Prefect's ``TerminationSignal`` (its SIGTERM bridge
    replaces our handler while a flow runs) or a ``KeyboardInterrupt``. Prefect can lose the signal itself: a
    SIGTERM landing while a task run is being created made its crash handler raise ``ValueError('Task run is not
    set')`` in place of the ``TerminationSignal``, and its bridge re-sends the signal to our handler only when the
    ``TerminationSignal`` itself propagates (seen in CI: exit 2 instead of 130)."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__name__ == "TerminationSignal" or isinstance(e, KeyboardInterrupt):
            return True
        e = e.__cause__ or e.__context__
    return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else "").parse_args(argv)
    stop = StopSignal()
    try:
        with stop_on_signals() as stop:
            code = args.func(args)
        if not stop.name or code == 0:
            return code
        failure = f"exit {code}"                        # a command's own error path ran while it was unwinding
    except KeyboardInterrupt:
        failure = None
    except BaseException as e:
        if _raised_by_a_stop(e):                        # Prefect's SIGTERM bridge (inside a flow), or what it became
            stop.name = stop.name or "SIGTERM"
        if not stop.name or isinstance(e, SystemExit):
            if isinstance(e, (FileNotFoundError, ValueError)):
                _err(str(e))
                return 2
            raise
        failure = f"{type(e).__name__}: {e}"            # the signal surfaced as another error while unwinding
    _err("stopped by a signal: the bucket lock was released and nothing past the last commit was kept; "
         "the next run picks up from there" + (f" (while stopping: {failure})" if failure else ""))
    return 130


if __name__ == "__main__":
    sys.exit(main())
