"""The one documented place for configuration: environment variables (see README).

The CLI and the flows read them here, once, at the top (``Settings.from_env`` /
``setup_environment``) and hand what they read down as arguments; nothing below reads them.
"""
from __future__ import annotations

import fcntl
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass
class Settings:
    home: str            # TAGLOOP_HOME: all local state (caches, MLflow, Prefect home)
    bucket: str | None   # TAGLOOP_BUCKET: gs://... or a local directory
    extra_chars: str = ""  # TAGLOOP_EXTRA_CHARS: label characters admitted beyond 0-9A-Z -./:()#
    user: str = ""         # USER: who runs a command by hand (recorded on a rollback)
    webhook_url: str | None = None  # TAGLOOP_WEBHOOK_URL: gate decisions, alerts, failures (monitoring.notify)

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(home=os.path.abspath(os.environ.get("TAGLOOP_HOME", ".tagloop")),
                   bucket=os.environ.get("TAGLOOP_BUCKET") or None,
                   extra_chars=os.environ.get("TAGLOOP_EXTRA_CHARS", ""), user=os.environ.get("USER", ""),
                   webhook_url=os.environ.get("TAGLOOP_WEBHOOK_URL") or None)

    def path(self, *parts: str) -> str:
        return os.path.join(self.home, *parts)


def setup_environment() -> Settings:
    """Called explicitly by the CLI and flows: telemetry off, state under TAGLOOP_HOME.

    Prefect reads its settings when it is first imported, so the CLI calls this before
    importing any flow; ``PREFECT_HOME`` defaults to ``$TAGLOOP_HOME/prefect`` (its SQLite
    database and local results live there), so two homes never share a Prefect database.
    """
    settings = Settings.from_env()
    for key, val in {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "False",
                     "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                     "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
                     "PREFECT_HOME": settings.path("prefect")}.items():
        os.environ.setdefault(key, val)
    os.makedirs(settings.home, exist_ok=True)
    prepare_prefect_database()
    return settings


MIGRATED_MARK = ".tagloop-db-migrated"


def prepare_prefect_database() -> None:
    """Create (migrate) the local Prefect database once, under a file lock, before any server starts.

    Each tagloop process starts its own temporary Prefect server, and each server migrates the SQLite
    database it finds on start: two commands started together on a fresh home raced on it (``duplicate
    column name``). Whoever takes the lock first migrates; the others wait, then find the mark. Nothing to
    do when a Prefect server (``PREFECT_API_URL``) or another database is configured."""
    if os.environ.get("PREFECT_API_URL") or os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL"):
        return
    home = os.environ["PREFECT_HOME"]
    os.makedirs(home, exist_ok=True)
    if os.path.exists(os.path.join(home, MIGRATED_MARK)):
        return
    with open(os.path.join(home, ".tagloop-db.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(home, MIGRATED_MARK)):
            return
        done = subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"could not create the Prefect database under {home}: "
                               f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        open(os.path.join(home, MIGRATED_MARK), "w").close()


def prune_results(settings: Settings, max_age_days: float) -> tuple[int, int]:
    """Delete Prefect's persisted task results (``$PREFECT_HOME/storage``) older than ``max_age_days``.

    They only serve a re-run of the same cycle after a crash (the training mix, the scores);
    a nightly mix is tens of MB. Returns (files removed, bytes freed).
    """
    root = os.path.join(os.environ.get("PREFECT_HOME", settings.path("prefect")), "storage")
    if not os.path.isdir(root):
        return 0, 0
    cutoff, n, freed = time.time() - max_age_days * 86400, 0, 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            path = os.path.join(dirpath, f)
            try:
                st = os.stat(path)
                if st.st_mtime < cutoff:
                    os.remove(path)
                    n, freed = n + 1, freed + st.st_size
            except FileNotFoundError:
                continue
    return n, freed


def bucket_url(bucket: str | None, settings: Settings | None = None) -> str:
    """The ``bucket`` parameter, else ``TAGLOOP_BUCKET``; a clear error when neither is set."""
    url = bucket or (settings or setup_environment()).bucket
    if not url:
        raise ValueError("no bucket given: pass bucket (--bucket) or set TAGLOOP_BUCKET")
    return url


def new_run_id(kind: str) -> str:
    """``<kind>-YYYYMMDDTHHMMSSZ-<6 hex>``: sortable, unique, a valid report folder name."""
    return f"{kind}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
