"""The ``tagloop`` command line's options, one function per command.

Where a command runs with a config dataclass, its options are that dataclass's fields: the
default comes from the dataclass, the help text from the field's metadata (``help``), so a
default and its explanation are written once, next to the code that uses them. Each
function imports only its own command's configuration (``flows.cli`` builds just the
command it runs).
"""
from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any


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
JSON_HELP = "print one JSON summary object on stdout (human lines go to stderr)"
MODEL_HELP = "champion (default), models:/product-code-recognizer@ALIAS or /VERSION, or a model directory"


def opts_demo(p: argparse.ArgumentParser) -> None:
    from flows.demo import DemoConfig

    _fields(p, DemoConfig(), ["n_shifted", "steps", "seed"], {"n_shifted": "n"})


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


def opts_status(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bucket", default=None, help=BUCKET_HELP + "; without one, only the registry is shown")
    p.add_argument("--runs", type=int, default=5, help="how many of the last retrain runs to list")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def opts_promote(p: argparse.ArgumentParser) -> None:
    p.add_argument("version", help="registered version to make champion (the current one becomes previous-champion)")
    p.add_argument("--by", required=True, help="who promotes (recorded on the version as forced_by: the gate is bypassed)")
    p.add_argument("--reason", default="", help="why, recorded with the promotion")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def opts_approve(p: argparse.ArgumentParser) -> None:
    p.add_argument("version", help="a registered version waiting for approval (see `tagloop status`)")
    p.add_argument("--by", required=True, help="who decides (recorded on the version)")
    p.add_argument("--note", default="", help="a note recorded with the decision")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def opts_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", help="image files or directories of images")
    p.add_argument("--out", required=True,
                   help="output CSV: filename (as reached from the argument),prediction,confidence; "
                        "exit 1 when no input could be read (README.md)")
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
