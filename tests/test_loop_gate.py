"""The promotion gate on hand-made scores: margins, slices, regression suite, set fingerprints."""
from __future__ import annotations

import pytest

from loop.gate import EvalData, GateConfig, SetMismatch, SetScore, decide, force, score_sets

LABELS = [f"AB{i:04d}" for i in range(100)]


def _data(name="heldout", labels=LABELS, images=None, brand=None) -> EvalData:
    images = images or [lab.encode() for lab in labels]
    return EvalData(name, [f"id{i}" for i in range(len(labels))], list(labels), images,
                    {"brand": brand or ["nike" if i % 2 else "adidas" for i in range(len(labels))]})


def _scores(correct: dict[str, set[int]], sets: list[EvalData] | None = None) -> dict[str, SetScore]:
    """Each set read right on the indices in ``correct[name]`` and wrong elsewhere."""
    sets = sets or [_data("heldout"), _data("regression")]
    def reader_for(name):
        return lambda s: [(img.decode() if i in correct[name] else "WRONG", 0.9) for i, img in enumerate(s.images)]
    return {s.name: score_sets(reader_for(s.name), [s])[s.name] for s in sets}


ALL = set(range(100))


def test_challenger_that_wins_everywhere_is_promoted():
    champ = _scores({"heldout": set(range(70)), "regression": set(range(90))})
    chall = _scores({"heldout": set(range(80)), "regression": set(range(90))})
    d = decide(champ, chall, GateConfig(margin=0.05))
    assert d.promote and d.reason.startswith("promoted") and "0.800 vs 0.700" in d.reason
    assert all(c.passed for c in d.checks)


def test_small_win_below_margin_is_refused_with_overall_named():
    champ = _scores({"heldout": set(range(70)), "regression": ALL})
    chall = _scores({"heldout": set(range(72)), "regression": ALL})
    d = decide(champ, chall, GateConfig(margin=0.05))
    assert not d.promote and "overall failed" in d.reason and "needs +0.050" in d.reason


def test_regressing_slice_is_refused_even_when_overall_wins():
    champ = _scores({"heldout": set(range(0, 100, 2)) | {1, 3, 5, 7, 9}, "regression": ALL})   # adidas all right
    # challenger: every nike right, but 12 of the 50 adidas now wrong
    chall = _scores({"heldout": set(range(1, 100, 2)) | set(range(24, 100, 2)), "regression": ALL})
    d = decide(champ, chall, GateConfig(margin=0.01, slice_tolerance=0.05, set_tolerance=1.0))
    assert not d.promote
    assert "slice heldout/brand=adidas failed" in d.reason
    assert next(c for c in d.checks if c.name == "overall").passed


def test_regression_suite_drop_is_refused():
    champ = _scores({"heldout": set(range(50)), "regression": set(range(95))})
    chall = _scores({"heldout": set(range(90)), "regression": set(range(93))})
    d = decide(champ, chall, GateConfig(margin=0.01, regression_tolerance=0.005, min_slice_n=1000))
    assert not d.promote and "regression failed" in d.reason and "0.930 vs 0.950" in d.reason


def test_mismatched_sets_are_refused():
    champ = _scores({"heldout": ALL, "regression": ALL})
    other = [_data("heldout", images=[b"x" + lab.encode() for lab in LABELS]), _data("regression")]
    chall = _scores({"heldout": ALL, "regression": ALL}, other)
    with pytest.raises(SetMismatch, match="set 'heldout': champion scored 100:"):
        decide(champ, chall)
    fewer = [_data("heldout", labels=LABELS[:99]), _data("regression")]
    with pytest.raises(SetMismatch, match="99:"):
        decide(champ, _scores({"heldout": ALL, "regression": ALL}, fewer))
    with pytest.raises(SetMismatch, match="sets differ"):
        decide(champ, {"heldout": chall["heldout"]})


def test_fingerprint_covers_ids_labels_and_bytes():
    a = _data()
    assert a.fingerprint() == _data().fingerprint() and a.fingerprint().startswith("100:")
    relabel = _data(labels=LABELS[:-1] + ["ZZ9999"], images=[lab.encode() for lab in LABELS])
    assert relabel.fingerprint() != a.fingerprint()
    with pytest.raises(ValueError, match="differ in length"):
        EvalData("x", ["a"], ["b", "c"], [b""])


def test_no_real_data_means_no_promotion_and_force_needs_a_name():
    empty = [_data("heldout", labels=[]), _data("regression")]
    d = decide(_scores({"heldout": set(), "regression": ALL}, empty), _scores({"heldout": set(), "regression": ALL}, empty))
    assert not d.promote and "no real held-out crops" in d.reason
    forced = force(d, "kim")
    assert forced.promote and forced.forced_by == "kim" and "forced by kim" in forced.reason
    with pytest.raises(ValueError, match="forced-by"):
        force(d, " ")


def test_a_slice_dip_within_chance_passes_and_names_the_sign_test():
    """Two of 50 adidas crops lost, none gained: 4 points but p = 0.25 -- noise, not a regression."""
    champ = _scores({"heldout": set(range(0, 100, 2)) | set(range(1, 61, 2)), "regression": ALL})
    chall = _scores({"heldout": set(range(4, 100, 2)) | set(range(1, 100, 2)), "regression": ALL})
    d = decide(champ, chall, GateConfig(margin=0.01, slice_tolerance=0.03, set_tolerance=1.0))
    adidas = next(c for c in d.checks if c.name == "slice heldout/brand=adidas")
    assert adidas.passed and "2 lost, 0 gained, sign test p=0.250" in adidas.detail
    assert d.promote
    strict = decide(champ, chall, GateConfig(margin=0.01, slice_tolerance=0.03, set_tolerance=1.0, slice_p=None))
    assert not strict.promote and "slice heldout/brand=adidas failed" in strict.reason
