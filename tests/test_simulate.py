"""The simulated correction stream used by the demo, the end-to-end tests and benchmarks."""
from __future__ import annotations

import json

import pytest

from flows.simulate import BAD_KINDS, seed_corrections
from ingest.pipeline import IngestConfig, ValidationFailed, run_ingest
from bucket.storage import open_storage


def _sidecars(storage):
    out = {}
    for o in storage.list("corrections/"):
        if o.name.endswith(".json"):
            try:
                out[o.name] = json.loads(storage.read(o.name))
            except ValueError:
                out[o.name] = None
    return out


def test_stream_is_marked_simulated_and_bad_uploads_are_quarantined(tmp_path):
    storage = open_storage(str(tmp_path / "bucket"))
    s = seed_corrections(storage, 20, "2026-11-21", seed=3, n_bad=len(BAD_KINDS))
    assert (s.n_good, s.n_bad) == (20, 5) and set(s.bad) == set(BAD_KINDS)
    docs = [d for d in _sidecars(storage).values() if d is not None]
    assert docs and all(d["source"] == "simulated" for d in docs)
    summary = run_ingest(storage, IngestConfig(min_age_s=0))
    reasons = summary.quarantine_reasons
    for reason in ("empty_image", "corrupt_image", "bad_sidecar_json", "label_charset", "duplicate_image"):
        assert reasons.get(reason, 0) >= 1, reasons
    assert summary.n_new == 25 and summary.n_accepted >= 18


def test_poison_shuffles_labels_but_keeps_sidecars_well_formed(tmp_path):
    clean = open_storage(str(tmp_path / "clean"))
    bad = open_storage(str(tmp_path / "bad"))
    seed_corrections(clean, 30, "2026-11-21", seed=4, n_bad=0)
    seed_corrections(bad, 30, "2026-11-21", seed=4, n_bad=0, poison=True)
    a, b = _sidecars(clean), _sidecars(bad)
    assert a.keys() == b.keys()
    la = [a[k]["corrected_label"] for k in sorted(a)]
    lb = [b[k]["corrected_label"] for k in sorted(b)]
    assert sorted(la) == sorted(lb) and sum(x != y for x, y in zip(la, lb)) >= 25


def test_the_demo_brand_needs_its_new_character_allowed(tmp_path):
    """The demo's new brand: every code carries '+', which the shipped model cannot write; a batch of its
    corrections fails validation as outside the charset (copies quarantined with the reason, nothing committed,
    the corrections untouched) unless ops allow '+'
    (IngestConfig.extra_chars, what the demo sets)."""
    from recognizer.checkpoint import base_model_dir
    from synth.newprint import PLUS, serif_plus

    assert serif_plus(5, 11) == serif_plus(5, 11)          # the same seed draws the same crops (the demo's decision)
    strict, allowing = open_storage(str(tmp_path / "strict")), open_storage(str(tmp_path / "allowing"))
    for storage in (strict, allowing):
        s = seed_corrections(storage, 12, "2026-11-20", seed=5, model_dir=base_model_dir(), n_bad=0, stream=serif_plus)
        assert s.n_good == 12 and s.n_corrected == 12     # the model misread every one: it has no '+'
    docs = list(_sidecars(strict).values())
    assert len(docs) == 12 and all(PLUS in d["corrected_label"] and PLUS not in d["predicted_label"] for d in docs)
    with pytest.raises(ValidationFailed, match="label_charset"):
        run_ingest(strict, IngestConfig(min_age_s=0))
    assert list(_sidecars(strict).values()) == docs                 # the corrections stay as they were
    reasons = [json.loads(strict.read(o.name))["reasons"] for o in strict.list("quarantine/")
               if o.name.endswith("reasons.json")]
    assert len(reasons) == 12 and all(r == ["label_charset"] for r in reasons), reasons
    accepted = run_ingest(allowing, IngestConfig(min_age_s=0, extra_chars=PLUS))
    assert accepted.n_accepted + accepted.n_review == 12 and not accepted.quarantine_reasons, accepted
