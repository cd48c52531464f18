"""Model references -> local model directories, importing MLflow only when it has to be asked.

``tagloop predict``, ``tagloop evaluate``, the flows and the server resolve ``champion`` (or
``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, a directory) before they read anything. Importing
MLflow takes 0.6-0.9 s on a 2-core machine, more than the rest of a one-photo ``tagloop predict``;
so this module answers without it where the answer is certain:

- no registry (no ``MLFLOW_TRACKING_URI``, no embedded store under ``TAGLOOP_HOME``): the shipped model;
- the embedded SQLite store names the version (one read-only query of its alias / version tables) and
  that version was downloaded before (``cache/models``; a version's files never change): its copy.

Anything else (a tracking server, a version not downloaded yet, a store whose tables this query does not
recognise) goes through ``loop.registry``, i.e. the MLflow client.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3

MODEL_NAME = "product-code-recognizer"
CHAMPION = "champion"
DELETED_STAGE = "Deleted_Internal"      # MLflow's mark on a deleted model version row


def tracking_uri(home: str) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the embedded SQLite store under ``home``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{embedded_store(home)}"


def embedded_store(home: str) -> str:
    return os.path.join(home, "mlflow", "mlflow.db")


def registry_configured(home: str) -> bool:
    """A remote tracking server is set, or the embedded MLflow store exists (resolving never creates one)."""
    return bool(os.environ.get("MLFLOW_TRACKING_URI")) or os.path.isfile(embedded_store(home))


def parse_model_ref(ref: str) -> tuple[str, str, str]:
    """``champion`` or ``models:/NAME@ALIAS`` / ``models:/NAME/VERSION`` -> (name, kind, value)."""
    if ref == CHAMPION:
        return MODEL_NAME, "alias", CHAMPION
    body = ref[len("models:/"):] if ref.startswith("models:/") else None
    if not body or "/" not in body and "@" not in body:
        raise ValueError(f"{ref}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    if "@" in body:
        name, alias = body.split("@", 1)
        return name, "alias", alias
    name, version = body.rsplit("/", 1)
    if not version.isdigit():
        raise ValueError(f"{ref}: version must be a number")
    return name, "version", version


def version_cache_dir(registry_uri: str, name: str, version: str, cache_root: str) -> str:
    """Where a downloaded registry version lives under ``cache_root`` (one folder per registry and model)."""
    key = hashlib.sha256(f"{registry_uri}|{name}".encode()).hexdigest()[:12]
    return os.path.join(cache_root, key, str(version))


def model_cache(home: str) -> str:
    return os.path.join(home, "cache", "models")


def artifact_dir(downloaded: str) -> str:
    """Local copy of a logged model -> its weights+config directory."""
    root = os.path.join(downloaded, "artifacts")
    found = sorted(d for d in (os.listdir(root) if os.path.isdir(root) else [])
                   if os.path.isfile(os.path.join(root, d, "config.json")))
    if len(found) != 1:
        raise FileNotFoundError(f"{downloaded}: expected one recognizer artifact under artifacts/, found {found}")
    return os.path.join(root, found[0])


def embedded_version(home: str, name: str, kind: str, value: str) -> str | None:
    """The version the embedded store names for (``kind``, ``value``), read without MLflow; None when
    unsure (no embedded store, a tracking server set, tables not as expected, no such alias / version):
    the caller then asks MLflow, which also tells "no such version" apart from "cannot tell"."""
    if os.environ.get("MLFLOW_TRACKING_URI") or not os.path.isfile(embedded_store(home)):
        return None
    try:
        with sqlite3.connect(f"file:{embedded_store(home)}?mode=ro", uri=True, timeout=5) as db:
            if kind == "alias":
                rows = db.execute("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                                  (name, value)).fetchall()
                if len(rows) != 1:
                    return None
                value = str(rows[0][0])
            live = db.execute("SELECT COUNT(*) FROM model_versions WHERE name = ? AND version = ? "
                              "AND current_stage != ?", (name, int(value), DELETED_STAGE)).fetchone()[0]
    except (sqlite3.Error, ValueError):
        return None
    return value if live == 1 else None


def cached_registry_model(ref: str, home: str) -> str | None:
    """``ref``'s weights+config directory when the embedded store names its version and that version was
    downloaded before; None otherwise (ask ``loop.registry.resolve_registry_model``)."""
    name, kind, value = parse_model_ref(ref)
    version = embedded_version(home, name, kind, value)
    if version is None:
        return None
    dst = version_cache_dir(tracking_uri(home), name, version, model_cache(home))
    return artifact_dir(dst) if os.path.isdir(dst) else None


def resolve_model(ref: str | None, home: str) -> str:
    """REF -> local artifact directory (``home``: ``TAGLOOP_HOME``, where the embedded registry lives).

    ``champion``: the registry's champion when a registry with versions exists, else the shipped
    base model; ``models:/product-code-recognizer@ALIAS`` or ``/VERSION``: that registry version
    (downloaded once under ``TAGLOOP_HOME/cache/models``); anything else: a local model directory.
    """
    from recognizer.checkpoint import base_model_dir

    if ref in (None, "", CHAMPION):
        if not registry_configured(home):
            return base_model_dir()
        return cached_registry_model(CHAMPION, home) or _ask_registry(CHAMPION, home) or base_model_dir()
    if ref.startswith("models:/"):
        if not registry_configured(home):
            raise ValueError(f"{ref}: no MLflow registry under {home} and MLFLOW_TRACKING_URI is not set")
        found = cached_registry_model(ref, home) or _ask_registry(ref, home)
        if not found:
            raise ValueError(f"{ref}: no such registered model version")
        return found
    if not os.path.isdir(ref):
        raise FileNotFoundError(f"{ref}: model directory not found")
    return ref


def _ask_registry(ref: str, home: str) -> str | None:
    from loop.registry import resolve_registry_model      # imports MLflow

    return resolve_registry_model(ref, home)
