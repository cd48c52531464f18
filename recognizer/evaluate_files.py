"""``tagloop evaluate``: read labelled crops with the full predictor, score overall and per slice."""
from __future__ import annotations

import csv
import os

from recognizer.metrics import TextMatch
from recognizer.predict import Predictor

MAX_TABLE_VALUES = 12   # slice columns with more distinct values stay in the JSON only


def read_labels(path: str) -> tuple[list[dict[str, str]], list[str]]:
    """Rows of a labels CSV and its slice columns (all but filename/label)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if "filename" not in cols or "label" not in cols:
            raise ValueError(f"{path}: needs at least the columns filename,label (has {cols})")
        rows = list(reader)
    return rows, [c for c in cols if c not in ("filename", "label")]


def evaluate_labelled(images_dir: str, labels_csv: str, model_dir: str, backend: str = "auto",
                      predictor: Predictor | None = None) -> dict:
    """Exact match / normalised edit distance overall and per slice; failures listed."""
    rows, slice_cols = read_labels(labels_csv)
    predictor = predictor or Predictor(model_dir, backend=backend)
    preds = predictor.predict_files([os.path.join(images_dir, r["filename"]) for r in rows])
    tm, errors = TextMatch(), []
    for r, p in zip(rows, preds):
        ok = tm.update(p.text, r["label"], {c: r.get(c, "") for c in slice_cols})
        if not ok:
            errors.append({"filename": r["filename"], "label": r["label"], "prediction": p.text,
                           "confidence": round(p.confidence, 4), **({"error": p.error} if p.error else {})})
    summary = tm.summary()
    summary["model"] = model_dir
    summary["errors"] = errors[:200]
    return summary


def format_summary(summary: dict) -> str:
    if not summary["n"]:
        return "exact match -  norm. edit distance -  (n=0: no labelled crops)"
    lines = [f"exact match {summary['exact_match']:.4f}  norm. edit distance "
             f"{summary['norm_edit_distance']:.4f}  (n={summary['n']})"]
    for col, vals in summary.get("slices", {}).items():
        if len(vals) > MAX_TABLE_VALUES:
            continue
        lines.append(f"  by {col}:")
        for v, s in vals.items():
            lines.append(f"    {v:<16} {s['exact_match']:.4f}  (n={s['n']})")
    return "\n".join(lines)
