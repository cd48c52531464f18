"""Write rendered crops to ``images/`` (JPEG q95 by default, like phone crops) + ``labels.csv``
(with slice columns), in parallel."""
from __future__ import annotations

import csv
import os
from dataclasses import asdict
from typing import Callable, Iterator

import cv2
import numpy as np

from crops.slices import length_band, tilt_band
from synth.pools import run_shards
from synth.render import Crop, Renderer, RenderConfig

COLUMNS = ["filename", "label", "brand", "condition", "tags", "length", "tilt", "rotation", "font"]


def iter_crops(n: int, seed: int, cfg: RenderConfig | None = None) -> Iterator[Crop]:
    """Yield ``n`` crops in memory, deterministic for ``seed``."""
    renderer = Renderer(cfg, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield renderer.render(rng)


def _write_chunk(args: tuple) -> list[dict]:
    out_dir, start, n, seed, cfg_dict, ext = args
    rows = []
    for k, crop in enumerate(iter_crops(n, seed, RenderConfig(**cfg_dict))):
        name = f"crop_{start + k:06d}.{ext}"
        bgr = cv2.cvtColor(crop.image, cv2.COLOR_RGB2BGR)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
        if not cv2.imwrite(os.path.join(out_dir, "images", name), bgr, params):
            raise OSError(f"could not write {name}")
        rows.append({"filename": name, "label": crop.label, "brand": crop.brand,
                     "condition": crop.condition, "tags": "|".join(sorted(set(crop.tags))) or "clean",
                     "length": length_band(crop.label), "tilt": tilt_band(crop.angle),
                     "rotation": crop.rotation, "font": crop.font})
    return rows


def write_dataset(out_dir: str, n: int, seed: int, cfg: RenderConfig | None = None,
                  workers: int = 2, chunk: int = 250, ext: str = "jpg",
                  on_crops: Callable[[int], None] | None = None) -> str:
    """Render ``n`` crops to ``out_dir/images`` and ``out_dir/labels.csv``; returns the CSV path.

    Output depends only on (n, seed, cfg, chunk), not on ``workers``. ``on_crops(k)``: k more crops are
    written (a progress bar).
    """
    cfg = cfg or RenderConfig()
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    jobs = [(out_dir, s, min(chunk, n - s), seed * 7919 + s, asdict(cfg), ext) for s in range(0, n, chunk)]
    parts = run_shards(_write_chunk, jobs, workers, on_done=on_crops and (lambda i: on_crops(jobs[i][2])))
    path = os.path.join(out_dir, "labels.csv")
    with open(path + ".tmp", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for rows in parts:
            w.writerows(rows)
    os.replace(path + ".tmp", path)
    return path


def read_rows(labels_csv: str) -> list[dict[str, str]]:
    with open(labels_csv, newline="") as f:
        return list(csv.DictReader(f))
