"""A simulated stream of user corrections, for the demo, the end-to-end tests and benchmarks.

Everything written here is synthetic and says so: the sidecars carry
``"source": "simulated"``. Crops are rendered by ``synth/`` (optionally from a
shifted domain, e.g. a new print process), read by the champion the way the
serving app would (its reading and confidence go in ``predicted_label`` /
``confidence``), and "corrected" to the true code. A few bad uploads are mixed
in, as real buckets have them: an empty file, a truncated JPEG, a sidecar that
is not JSON, a label with characters outside the charset, and a duplicate
upload of the same crop.
"""
from __future__ import annotations

import io
import json
import random
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
from PIL import Image

from ingest.corrections import CORRECTIONS, write_correction
from bucket.storage import Storage

# A new source of crops: box-end labels in a warehouse, ink-jet dot-matrix print (never rendered
# for the base model), a fixed camera (little tilt, blur or low resolution): RenderConfig overrides.
DOT_MATRIX_DOMAIN = {"p_dot_matrix": 1.0, "p_tilt": 0.1, "max_tilt": 12.0, "p_blur": 0.1, "p_motion": 0.0,
                     "p_low_res": 0.03, "p_curve": 0.0, "p_perspective": 0.2}

BAD_KINDS = ("empty_image", "truncated_jpeg", "bad_sidecar_json", "label_charset", "duplicate")


@dataclass
class SeedSummary:
    day: str
    n_good: int
    n_bad: int
    bad: dict[str, int] = field(default_factory=dict)
    n_corrected: int = 0          # crops whose champion reading the simulated user had to fix
    poisoned: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def seed_corrections(storage: Storage, n: int, day: str, seed: int, render_cfg=None,
                     model_dir: str | None = None, n_bad: int = 5, poison: bool = False,
                     stream: Callable[[int, int], tuple[list[bytes], list[str]]] | None = None) -> SeedSummary:
    """Write ``n`` simulated corrections (+ ``n_bad`` bad uploads) under ``corrections/<day>/``.

    Crops come from ``synth``'s renderer (``render_cfg``), or from ``stream`` ((n, seed) -> JPEG bytes and
    labels, e.g. ``synth.newprint.serif_plus``: a print the renderer never draws) when given.
    ``poison`` shuffles the corrected labels among the crops (a labeling accident):
    every sidecar is well formed, only the labels are wrong.
    """
    from recognizer.predict import Predictor
    from synth.render import RenderConfig, Renderer

    if stream is not None:
        images, labels = stream(n, seed)
        read = lambda predictor: predictor.predict_blobs(images)  # noqa: E731
    else:
        rng = np.random.default_rng(seed)
        renderer = Renderer(render_cfg or RenderConfig(), seed=seed)
        crops = [renderer.render(rng) for _ in range(n)]
        images = [jpeg_bytes(c.image, int(rng.integers(80, 96))) for c in crops]
        labels = [c.label for c in crops]
        read = lambda predictor: predictor.predict_arrays([c.image for c in crops])  # noqa: E731
    # the champion's reading, as the app would have shown it (without a model: the true code at 0.5)
    reads = ([(p.text, p.confidence) for p in read(Predictor(model_dir))] if model_dir
             else [(label, 0.5) for label in labels])
    if poison:
        random.Random(seed).shuffle(labels)
    summary = SeedSummary(day=day, n_good=n, n_bad=0, poisoned=poison)
    for i, (img, (pred, conf), label) in enumerate(zip(images, reads, labels)):
        summary.n_corrected += pred != label
        write_correction(storage, img, "jpg", predicted_label=pred, confidence=round(float(conf), 4),
                         corrected_label=label, model_version="champion", source="simulated",
                         crop_id=f"sim-{seed}-{i:05d}", created_at=f"{day}T{2 + i % 20:02d}:{i % 60:02d}:00Z")
    for k in range(n_bad):
        kind = BAD_KINDS[k % len(BAD_KINDS)]
        _bad_upload(storage, kind, day, f"sim-{seed}-bad{k:03d}", images[k % n], labels[k % n])
        summary.bad[kind] = summary.bad.get(kind, 0) + 1
        summary.n_bad += 1
    return summary


def _bad_upload(storage: Storage, kind: str, day: str, crop_id: str, image: bytes, label: str) -> None:
    created = f"{day}T23:{int(crop_id[-3:]) % 60:02d}:00Z"

    def sidecar(lbl: str, name: str) -> bytes:
        return json.dumps({"crop_id": crop_id, "image": name, "predicted_label": lbl, "confidence": 0.4,
                           "corrected_label": lbl, "model_version": "champion", "created_at": created,
                           "source": "simulated"}).encode()

    base = f"{CORRECTIONS}{day}/{crop_id}"
    recoded = jpeg_bytes(np.asarray(Image.open(io.BytesIO(image)).convert("RGB")), 70)  # new bytes, same crop
    if kind == "empty_image":
        storage.write(f"{base}.jpg", b"", "image/jpeg")
        storage.write(f"{base}.json", sidecar(label, f"{crop_id}.jpg"), "application/json")
    elif kind == "truncated_jpeg":
        storage.write(f"{base}.jpg", image[: len(image) // 3], "image/jpeg")
        storage.write(f"{base}.json", sidecar(label, f"{crop_id}.jpg"), "application/json")
    elif kind == "bad_sidecar_json":
        storage.write(f"{base}.jpg", recoded, "image/jpeg")
        storage.write(f"{base}.json", b"{'crop_id': not json", "application/json")
    elif kind == "label_charset":
        storage.write(f"{base}.jpg", recoded, "image/jpeg")
        storage.write(f"{base}.json", sidecar(label.lower() + "ü", f"{crop_id}.jpg"), "application/json")
    elif kind == "duplicate":  # the same crop uploaded twice under a new id
        write_correction(storage, image, "jpg", predicted_label=label, confidence=0.4, corrected_label=label,
                         model_version="champion", source="simulated", crop_id=crop_id, created_at=created)
    else:
        raise ValueError(f"unknown bad upload kind {kind!r}")
