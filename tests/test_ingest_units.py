"""Pure pieces of ingest: features, known formats, splits, versions, the CLI."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from flows.cli import main
from ingest import dataset
from ingest.corrections import parse_legacy_timestamp
from ingest.review import matches_known_format, suspicion
from ingest_helpers import add, png_bytes
from crops.features import crop_features, hamming
from synth.grammar import CodeSampler


def test_features_ranges_and_hashes(synth_crops):
    data = png_bytes(synth_crops[0].image)
    row, rgb = crop_features(data, synth_crops[0].label, 0.5)
    h, w = synth_crops[0].image.shape[:2]
    assert rgb is not None and (row["width"], row["height"]) == (w, h)
    assert row["aspect"] == pytest.approx(w / h) and 0 <= row["brightness"] <= 255
    assert row["contrast"] > 3 and row["blur"] > 0 and row["charset_ok"] and len(row["content_hash"]) == 64
    brighter = np.clip(synth_crops[0].image.astype(int) + 12, 0, 255).astype(np.uint8)
    near, _ = crop_features(png_bytes(brighter), "X", None)
    assert near["content_hash"] != row["content_hash"] and hamming(near["phash"], row["phash"]) <= 6
    other, _ = crop_features(png_bytes(synth_crops[1].image), "X", None)
    assert hamming(other["phash"], row["phash"]) > 6
    blank, _ = crop_features(png_bytes(np.full((40, 120, 3), 250, np.uint8)), "X", None)
    assert blank["contrast"] < 1
    bad, none = crop_features(b"garbage", "ab", None)
    assert none is None and bad["decode_status"] == "corrupt_image" and not bad["charset_ok"]


def test_every_grammar_code_matches_a_known_format():
    rng, sampler = random.Random(0), CodeSampler()
    codes = [sampler.sample(rng)[0] for _ in range(2000)]
    assert [c for c in codes if not matches_known_format(c)] == []
    for code in ["DD1391-100", "AV3133 001", "EE8484", "162058C", "M9160C", "1RM01263D-125", "VN0A2XSZW00",
                 "374923-02", "SN 149337 COLOR:WSL", "DX-SHJ1-111(6)"]:
        assert matches_known_format(code), code
    for junk in ["DD1391--100", "-AB123", "((((((", "A.B.C.D.E", "AB12 ("]:
        assert not matches_known_format(junk), junk


def test_suspicion_rules():
    assert suspicion("DD1391-100", "DD1391-100", 0.99) == []
    assert suspicion("DD1391-100", "DD1391-108", 0.90) == []           # champion unsure: trust the user
    assert suspicion("DD1391-100", "DD1391-108", 0.97) == ["champion_disagrees"]
    assert suspicion("DD1391--100", None, None) == ["unknown_format"]


def test_legacy_timestamps():
    assert parse_legacy_timestamp("20240102030405") == "2024-01-02T03:04:05Z"
    assert parse_legacy_timestamp("1704164645") == "2024-01-02T03:04:05Z"
    assert parse_legacy_timestamp("1704164645000") == "2024-01-02T03:04:05Z"
    assert parse_legacy_timestamp("yesterday") is None


def _rows(specs):
    return [{"sample_id": sid, "label": lab, "phash": ph, "content_hash": sid} for sid, lab, ph in specs]


def test_splits_are_leak_free_stable_and_heldout_grows():
    rng = np.random.default_rng(0)
    ph = lambda: f"{int(rng.integers(0, 2**63)):016x}"   # noqa: E731
    v1_rows = dataset.assign_splits(dataset.empty_manifest(), _rows([(f"s{i}", f"AB{i:04d}-001", ph()) for i in range(200)]), 0.2)
    v1 = dataset.merge(dataset.empty_manifest(), v1_rows)
    held1 = (v1["split"] == "heldout").sum()
    assert 20 < held1 < 60
    twin = v1.iloc[0]
    near = f"{int(twin['phash'], 16) ^ 0b101:016x}"      # 2 bits away from sample s0
    new = _rows([("t0", twin["label"].replace("-", " "), ph()),     # same code, other spelling
                 ("t1", "ZZ9999-999", near)]                       # new code, near-duplicate image
                + [(f"u{i}", f"CD{i:04d}-002", ph()) for i in range(100)])
    v2 = dataset.merge(v1, dataset.assign_splits(v1, new, 0.2))
    split = dict(zip(v2["sample_id"], v2["split"]))
    assert split["t0"] == split["s0"] and split["t1"] == split["s0"]
    assert all(split[s] == old for s, old in zip(v1["sample_id"], v1["split"]))     # nobody moved
    by_code = v2.groupby("code_key")["split"].nunique()
    assert (by_code == 1).all()                                                       # no code in both
    assert (v2["split"] == "heldout").sum() > held1                                   # held-out grows
    assert dataset.version_id(v2) != dataset.version_id(v1)
    assert dataset.version_id(v2.sample(frac=1, random_state=1)) == dataset.version_id(v2)


@pytest.mark.slow
def test_cli_ingest_json_accounts_for_every_object(tmp_path, synth_crops, capsys, monkeypatch):
    monkeypatch.setenv("TAGLOOP_HOME", str(tmp_path / "home"))
    root = tmp_path / "bucket"
    root.mkdir()
    from bucket.storage import open_storage

    store = open_storage(str(root))
    for i, c in enumerate(synth_crops[:3]):
        add(store, f"c{i}", png_bytes(c.image), c.label)
    add(store, "zero", b"", "AB1234")
    args = ["ingest", "--bucket", f"file://{root}", "--json", "--min-age-s", "0"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"dataset_version", "n_new", "n_accepted", "n_quarantined", "n_review", "quarantine_reasons"} <= set(out)
    assert out["n_new"] == 4 == out["n_accepted"] + out["n_quarantined"] + out["n_review"]
    assert out["quarantine_reasons"] == {"empty_image": 1}
    docs = list((tmp_path / "home" / "reports" / "validation").rglob("index.html"))
    assert docs and store.list(f"reports/validation/{out['run_id']}/data_docs/")
    # the Data Docs in the bucket: the run's status is the batch's (1 of 4 quarantined, the batch accepted),
    # every page links the offline stylesheet copied beside it, the index lists the pages
    base = f"reports/validation/{out['run_id']}"
    results = json.loads(store.read(f"{base}/results.json"))
    assert results["success"] is True and results["meta"]["every_row_passed"] is False
    assert results["meta"]["tagloop"].startswith("accepted: 1 of 4 rows failed an expectation (25%, limit 50%)")
    pages = [o.name for o in store.list(f"{base}/data_docs/") if o.name.endswith(".html")]
    (validation,) = [p for p in pages if "/validations/" in p]
    page = store.read(validation).decode()
    assert "Succeeded" in page and "accepted: 1 of 4 rows" in page
    assert '<link rel="stylesheet" href="../../../../static/styles/tagloop-data-docs.css">' in page
    assert store.read(f"{base}/data_docs/static/styles/tagloop-data-docs.css").startswith(b"/* tagloop")
    index = store.read(f"{base}/data_docs/index.html").decode()
    assert 'href="static/styles/tagloop-data-docs.css"' in index and validation.split("data_docs/")[1] in index
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["n_new"] == 0 and again["dataset_version"] == out["dataset_version"]
    assert main(["ingest", "--bucket", str(tmp_path / "missing"), "--json"]) == 3
    assert "does not exist" in capsys.readouterr().err


def test_writer_follows_the_corrections_contract(tmp_path, synth_crops):
    from ingest.corrections import group_objects
    from bucket.storage import open_storage

    store = open_storage(str(tmp_path))
    cid = add(store, "0b6f", png_bytes(synth_crops[0].image), "DD1391-100", predicted="DD1391-1O0",
              created_at="2026-11-20T03:12:09Z")
    assert [o.name for o in store.list("")] == ["corrections/2026-11-20/0b6f.json", "corrections/2026-11-20/0b6f.png"]
    doc = json.loads(store.read("corrections/2026-11-20/0b6f.json"))
    assert doc == {"crop_id": cid, "image": "0b6f.png", "predicted_label": "DD1391-1O0", "confidence": 0.6,
                   "corrected_label": "DD1391-100", "model_version": "7", "created_at": "2026-11-20T03:12:09Z",
                   "source": "web"}
    (item,) = group_objects(store.list("corrections/"))
    assert (item.key, item.problem, item.image_name) == ("corrections/2026-11-20/0b6f", "", "corrections/2026-11-20/0b6f.png")


@pytest.mark.slow
def test_cli_ingest_over_threshold_exits_3_and_says_why(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TAGLOOP_HOME", str(tmp_path / "home"))
    from bucket.storage import open_storage

    store = open_storage(str(tmp_path / "b"))
    (tmp_path / "b").mkdir()
    add(store, "zero", b"", "AB1234")
    assert main(["ingest", "--bucket", str(tmp_path / "b"), "--model", "none", "--min-age-s", "0"]) == 3
    err = capsys.readouterr().err
    assert "1/1 new corrections failed validation" in err and "--max-failed-share" in err


def test_a_truncated_jpeg_is_corrupt_not_empty():
    from crops.features import decode_status
    from crops.image import CropError

    assert decode_status(CropError("not a readable image: image file is truncated (10 bytes not processed)")) == "corrupt_image"
    assert decode_status(CropError("empty file (0 bytes)")) == "empty_image"
    assert decode_status(CropError("image too small (1x5)")) == "image_too_small"


def test_validation_status_is_the_batch_outcome():
    """GX says "failed" whenever one row fails; the run's status says whether the batch was accepted."""
    import pandas as pd

    from ingest.validate import run_suite

    good = {"structure": "ok", "decode_status": "ok", "width": 120, "height": 30, "aspect": 4.0, "contrast": 40.0,
            "label": "DD1391-100", "confidence": 0.9, "created_ts": 1.75e9, "n_labels_for_hash": 1, "seen_before": False}
    rows = [{**good, "first_hash": f"h{i}"} for i in range(4)]
    rows[0]["label"], rows[1]["decode_status"] = "dd$1391-100", "corrupt_image"
    table = pd.DataFrame(rows)
    now = pd.Timestamp("2026-11-29", tz="UTC").to_pydatetime()
    accepted = run_suite(table, "r1", now=now, max_failed_share=0.5)
    assert accepted.success and accepted.reasons == {0: ["label_charset"], 1: ["corrupt_image"]}
    assert accepted.results["meta"]["tagloop"].startswith("accepted: 2 of 4 rows")
    rejected = run_suite(table, "r2", now=now, max_failed_share=0.25)
    assert not rejected.success and rejected.results["meta"]["tagloop"].startswith("REJECTED: 2 of 4 rows")
    assert not run_suite(table, "r3", now=now).success                  # no limit: GX's own status


def test_a_run_id_that_looks_like_a_date_does_not_break_validation():
    """Ingest run ids are ``<UTC time>Z-<6 hex>``; GX parses a run name it is given without a time as a date, and
    about one hex suffix in 2,000 (``92ad7a``) reads as a UTC offset beyond 24 h: validation crashed there (a CI
    run on 2026-12-08) and a few others would have stored a wrong run time. The run's time is the clock's."""
    import pandas as pd

    from ingest.validate import run_suite

    row = {"structure": "ok", "decode_status": "ok", "width": 120, "height": 30, "aspect": 4.0, "contrast": 40.0,
           "label": "DD1391-100", "confidence": 0.9, "created_ts": 1.75e9, "n_labels_for_hash": 1, "seen_before": False,
           "first_hash": "h0"}
    now = pd.Timestamp("2026-12-08 03:21:45", tz="UTC").to_pydatetime()
    for run_id in ("20261208T032145Z-92ad7a", "20261208T032145Z-1848ad"):
        outcome = run_suite(pd.DataFrame([row]), run_id, now=now)
        assert outcome.success
        assert outcome.results["meta"]["run_id"]["run_time"].startswith("2026-12-08")
