"""Fill an Evidently workspace from the bucket, for a reader (or a new worker): every night's snapshots.

    python -m monitoring.workspace --bucket gs://BUCKET --workspace ./evidently
    evidently ui --workspace ./evidently            # then http://127.0.0.1:8000

The snapshots live in the bucket (``reports/<run-id>/snapshots/<kind>.json``, written by every
run); a workspace directory is a cache of them, so running this again adds only what is new.
"""
from __future__ import annotations

import argparse
import os
import sys

from bucket.storage import open_storage
from monitoring.publish import PROJECT, sync_workspace


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m monitoring.workspace", description=__doc__.split("\n")[0])
    ap.add_argument("--bucket", default=os.environ.get("TAGLOOP_BUCKET"),
                    help="gs://BUCKET, file:///path or a directory (default: $TAGLOOP_BUCKET)")
    ap.add_argument("--workspace", default="evidently", help="the workspace directory to fill (default: ./evidently)")
    ap.add_argument("--project", default=PROJECT, help=f"the workspace project (default: {PROJECT})")
    args = ap.parse_args(argv)
    if not args.bucket:
        ap.error("--bucket (or TAGLOOP_BUCKET) is required")
    added = sync_workspace(args.workspace, storage=open_storage(args.bucket), project=args.project)
    print(f"{len(added)} runs added to {args.workspace} (project {args.project}); "
          f"open it with: evidently ui --workspace {args.workspace}", file=sys.stderr)
    for name in sorted(added):
        print(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
