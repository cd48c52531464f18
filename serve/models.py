"""The served model: the registry's ``champion`` (or a fixed model), swapped in place when the alias moves.

``ModelHolder.current`` is one immutable ``Served`` (version + predictor); a request takes it once and
reads with it, so a swap never mixes two models inside one request. A poll thread asks the source
which version should serve every ``poll_s`` seconds; a new version is downloaded, loaded and read
once (warm-up) beside the old one, and only then does the reference change (one assignment: atomic).
A version that fails to load leaves the old one serving and is reported (``/v1/model``, ``/healthz``)
and retried only when the alias moves again or ``retry_s`` has passed.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from recognizer.checkpoint import base_model_dir
from recognizer.predict import Predictor

log = logging.getLogger("tagloop.serve")
BASE = "base"          # the version name of the shipped base model (no registry, or no champion yet)


@dataclass(frozen=True)
class Served:
    """One loaded model: what a request reads with."""

    version: str           # registry version ("7"), "base", or the directory of a fixed model
    model_dir: str
    predictor: Predictor
    loaded_at: float       # epoch seconds


class ModelSource(Protocol):
    """Where the model comes from: which version should serve now, and its local directory."""

    ref: str

    def wanted(self) -> str: ...

    def fetch(self, version: str) -> str: ...


class FixedModel:
    """A model directory (``--model DIR``) or the shipped base model; never changes."""

    def __init__(self, model_dir: str, version: str | None = None) -> None:
        self.ref, self.model_dir = model_dir, model_dir
        self.version = version or model_dir

    def wanted(self) -> str:
        return self.version

    def fetch(self, version: str) -> str:
        return self.model_dir


class RegistryAlias:
    """A registry alias (``champion`` by default), read from the MLflow store of ``home`` or
    ``MLFLOW_TRACKING_URI``; the shipped base model while there is no registry or no such alias, as
    ``tagloop predict`` does. Nothing is created: an absent embedded store is not opened."""

    def __init__(self, home: str, alias: str = "champion", name: str | None = None) -> None:
        from loop.modelref import MODEL_NAME

        self.home, self.alias, self.name = home, alias, name or MODEL_NAME
        self.ref = f"models:/{self.name}@{alias}"
        self._registry = None

    def _open(self):
        from loop.modelref import registry_configured, tracking_uri

        if self._registry is None:
            if not registry_configured(self.home):
                return None
            import mlflow
            from mlflow import MlflowClient

            from loop.registry import Registry

            uri = tracking_uri(self.home)
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            self._registry = Registry(self.name, MlflowClient(uri, uri))
        return self._registry

    def wanted(self) -> str:
        registry = self._open()
        return (registry.alias(self.alias) if registry else None) or BASE

    def fetch(self, version: str) -> str:
        if version == BASE:
            return base_model_dir()
        return self._open().download(version, os.path.join(self.home, "cache", "models"))


def warm_up(predictor: Predictor) -> None:
    """One reading of a plain synthetic crop: builds the runtime's kernels before the first request,
    and proves the model runs at all."""
    crop = np.full((32, 120), 230, np.uint8)
    crop[10:22, 10:110:6] = 20
    predictor.predict_arrays([crop])


class ModelHolder:
    """The served model and its hot swap (see the module docstring)."""

    def __init__(self, source: ModelSource, poll_s: float = 10.0, retry_s: float = 300.0,
                 load: Callable[[str], Predictor] = Predictor) -> None:
        self.source, self.poll_s, self.retry_s, self._load = source, poll_s, retry_s, load
        self.current: Served | None = None
        self.error: str = ""                 # the last failed load or poll, "" when all is well
        self.last_poll: float | None = None
        self._failed: tuple[str, float] | None = None
        self._lock = threading.Lock()        # one poll at a time (the thread, or a test calling poll())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Served:
        """Load the model that should serve now; raises when it cannot be loaded (nothing to serve)."""
        version = self.source.wanted()
        self.current = self._prepare(version)
        log.info("serving model %s (%s)", version, self.current.model_dir)
        if self.poll_s > 0 and not isinstance(self.source, FixedModel):
            self._thread = threading.Thread(target=self._loop, name="tagloop-model-poll", daemon=True)
            self._thread.start()
        return self.current

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _prepare(self, version: str) -> Served:
        model_dir = self.source.fetch(version)
        predictor = self._load(model_dir)
        warm_up(predictor)
        return Served(version, model_dir, predictor, time.time())

    def poll(self) -> bool:
        """Ask the source which version should serve; swap when it changed and loads. True when swapped."""
        with self._lock:
            self.last_poll = time.time()
            try:
                version = self.source.wanted()
            except Exception as e:  # noqa: BLE001 - a registry outage must not stop serving
                self.error = f"registry not reachable: {type(e).__name__}: {str(e)[:300]}"
                return False
            if self.current is not None and version == self.current.version:
                self.error, self._failed = "", None
                return False
            if self._failed and self._failed[0] == version and time.time() - self._failed[1] < self.retry_s:
                return False
            try:
                served = self._prepare(version)
            except Exception as e:  # noqa: BLE001 - any failure keeps the old model serving
                self._failed = (version, time.time())
                self.error = (f"version {version} failed to load, still serving "
                              f"{self.current.version if self.current else 'nothing'}: {type(e).__name__}: {str(e)[:300]}")
                log.error(self.error)
                return False
            old, self.current = self.current, served
            self.error, self._failed = "", None
            log.info("now serving model %s (was %s)", version, old.version if old else None)
            return True

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()
