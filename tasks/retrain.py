"""The learning cycle's stages as Prefect tasks: the same functions ``loop.cycle.run_cycle`` calls (``loop.stages``).

Retries only where there is a side effect or an external read (bucket, registry). The
expensive pure stages are cached with persisted results under ``$PREFECT_HOME/storage``
(``$TAGLOOP_HOME/prefect/storage``), keyed by what determines their output, so a re-run
after a crash resumes instead of redoing them:
- ``mix``: dataset version + the new and earlier sample ids + the mix recipe;
- ``evaluate``: both models' weights + every evaluation set's fingerprint.
The fine-tune resumes through its work directory instead (keyed by dataset version,
champion and recipe; ``ckpt/`` + ``best/``), which also survives a killed process mid-stage.

No persisted result is a pickle: the scores use Prefect's JSON serializer, the mix ``MixSerializer``
(one ``.npz`` archive read with ``allow_pickle=False``, its record as JSON). Prefect's result record
names the serializer it was written with, so the storage directory must stay tagloop's own
(``$TAGLOOP_HOME/prefect/storage``): a record planted there could still name pickle.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import asdict
from typing import Any, Literal

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.serializers import Serializer

from loop.cycle import PLAIN, Stages
from loop.mix import Anchor, Mix
from recognizer.checkpoint import weights_sha256
from recognizer.pool import Pool
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


class MixSerializer(Serializer):
    """A training mix (``loop.mix.Mix``) as one ``.npz`` archive (base64): its pools' pixels, widths, offsets and labels,
    the anchor's crops flattened with their shapes, the info dict as JSON; read with ``allow_pickle=False``."""

    type: Literal["tagloop-mix-npz"] = "tagloop-mix-npz"

    def dumps(self, obj: Mix) -> bytes:
        arrays: dict[str, np.ndarray] = {"info": np.frombuffer(json.dumps(obj.info).encode(), np.uint8)}
        for name, pool in (("train", obj.train), ("val", obj.val)):
            arrays.update({f"{name}.height": np.array(pool.height), f"{name}.pixels": pool.pixels,
                           f"{name}.widths": pool.widths, f"{name}.offsets": pool.offsets,
                           f"{name}.labels": np.array(pool.labels, dtype=str)})
        if obj.anchor is not None:
            arrays["anchor.pixels"] = np.concatenate([im.ravel() for im in obj.anchor.images]) \
                if obj.anchor.images else np.zeros(0, np.uint8)
            arrays["anchor.shapes"] = np.array([im.shape for im in obj.anchor.images], np.int64).reshape(-1, 3)
            arrays["anchor.labels"] = np.array(obj.anchor.labels, dtype=str)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return base64.b64encode(buf.getvalue())        # Prefect keeps a result record as text

    def loads(self, blob: bytes) -> Mix:
        with np.load(io.BytesIO(base64.b64decode(blob)), allow_pickle=False) as z:
            pools = [Pool(int(z[f"{n}.height"]), z[f"{n}.pixels"], z[f"{n}.widths"], z[f"{n}.offsets"],
                          [str(x) for x in z[f"{n}.labels"]]) for n in ("train", "val")]
            anchor = None
            if "anchor.pixels" in z.files:
                flat, images, at = z["anchor.pixels"], [], 0
                for shape in z["anchor.shapes"]:
                    n = int(np.prod(shape))
                    images.append(flat[at:at + n].reshape(tuple(int(x) for x in shape)))
                    at += n
                anchor = Anchor(images, [str(x) for x in z["anchor.labels"]])
            return Mix(pools[0], pools[1], json.loads(z["info"].tobytes()), anchor)


# per stage: the task's name, retries (only where there is a side effect or an external read) and caching
NO = {"cache_policy": NO_CACHE}
TASK_OPTIONS: dict[str, dict[str, Any]] = {
    "champion": {"name": "champion", **NO, **API_RETRIES},
    "ingest": {"name": "ingest", **NO, **IO_RETRIES},
    "split": {"name": "dataset-split", **NO, **IO_RETRIES},
    "mix": {"name": "training-mix", "cache_key_fn": mix_key, "persist_result": True,
            "result_serializer": MixSerializer(), **IO_RETRIES},
    "finetune": {"name": "fine-tune", **NO},
    "eval_sets": {"name": "evaluation-sets", **NO, **IO_RETRIES},
    "evaluate": {"name": "evaluate", "cache_key_fn": evaluate_key, "persist_result": True,
                 "result_serializer": "json"},
    "gate": {"name": "gate", **NO},
    "register": {"name": "register", **NO, **API_RETRIES},
    "report": {"name": "reports", **NO, **IO_RETRIES},
}

TASK_STAGES: Stages = PLAIN.wrapped(lambda name, fn: task(fn, **TASK_OPTIONS[name]))
