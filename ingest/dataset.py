"""Dataset versions: a Parquet manifest per version, leak-free stable splits.

``datasets/<version>/manifest.parquet`` holds every sample of that version
(cumulative). Version id = first 16 hex of sha256 over the canonical JSON of
the rows sorted by ``sample_id``. Split rules for a new sample, in order:
1. its normalized product code already has a split -> the same split
   (so a code is never in both train and held-out);
2. its perceptual hash is within ``NEAR_DUP_BITS`` of a sample with a split
   -> that split (near-duplicates together; rule 1 wins on conflict);
3. otherwise a hash of the code decides (``heldout_share`` of codes held out).
Existing rows are copied unchanged, so an item never changes split.
"""
from __future__ import annotations

import hashlib
import io
import json
import re

import pandas as pd

from bucket.storage import Storage
from crops.features import hamming

NEAR_DUP_BITS = 6
MANIFEST_COLUMNS = [
    "sample_id", "source_object", "source", "content_hash", "phash", "label", "code_key", "split",
    "created_at", "crop_id", "predicted_label", "sidecar_confidence", "model_version", "sidecar_source",
    "champion_prediction", "champion_confidence", "ingest_run",
    "width", "height", "aspect", "brightness", "contrast", "blur", "label_length",
]


def code_key(label: str) -> str:
    """Normalized product code: upper case, separators removed (``AV3133 001`` == ``AV3133-001``)."""
    return re.sub(r"[^0-9A-Z#()]", "", label.upper())


def empty_manifest() -> pd.DataFrame:
    return _typed(pd.DataFrame({c: pd.Series(dtype="object") for c in MANIFEST_COLUMNS}))


def _hash_split(key: str, heldout_share: float) -> str:
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 10_000
    return "heldout" if bucket < heldout_share * 10_000 else "train"


def assign_splits(existing: pd.DataFrame, new_rows: list[dict], heldout_share: float) -> list[dict]:
    """Set ``code_key`` and ``split`` on ``new_rows`` (in place, returned) following the module rules."""
    by_code = dict(zip(existing["code_key"], existing["split"]))
    seen = list(zip(existing["phash"], existing["split"]))
    for row in new_rows:
        key = row["code_key"] = code_key(row["label"])
        split = by_code.get(key)
        if split is None and row.get("phash"):
            split = next((s for p, s in seen if p and hamming(p, row["phash"]) <= NEAR_DUP_BITS), None)
        row["split"] = split or _hash_split(key, heldout_share)
        by_code.setdefault(key, row["split"])
        seen.append((row.get("phash"), row["split"]))
    return new_rows


def merge(existing: pd.DataFrame, new_rows: list[dict]) -> pd.DataFrame:
    """Existing rows unchanged + new rows, sorted by sample_id, canonical columns only."""
    add = pd.DataFrame([{c: r.get(c) for c in MANIFEST_COLUMNS} for r in new_rows], columns=MANIFEST_COLUMNS)
    out = pd.concat([existing[MANIFEST_COLUMNS], add], ignore_index=True) if len(existing) else add
    out = out.drop_duplicates("sample_id", keep="first")
    return _typed(out.sort_values("sample_id", kind="stable").reset_index(drop=True))


NUMERIC = ["sidecar_confidence", "champion_confidence", "width", "height", "aspect", "brightness",
           "contrast", "blur", "label_length"]


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns float64, the rest object (None for missing): stable through Parquet."""
    df = df.copy()
    for c in MANIFEST_COLUMNS:
        if c in NUMERIC:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
        else:
            df[c] = df[c].astype("object").where(df[c].notna(), None)
    return df


def version_id(manifest: pd.DataFrame) -> str:
    """Content hash of the manifest rows (order-independent: rows are sorted by sample_id)."""
    rows = manifest.sort_values("sample_id")[MANIFEST_COLUMNS].to_dict("records")
    canon = json.dumps(rows, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def manifest_path(version: str) -> str:
    return f"datasets/{version}/manifest.parquet"


def write_version(storage: Storage, manifest: pd.DataFrame, parent: str | None, run_id: str) -> str:
    """Write ``datasets/<version>/manifest.parquet`` (+ ``version.json``); returns the version id."""
    version = version_id(manifest)
    buf = io.BytesIO()
    manifest.to_parquet(buf, index=False)
    storage.write(manifest_path(version), buf.getvalue(), "application/vnd.apache.parquet")
    meta = {"version": version, "parent": parent, "run_id": run_id, "n_rows": len(manifest),
            "n_by_split": {str(k): int(v) for k, v in manifest["split"].value_counts().items()}}
    storage.write(f"datasets/{version}/version.json", json.dumps(meta, indent=1).encode(), "application/json")
    return version


def read_manifest(storage: Storage, version: str | None) -> pd.DataFrame:
    """The manifest of ``version`` (empty when None); a recorded but missing version raises."""
    if not version:
        return empty_manifest()
    data = storage.read(manifest_path(version))
    return _typed(pd.read_parquet(io.BytesIO(data)))
