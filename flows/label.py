"""``tagloop label export|import``: labeling sprints in Label Studio (``labeling/``).

The Label Studio server is named by ``--url`` (default ``LABEL_STUDIO_URL``, else
``http://localhost:8080``) and reached with the token in ``LABEL_STUDIO_API_KEY`` (a legacy
token or a personal access token; ``labeling.studio.StudioClient.from_env``). The token is
never an option, so it never shows in ``ps``.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from dataclasses import asdict, fields

from flows.options import BUCKET_HELP, JSON_HELP, _fields
from flows.settings import Settings, bucket_url

def opts_label(p: argparse.ArgumentParser) -> None:
    from labeling.export import ExportConfig

    sub = p.add_subparsers(dest="label_command", required=True, metavar="{export,import}",
                           help="export: queues -> a Label Studio project; import: its annotations -> the bucket")
    from labeling.studio import DEFAULT_URL

    url_help = f"Label Studio server (default: LABEL_STUDIO_URL, else {DEFAULT_URL}); token: LABEL_STUDIO_API_KEY"
    ex = sub.add_parser("export", formatter_class=p.formatter_class,
                        help="review + labeling queues -> a new Label Studio project",
                        description="review + labeling queues -> a new Label Studio project (one task per crop, the "
                                    "champion's reading pre-filled, the reason the crop is there shown)")
    im = sub.add_parser("import", formatter_class=p.formatter_class,
                        help="a finished project's annotations -> corrections/ and review decisions",
                        description="a finished project's annotations -> corrections/ (source labeling-sprint) and "
                                    "review/decisions.jsonl; the next `tagloop ingest` takes them")
    for sp in (ex, im):
        sp.add_argument("--bucket", default=None, help=BUCKET_HELP)
        sp.add_argument("--json", action="store_true", help=JSON_HELP)
        sp.add_argument("--url", default=None, help=url_help)
    _fields(ex, ExportConfig(), [f.name for f in fields(ExportConfig)])
    for action in ex._actions:
        action.choices = {"queue": ("review", "labeling", "both"), "images": ("inline", "local-files")}.get(
            action.dest, action.choices)
    im.add_argument("project", type=int, help="the Label Studio project id (`tagloop label export` printed it)")


def cmd_label(args: argparse.Namespace) -> int:
    from bucket.lock import LockHeld
    from bucket.storage import StorageError
    from flows.cli import _err
    from labeling.studio import StudioError

    settings = Settings.from_env()          # no Prefect here: nothing to set up for it
    try:
        return (label_export if args.label_command == "export" else label_import)(args, settings)
    except (StorageError, StudioError) as e:
        _err(str(e))
        return 3
    except LockHeld as e:
        _err(str(e))
        return 4


def label_export(args: argparse.Namespace, settings: Settings) -> int:
    from bucket.storage import open_storage
    from flows.cli import _err, _say
    from labeling.export import ExportConfig, export_sprint
    from labeling.studio import StudioClient

    given = {f.name: getattr(args, f.name) for f in fields(ExportConfig)}
    if given["images"] == "local-files" and not given["document_root"]:
        given["document_root"] = os.environ.get("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT")
    cfg = ExportConfig(**given)
    url = bucket_url(args.bucket, settings)
    storage = open_storage(url)
    storage.check()
    s = export_sprint(storage, StudioClient.from_env(args.url), cfg, url, settings.user or "unknown")
    if s.project is None:
        _say(args, f"nothing to label: {s.n_already_exported} queued crops are in an earlier sprint already, "
                   f"{len(s.missing)} are no longer in the bucket")
    else:
        _say(args, f"sprint {s.sprint}: project {s.project} ({s.project_url}): {s.n_tasks} crops, {s.n_review} from "
                   f"the review queue, {s.n_labeling} from the labeling queue; {s.n_already_exported} in an earlier "
                   f"sprint, {s.n_over_max} over --max-tasks, {len(s.missing)} gone from the bucket; record {s.record}")
        _say(args, f"when the annotators are done: tagloop label import {s.project}")
    for key in s.missing:
        _err(f"{key}: the crop is no longer in the bucket, not exported")
    if args.json:
        print(json.dumps(asdict(s), sort_keys=True))
    return 0


def label_import(args: argparse.Namespace, settings: Settings) -> int:
    from bucket.storage import open_storage
    from flows.cli import _err, _say
    from labeling.importer import import_sprint
    from labeling.studio import StudioClient

    storage = open_storage(bucket_url(args.bucket, settings))
    s = import_sprint(storage, StudioClient.from_env(args.url), args.project,
                      f"label-import {socket.gethostname()}:{os.getpid()}", settings.extra_chars,
                      lambda m: print(m, file=sys.stderr))
    _say(args, f"import project {s.project}: {s.n_tasks} tasks -> {s.n_corrections} new corrections, "
               f"{s.n_decisions} review decisions {s.decisions}, {s.n_already_imported} imported before, "
               f"{s.n_reported} not taken {s.reasons}")
    for r in s.reported:
        _err(f"task {r['task']} ({r['key']}): {r['reason']}: {r['detail']}")
    if s.n_corrections or s.n_decisions:
        _say(args, "the next `tagloop ingest` (or retrain) takes them in")
    if args.json:
        print(s.to_json())
    return 0
