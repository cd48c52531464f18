"""The simulated correction stream used by the demo, the end-to-end tests and benchmarks."""
from __future__ import annotations

import json

from flows.simulate import BAD_KINDS, seed_corrections
from ingest.pipeline import IngestConfig, run_ingest
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
