"""``tagloop serve``: its options and command (kept out of ``flows.cli`` beside the other commands' few lines)."""
from __future__ import annotations

import argparse
import os
import sys

from flows.options import BUCKET_HELP, MODEL_HELP


def opts_serve(p: argparse.ArgumentParser) -> None:
    from serve.run import ServeConfig

    d = ServeConfig(home="", bucket=None)
    p.add_argument("--host", default=d.host, help="address to bind (loopback by default; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=d.port, help="TCP port")
    p.add_argument("--model", default=d.model,
                   help=MODEL_HELP + "; champion and @ALIAS follow the alias: a newly promoted version is swapped in "
                                     "without a restart")
    p.add_argument("--bucket", default=None, help=BUCKET_HELP + "; where /v1/corrections writes (none: it answers 503)")
    p.add_argument("--poll-s", type=float, default=d.poll_s, help="seconds between reads of the alias (0: never)")
    p.add_argument("--readers", type=int, default=d.readers, help="readings run at a time (0: one per core)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per reading")


def cmd_serve(args: argparse.Namespace) -> int:
    from flows.settings import Settings
    from serve.run import ServeConfig, serve

    for key, val in {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}.items():
        os.environ.setdefault(key, val)
    os.environ["OMP_NUM_THREADS"] = str(max(1, args.threads))     # read by recognizer.engine for each session
    settings = Settings.from_env()
    cfg = ServeConfig(home=settings.home, bucket=args.bucket or settings.bucket, model=args.model, host=args.host,
                      port=args.port, poll_s=args.poll_s, readers=args.readers, extra_chars=settings.extra_chars)
    print(f"tagloop serve: http://{cfg.host}:{cfg.port} (docs at /docs), model {cfg.model}, "
          f"corrections to {cfg.bucket or 'nowhere (no bucket)'}", file=sys.stderr)
    serve(cfg)
    return 0
