"""The one documented place for configuration: environment variables (see README)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from importlib import resources


def base_model_dir() -> str:
    """The base model shipped inside the ``recognizer`` package."""
    return str(resources.files("recognizer") / "base_model")


@dataclass
class Settings:
    home: str            # TAGLOOP_HOME: all local state (caches, MLflow, Prefect home)
    bucket: str | None   # TAGLOOP_BUCKET: gs://... or a local directory

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(home=os.path.abspath(os.environ.get("TAGLOOP_HOME", ".tagloop")),
                   bucket=os.environ.get("TAGLOOP_BUCKET") or None)

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
    return settings


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


def registry_configured(settings: Settings) -> bool:
    """A remote tracking server is set, or the embedded MLflow store exists (resolving never creates one)."""
    return bool(os.environ.get("MLFLOW_TRACKING_URI")) or os.path.isfile(settings.path("mlflow", "mlflow.db"))


def resolve_model(ref: str | None, settings: Settings | None = None) -> str:
    """REF -> local artifact directory.

    ``champion``: the registry's champion when a registry with versions exists, else the shipped
    base model; ``models:/product-code-recognizer@ALIAS`` or ``/VERSION``: that registry version
    (downloaded once under ``TAGLOOP_HOME/cache/models``); anything else: a local model directory.
    """
    settings = settings or Settings.from_env()
    if ref in (None, "", "champion"):
        if registry_configured(settings):
            from loop.registry import resolve_registry_model

            found = resolve_registry_model("champion", settings.home)
            if found:
                return found
        return base_model_dir()
    if ref.startswith("models:/"):
        from loop.registry import resolve_registry_model

        if not registry_configured(settings):
            raise ValueError(f"{ref}: no MLflow registry under {settings.home} and MLFLOW_TRACKING_URI is not set")
        found = resolve_registry_model(ref, settings.home)
        if not found:
            raise ValueError(f"{ref}: no such registered model version")
        return found
    if not os.path.isdir(ref):
        raise FileNotFoundError(f"{ref}: model directory not found")
    return ref
