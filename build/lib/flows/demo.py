"""``tagloop demo`` (foundation stage): render sample crops and read them with the shipped model."""
from __future__ import annotations

import os
import time

from flows.settings import Settings, base_model_dir


def run_demo(settings: Settings, n: int = 12, seed: int = 2026) -> int:
    from recognizer.metrics import exact_match
    from recognizer.predict import Predictor
    from synth.dataset import read_rows, write_dataset
    from synth.render import RenderConfig

    out = settings.path("demo", "samples")
    print(f"[1/2] rendering {n} simulated tag crops (held-out fonts, some turned 90/180 degrees) -> {out}")
    t = time.time()
    labels = write_dataset(out, n, seed, RenderConfig(fonts="heldout", p_rot90=0.1, p_rot180=0.1), workers=1)
    print(f"      done in {time.time() - t:.1f}s")
    print(f"[2/2] reading them with the shipped base model ({base_model_dir()})")
    predictor = Predictor(base_model_dir())
    rows = read_rows(labels)
    preds = predictor.predict_files([os.path.join(out, "images", r["filename"]) for r in rows])
    print(f"\n{'file':<16}{'condition':<14}{'label':<22}{'prediction':<22}{'conf':>6}  ok")
    hits = 0
    for r, p in zip(rows, preds):
        ok = exact_match(p.text, r["label"])
        hits += ok
        print(f"{r['filename']:<16}{r['condition']:<14}{r['label']:<22}{p.text:<22}{p.confidence:>6.2f}  "
              f"{'yes' if ok else 'NO'}")
    print(f"\nexact match {hits}/{len(rows)} with the {predictor.backend} backend")
    return 0
