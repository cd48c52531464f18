"""MLflow setup and the model registry: versions, aliases, promotion, rollback, downloads.

Embedded by default: tracking to ``sqlite:///$TAGLOOP_HOME/mlflow/mlflow.db`` with artifacts
under ``$TAGLOOP_HOME/mlflow/artifacts``; ``MLFLOW_TRACKING_URI`` points it at a server.
Aliases: ``champion`` (what serving loads), ``challenger`` (last candidate),
``previous-champion`` (rollback target). Each promoted version carries the tag
``replaced`` (the version it replaced), so rollbacks can walk back more than one step.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from loop.modelref import CHAMPION, MODEL_NAME, artifact_dir, model_cache, parse_model_ref, tracking_uri, version_cache_dir

EXPERIMENT = "tagloop"
CHALLENGER, PREVIOUS = "challenger", "previous-champion"
PENDING = "pending"                 # version tag ``approval`` of a challenger waiting for ``tagloop approve``


def setup_mlflow(home: str, experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the tracking store and select the experiment (created on first use)."""
    uri = tracking_uri(home)
    embedded = "MLFLOW_TRACKING_URI" not in os.environ or not os.environ["MLFLOW_TRACKING_URI"]
    if embedded:
        os.makedirs(os.path.join(home, "mlflow", "artifacts"), exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if embedded:
        # mlflow exports the URI for subprocesses; an embedded store is this home's, not the process's:
        # left in the environment, a later call for another home (or a child process) would follow it
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    client = MlflowClient(uri, uri)
    if client.get_experiment_by_name(experiment) is None:
        location = f"file://{os.path.join(home, 'mlflow', 'artifacts')}" if embedded else None
        client.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    return uri


@dataclass
class AliasMove:
    """What a promotion or rollback did (version numbers as strings; None = alias absent)."""

    champion: str | None
    previous_champion: str | None
    before: dict[str, str | None]


class Registry:
    """The registered model ``name`` and its aliases (requires ``setup_mlflow`` first)."""

    def __init__(self, name: str = MODEL_NAME, client: MlflowClient | None = None) -> None:
        self.name = name
        self._client = client

    @property
    def client(self) -> MlflowClient:
        """Created on first use, so it follows ``setup_mlflow`` even when the Registry was made before."""
        if self._client is None:
            self._client = MlflowClient(mlflow.get_tracking_uri(), mlflow.get_registry_uri())
        return self._client

    # -- reading ----------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Registered version numbers, ascending."""
        try:
            found = self.client.search_model_versions(f"name='{self.name}'")
        except MlflowException:
            return []
        return sorted((str(v.version) for v in found), key=int)

    def alias(self, alias: str) -> str | None:
        """Version carrying ``alias``, or None."""
        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None

    def aliases(self) -> dict[str, str | None]:
        return {a: self.alias(a) for a in (CHAMPION, CHALLENGER, PREVIOUS)}

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(self.name, version).tags)

    def find_version(self, tag: str, value: str) -> str | None:
        """The lowest version whose tag ``tag`` equals ``value``, or None."""
        for v in self.versions():
            if self.version_tags(v).get(tag) == value:
                return v
        return None

    # -- writing ----------------------------------------------------------------------
    def register(self, model_uri: str, tags: dict[str, str] | None = None) -> str:
        """Register a logged model; returns the new version number."""
        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            self.client.create_registered_model(self.name, description="tagloop product-code recognizer")
        mv = mlflow.register_model(model_uri, self.name, tags=tags)
        return str(mv.version)

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.name, alias, version)

    def _drop_alias(self, alias: str) -> None:
        if self.alias(alias) is not None:
            self.client.delete_registered_model_alias(self.name, alias)

    def promote(self, version: str, reason: str, forced_by: str | None = None) -> AliasMove:
        """``previous-champion`` <- current champion, ``champion`` <- ``version``."""
        before = self.aliases()
        old = before[CHAMPION]
        if old == version:
            raise ValueError(f"version {version} is already the champion")
        tags = {"promoted_at": _now(), "promotion_reason": reason[:4000], "replaced": old or ""}
        if forced_by:
            tags.update(forced="true", forced_by=forced_by)
        for k, v in tags.items():
            self.client.set_model_version_tag(self.name, version, k, v)
        if old is not None:
            self.set_alias(PREVIOUS, old)
        self.set_alias(CHAMPION, version)
        return AliasMove(version, old, before)

    # -- approval mode (the gate passed; a person decides) ---------------------------------
    def await_approval(self, version: str, reason: str) -> None:
        """Tag ``version`` as waiting for approval, judged against the current champion."""
        for k, v in {"approval": PENDING, "gate_champion": self.alias(CHAMPION) or "", "gate_reason": reason[:4000],
                     "awaiting_since": _now()}.items():
            self.client.set_model_version_tag(self.name, version, k, v)

    def pending_approvals(self) -> list[dict[str, str]]:
        """Versions waiting for ``approve``: version, the champion it was judged against, since when, the reason."""
        out = []
        for v in self.versions():
            tags = self.version_tags(v)
            if tags.get("approval") == PENDING:
                out.append({"version": v, "gate_champion": tags.get("gate_champion", ""),
                            "awaiting_since": tags.get("awaiting_since", ""), "gate_reason": tags.get("gate_reason", "")})
        return out

    def _decide_approval(self, version: str, by: str) -> dict[str, str]:
        if not by.strip():
            raise ValueError("--by needs a name (recorded on the version)")
        if version not in self.versions():
            raise ValueError(f"no registered version {version!r} (versions: {', '.join(self.versions()) or 'none'})")
        tags = self.version_tags(version)
        if tags.get("approval") != PENDING:
            raise ValueError(f"version {version} is not waiting for approval (approval: {tags.get('approval') or 'none'}); "
                             "`tagloop promote VERSION --by NAME` makes any version champion, bypassing the gate")
        return tags

    def approve(self, version: str, by: str, note: str = "") -> AliasMove:
        """A person approves a challenger the gate passed: it becomes champion (not ``forced``: the gate passed).

        Refused when the champion changed since the gate judged it: the evidence compared it with another model.
        """
        tags = self._decide_approval(version, by)
        judged, now = tags.get("gate_champion") or None, self.alias(CHAMPION)
        if judged != now:
            raise ValueError(f"version {version} was judged against v{judged} but the champion is now v{now}: the gate's "
                             "evidence no longer applies; run a retrain, or `tagloop promote` to bypass the gate")
        reason = f"approved by {by.strip()}" + (f" ({note.strip()})" if note.strip() else "") + \
            f"; the gate said: {tags.get('gate_reason', '')}"
        move = self.promote(version, reason)
        for k, v in {"approval": "approved", "approved_by": by.strip(), "approved_at": _now()}.items():
            self.client.set_model_version_tag(self.name, version, k, v)
        return move

    def reject(self, version: str, by: str, note: str = "") -> None:
        """A person turns down a challenger the gate passed; the champion stays."""
        self._decide_approval(version, by)
        for k, v in {"approval": "rejected", "rejected_by": by.strip(), "rejected_at": _now(),
                     "rejection_note": note.strip()[:4000]}.items():
            self.client.set_model_version_tag(self.name, version, k, v)

    def rollback(self, by: str = "") -> AliasMove:
        """``champion`` <- ``previous-champion``; ``previous-champion`` <- the version that one replaced."""
        before = self.aliases()
        target = before[PREVIOUS]
        if target is None:
            raise ValueError(f"{self.name}: no '{PREVIOUS}' alias to roll back to "
                             f"(champion is {before[CHAMPION] or 'unset'})")
        if before[CHAMPION] is not None:
            self.client.set_model_version_tag(self.name, before[CHAMPION], "rolled_back_at", _now())
            if by:
                self.client.set_model_version_tag(self.name, before[CHAMPION], "rolled_back_by", by)
        self.set_alias(CHAMPION, target)
        earlier = self.version_tags(target).get("replaced") or None
        if earlier and earlier != target:
            self.set_alias(PREVIOUS, earlier)
        else:
            self._drop_alias(PREVIOUS)
        return AliasMove(target, self.alias(PREVIOUS), before)

    # -- artifacts ----------------------------------------------------------------------
    def download(self, version: str, cache_dir: str) -> str:
        """Weights+config directory of ``version``, cached under ``cache_dir`` (versions never change)."""
        dst = version_cache_dir(mlflow.get_registry_uri(), self.name, version, cache_dir)
        if os.path.isdir(dst):
            return artifact_dir(dst)
        tmp = f"{dst}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{self.name}/{version}", dst_path=tmp)
        os.replace(tmp, dst)
        return artifact_dir(dst)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def bootstrap(registry: Registry, base_dir: str) -> str | None:
    """First use: log the shipped base model, register it as version 1 and make it the champion.

    Returns the new version, or None when the registry already had versions.
    """
    if registry.versions():
        return None
    from loop.pyfunc import log_recognizer

    with mlflow.start_run(run_name="bootstrap-base-model") as run:
        mlflow.set_tags({"tagloop.kind": "bootstrap",
                         "mlflow.note.content": "The shipped base model (synthetic data only), registered "
                                                "as the first champion."})
        mlflow.log_params({"source": "recognizer/base_model"})
        info = log_recognizer(base_dir)
    version = registry.register(info.model_uri, {"source": "base_model", "run_id": run.info.run_id})
    registry.client.set_model_version_tag(registry.name, version, "promotion_reason", "bootstrap: shipped base model")
    registry.set_alias(CHAMPION, version)
    return version


def resolve_registry_model(ref: str, home: str) -> str | None:
    """Registry reference -> local weights+config directory, or None when the registry lacks it."""
    name, kind, value = parse_model_ref(ref)
    setup_mlflow(home)
    registry = Registry(name)
    version = registry.alias(value) if kind == "alias" else value if value in registry.versions() else None
    return registry.download(version, model_cache(home)) if version else None
