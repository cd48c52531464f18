"""The learning cycle's stages as Prefect tasks: the same functions ``loop.cycle.run_cycle`` calls (``loop.stages``).

Retries only where there is a side effect or an external read (bucket, registry). The
expensive pure stages are cached with persisted results under ``$PREFECT_HOME/storage``
(``$TAGLOOP_HOME/prefect/storage``), keyed by what determines their output, so a re-run
after a crash resumes instead of redoing them:
- ``mix``: dataset version + the new and earlier sample ids + the mix recipe;
- ``evaluate``: both models' weights + every evaluation set's fingerprint.
The fine-tune resumes through its work directory instead (keyed by dataset version,
champion and recipe; ``ckpt/`` + ``best/``), which also survives a killed process mid-stage.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from loop.cycle import PLAIN, Stages
from recognizer.checkpoint import weights_sha256
from tasks.retry import API_RETRIES, IO_RETRIES


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def mix_key(context: Any, p: dict[str, Any]) -> str:
    """Cache key of the training mix: dataset version, which rows are new/earlier, recipe."""
    split = p["split"]
    return "mix-" + _digest(split.dataset_version, sorted(split.new["sample_id"]),
                            sorted(split.earlier["sample_id"]), asdict(p["cfg"]))


def evaluate_key(context: Any, p: dict[str, Any]) -> str:
    """Cache key of the scores: each role's weights + each set's fingerprint."""
    models = {role: weights_sha256(d) for role, d in p["model_dirs"].items()}
    return "evaluate-" + _digest(models, [s.fingerprint() for s in p["sets"]])


# per stage: the task's name, retries (only where there is a side effect or an external read) and caching
NO = {"cache_policy": NO_CACHE}
TASK_OPTIONS: dict[str, dict[str, Any]] = {
    "champion": {"name": "champion", **NO, **API_RETRIES},
    "ingest": {"name": "ingest", **NO, **IO_RETRIES},
    "split": {"name": "dataset-split", **NO, **IO_RETRIES},
    "mix": {"name": "training-mix", "cache_key_fn": mix_key, "persist_result": True, **IO_RETRIES},
    "finetune": {"name": "fine-tune", **NO},
    "eval_sets": {"name": "evaluation-sets", **NO, **IO_RETRIES},
    "evaluate": {"name": "evaluate", "cache_key_fn": evaluate_key, "persist_result": True},
    "gate": {"name": "gate", **NO},
    "register": {"name": "register", **NO, **API_RETRIES},
    "report": {"name": "reports", **NO, **IO_RETRIES},
}

TASK_STAGES: Stages = PLAIN.wrapped(lambda name, fn: task(fn, **TASK_OPTIONS[name]))
