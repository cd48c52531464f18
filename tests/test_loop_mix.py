"""Training mix: ratios, replay, validation by product code, targeting the champion's errors; extra label chars."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingest.dataset import code_key
from ingest.validate import label_regex
from ingest_helpers import EchoReader, add, png_bytes
from loop.mix import MixConfig, build_mix, plan_targets

NIKE, ADIDAS = "DD1391-100", "GY7924"


def _rows(crops, labels, preds, split="train", prefix="s") -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame({"sample_id": [f"{prefix}{i}" for i in range(n)], "source_object": [f"{prefix}{i}" for i in range(n)],
                         "label": labels, "code_key": [code_key(x) for x in labels], "split": [split] * n,
                         "champion_prediction": preds, "brightness": [200.0] * n, "contrast": [60.0] * n,
                         "blur": [300.0] * n, "height": [40.0] * n}), \
        {f"{prefix}{i}": png_bytes(crops[i % len(crops)].image) for i in range(n)}


def test_plan_targets_follows_the_champions_errors():
    labels = [f"DD{1000 + i}-100" for i in range(10)] + [f"GY{7000 + i}" for i in range(10)] + ["AB12+34"]
    preds = [f"DD{1000 + i}-1O0" for i in range(10)] + labels[10:20] + ["AB1234"]   # nike misread, adidas right
    df = pd.DataFrame({"label": labels, "champion_prediction": preds, "brightness": [50.0] * 10 + [200.0] * 11,
                       "contrast": 60.0, "blur": 300.0, "height": 40.0})   # the misread nike crops are light-on-dark
    plan = plan_targets(df)
    from synth.grammar import DEFAULT_MIX

    assert plan.brand_mix["nike"] / DEFAULT_MIX["nike"] > 3.5 and plan.brand_mix["adidas"] == DEFAULT_MIX["adidas"]
    assert plan.errors["family"]["nike"]["error_rate"] == 1.0 and plan.errors["family"]["adidas"]["error_rate"] == 0
    assert plan.inject_chars == "+" and plan.char_weights["+"] == 1.0 and "Y" not in plan.char_weights
    assert plan.errors["condition"]["inverted"] == {"n": 10, "error_rate": 1.0}
    assert plan.render == {"p_inverted": pytest.approx(0.14 * 4)}      # RenderConfig default x (1 + 3 x error rate)


def test_build_mix_ratios_replay_and_validation(synth_crops):
    labels = [f"DD{1000 + i}-100" for i in range(80)]
    new, blobs = _rows(synth_crops, labels, [x.replace("0", "O") for x in labels])
    old, old_blobs = _rows(synth_crops, [f"GY{7000 + i}" for i in range(200)], [None] * 200, prefix="o")
    held = _rows(synth_crops, ["CU4874-001"], [None], split="heldout", prefix="h")[0]
    read = {**blobs, **old_blobs}.__getitem__
    mix = build_mix(pd.concat([new, held]), old, read, MixConfig(new=0.5, replay=0.25, synthetic=0.25, min_synthetic=0,
                                                                 min_val=10, val_share=0.2, seed=1, anchor=22))
    c = mix.info["counts"]
    assert c["new"] + c["val_real"] == 80 and 5 <= c["val_real"] <= 30
    assert c["replay"] == round(c["new"] / 2) and c["synthetic_targeted"] + c["synthetic_plain"] == round(c["new"] / 2)
    assert len(mix.train) == c["new"] + c["replay"] + c["synthetic_targeted"] + c["synthetic_plain"]
    val_codes = set(mix.val.labels) & set(labels)
    assert val_codes and not val_codes & set(mix.train.labels)          # a code is never in both
    assert "CU4874-001" not in mix.train.labels + mix.val.labels          # held-out rows never trained on
    assert mix.info["shares"] == {"new": 0.5, "replay": 0.25, "synthetic": 0.25}
    assert mix.info["plan"]["brand_mix"]["nike"] > mix.info["plan"]["brand_mix"]["adidas"]
    # the anchor: drawn like the regression suite (every family alike), full size, never trained on
    from synth.grammar import FAMILIES
    assert len(mix.anchor) == 22 == 2 * len(FAMILIES) and c["anchor"] == 22
    assert not set(mix.anchor.labels) & set(mix.train.labels) and min(im.shape[0] for im in mix.anchor.images) > 0
    more = build_mix(new, old, read, MixConfig(min_synthetic=2 * c["new"], min_val=0, val_share=0.2, seed=1, anchor=0, workers=1))
    m = more.info["counts"]
    assert m["real_repeat"] == 4 and len(more.train) == 4 * (m["new"] + m["replay"]) + 2 * m["new"]
    first = build_mix(new, old.iloc[:0], read, MixConfig(min_synthetic=0, min_val=0, seed=1, anchor=0, workers=1))
    assert first.info["counts"]["replay"] == 0 and first.info["counts"]["replay_filled_by_synthetic"] > 0
    with pytest.raises(ValueError, match="shares"):
        MixConfig(new=0)


def test_extra_label_chars_are_admitted_only_when_configured(bucket, synth_crops, monkeypatch):
    from flows.settings import Settings
    from ingest.pipeline import IngestConfig, run_ingest

    add(bucket, "plus", png_bytes(synth_crops[0].image), "AB12+34-100")
    monkeypatch.delenv("TAGLOOP_EXTRA_CHARS", raising=False)
    assert Settings.from_env().extra_chars == "" and label_regex() == r"^[0-9A-Z \-./:()#]*$"
    s = run_ingest(bucket, IngestConfig(max_failed_share=1.0, min_age_s=0), EchoReader())
    assert s.quarantine_reasons == {"label_charset": 1}
    add(bucket, "plus2", png_bytes(synth_crops[1].image), "CD34+56-200")
    monkeypatch.setenv("TAGLOOP_EXTRA_CHARS", "+&")          # read once at the top, handed down in the config
    extra = Settings.from_env().extra_chars
    s = run_ingest(bucket, IngestConfig(max_failed_share=1.0, min_age_s=0, extra_chars=extra), EchoReader())
    assert s.n_quarantined == 0 and s.n_review + s.n_accepted == 1      # an unknown format waits for a labeler
    with pytest.raises(ValueError, match="TAGLOOP_EXTRA_CHARS"):
        IngestConfig(extra_chars="+ ")


def _same_pool(a, b) -> bool:
    return (a.labels == b.labels and np.array_equal(a.widths, b.widths) and np.array_equal(a.pixels, b.pixels))


def test_rendering_is_the_same_in_worker_processes_and_in_process():
    from loop.mix import even_plan, render_synthetic

    one = render_synthetic(6, 4, even_plan(), workers=1, chunk=2)
    assert _same_pool(one, render_synthetic(6, 4, even_plan(), workers=2, chunk=2))
    assert not _same_pool(one, render_synthetic(6, 5, even_plan(), workers=1, chunk=2))    # the seed matters


def test_same_corrections_give_the_same_dataset_rows_and_training_mix(tmp_path):
    """Ingest's splits (near-duplicate rule: order-dependent) and the mix are a function of the bucket's
    content, not of the order its objects were written in or of the run (issue 19)."""
    from flows.simulate import DOT_MATRIX_DOMAIN, seed_corrections
    from ingest import dataset
    from ingest.pipeline import IngestConfig, run_ingest
    from bucket.storage import open_storage
    from synth.render import RenderConfig

    a, b = (open_storage(f"file://{tmp_path / n}") for n in ("a", "b"))
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    seed_corrections(a, 60, "2026-11-20", 3, RenderConfig(**DOT_MATRIX_DOMAIN), None, n_bad=5)
    for o in reversed(a.list("")):                    # the same objects, written in the opposite order
        b.write(o.name, a.read(o.name))
    manifests, mixes = [], []
    for storage in (a, b):
        s = run_ingest(storage, IngestConfig(min_age_s=0, heldout_share=0.3))
        m = dataset.read_manifest(storage, s.dataset_version)
        manifests.append(m.drop(columns=["ingest_run"]))
        cfg = MixConfig(min_synthetic=40, min_val=20, anchor=11, seed=2, workers=1)
        mixes.append(build_mix(m, m.iloc[:0], storage.read, cfg))
    assert set(manifests[0]["split"]) == {"train", "heldout"} and len(manifests[0]) == 60
    pd.testing.assert_frame_equal(manifests[0], manifests[1])
    (x, y) = mixes
    assert _same_pool(x.train, y.train) and _same_pool(x.val, y.val) and x.info == y.info
    assert all(np.array_equal(p, q) for p, q in zip(x.anchor.images, y.anchor.images)) and x.anchor.labels == y.anchor.labels
