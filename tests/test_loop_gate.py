"""The promotion gate on hand-made scores: paired tests, no decision, slices, regression suite, empty sets, fingerprints."""
from __future__ import annotations

import pytest

import json
import math

from loop.gate import NO_DECISION, PROMOTED, REFUSED, EvalData, GateConfig, SetMismatch, SetScore, decide, force, score_sets
from loop.paired import Paired, effect_ci, mcnemar_p, min_detectable_effect, sign_test_p

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


def test_small_win_is_no_decision_and_states_the_detectable_effect():
    """2 crops gained of 100, none lost: p = 0.5, the champion stays, and the reason says what n could show."""
    champ = _scores({"heldout": set(range(70)), "regression": ALL})
    chall = _scores({"heldout": set(range(72)), "regression": ALL})
    d = decide(champ, chall, GateConfig(margin=0.005))
    assert d.verdict == NO_DECISION and not d.promote
    assert d.reason.startswith("no decision: keep the champion, n too small")
    assert "2 gained, 0 lost, exact McNemar p=0.500" in d.reason and "minimum detectable effect at this n +0.060" in d.reason
    assert next(c for c in d.checks if c.name == "overall").passed is None


def test_interval_below_the_margin_is_refused_with_overall_named():
    """The same 2-crop win asked to reach +0.10: its interval (up to +0.053) rules that out -- refused, not undecided."""
    champ = _scores({"heldout": set(range(70)), "regression": ALL})
    chall = _scores({"heldout": set(range(72)), "regression": ALL})
    d = decide(champ, chall, GateConfig(margin=0.10))
    assert d.verdict == REFUSED and "overall failed" in d.reason and "needs a significant win of +0.100" in d.reason
    assert "95% CI -0.013..+0.053" in d.reason


def _new_batch(n: int, champ_right: set[int], chall_right: set[int]) -> tuple[dict, dict]:
    labels = [f"CD{i:04d}" for i in range(n)]
    sets = [_data("new_batch", labels=labels), _data("regression")]
    return (_scores({"new_batch": champ_right, "regression": ALL}, sets),
            _scores({"new_batch": chall_right, "regression": ALL}, sets))


def test_three_crops_won_of_60_is_no_decision_not_promoted():
    champ, chall = _new_batch(60, set(range(30)), set(range(33)))
    d = decide(champ, chall)
    assert d.verdict == NO_DECISION and not d.promote
    ov = d.to_dict()["overall"]
    assert (ov["n"], ov["gained"], ov["lost"]) == (60, 3, 0) and ov["p"] == pytest.approx(0.25)
    assert ov["mde"] == pytest.approx(0.1)              # 6 crops of 60: the fewest an exact test can call a win
    assert ov["ci"][0] < 0 < ov["ci"][1]


def test_clear_20_crop_win_over_200_promotes():
    """24 gained, 4 lost of 200 (net +20 crops, +0.100): significant, promoted, the numbers in the reason."""
    champ, chall = _new_batch(200, set(range(100)), set(range(4, 124)))
    d = decide(champ, chall)
    assert d.verdict == PROMOTED and d.promote
    ov = d.to_dict()["overall"]
    assert (ov["gained"], ov["lost"], ov["diff"]) == (24, 4, pytest.approx(0.1))
    assert ov["p"] == pytest.approx(2 * sum(math.comb(28, k) for k in range(24, 29)) / 2 ** 28)
    assert 0 < ov["ci"][0] < 0.1 < ov["ci"][1] and "24 gained, 4 lost" in d.reason and "95% CI +" in d.reason


def test_significantly_worse_challenger_is_refused():
    champ, chall = _new_batch(200, set(range(120)), set(range(100)))
    d = decide(champ, chall)
    assert d.verdict == REFUSED and "overall failed" in d.reason and "0 gained, 20 lost" in d.reason


def test_exact_tests_match_the_binomial_by_hand():
    # 9 gained, 2 lost: P(X >= 9 | n=11, 1/2) = (C(11,9) + C(11,10) + C(11,11)) / 2^11 = 67 / 2048
    assert sign_test_p(9, 2) == pytest.approx(67 / 2048)
    assert mcnemar_p(9, 2) == pytest.approx(134 / 2048) == mcnemar_p(2, 9)
    assert mcnemar_p(0, 0) == 1.0 and sign_test_p(0, 0) == 1.0
    # the minimum detectable effect: the smallest significant net win, checked by brute force
    def p2(k, m):
        return min(1.0, 2 * sum(math.comb(m, j) for j in range(max(k, m - k), m + 1)) / 2 ** m)
    for n, disc in [(60, 0), (200, 40), (1000, 130)]:
        m = max(disc, 6)
        k = min(k for k in range(m + 1) if 2 * k > m and p2(k, m) < 0.05)
        assert min_detectable_effect(n, disc, 0.05) == pytest.approx((2 * k - m) / n)
    assert min_detectable_effect(5, 5, 0.05) is None and min_detectable_effect(0, 0, 0.05) is None


def test_agresti_min_interval_by_hand_and_never_zero_width():
    p = Paired(n=100, champion_right=70, challenger_right=78, gained=10, lost=2)
    b, c, n = 10.5, 2.5, 102
    half = 1.959964 * math.sqrt(((b + c) / n - ((b - c) / n) ** 2) / n)
    assert effect_ci(p, 0.05) == pytest.approx(((b - c) / n - half, (b - c) / n + half), abs=1e-5)
    lo, hi = effect_ci(Paired(12, 6, 6, 0, 0), 0.05)
    assert lo < -0.05 and hi > 0.05                      # 12 crops read alike do not prove the models equal
    assert effect_ci(Paired(0, 0, 0, 0, 0), 0.05) is None


def test_regressing_slice_is_refused_even_when_overall_wins():
    champ = _scores({"heldout": set(range(0, 100, 2)) | {1, 3, 5, 7, 9}, "regression": ALL})   # adidas all right
    # challenger: every nike right, but 12 of the 50 adidas now wrong
    chall = _scores({"heldout": set(range(1, 100, 2)) | set(range(24, 100, 2)), "regression": ALL})
    d = decide(champ, chall, GateConfig(margin=0.01, slice_tolerance=0.05, set_tolerance=1.0))
    assert not d.promote
    assert "slice heldout/brand=adidas failed" in d.reason
    assert next(c for c in d.checks if c.name == "overall").passed


def test_regression_suite_drop_is_refused_when_beyond_chance():
    champ = _scores({"heldout": set(range(50)), "regression": set(range(95))})
    chall = _scores({"heldout": set(range(90)), "regression": set(range(88))})
    d = decide(champ, chall, GateConfig(margin=0.01, regression_tolerance=0.005, min_slice_n=1000))
    assert d.verdict == REFUSED and "regression failed" in d.reason and "0.880 vs 0.950" in d.reason
    assert "7 lost, 0 gained, sign test p=0.008" in d.reason


def test_regression_dip_of_two_crops_is_noise():
    """2 of 100 suite crops lost, none gained: 2 points, beyond the 0.5 allowed, but p = 0.25."""
    champ = _scores({"heldout": set(range(50)), "regression": set(range(95))})
    chall = _scores({"heldout": set(range(90)), "regression": set(range(93))})
    d = decide(champ, chall, GateConfig(margin=0.01, regression_tolerance=0.005, min_slice_n=1000))
    assert d.promote and next(c for c in d.checks if c.name == "regression").passed
    strict = decide(champ, chall, GateConfig(margin=0.01, regression_tolerance=0.005, min_slice_n=1000, drop_p=None))
    assert not strict.promote and "regression failed" in strict.reason


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
    assert d.verdict == NO_DECISION and not d.promote and "no held-out corrections to judge on (n=0)" in d.reason
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
    strict = decide(champ, chall, GateConfig(margin=0.01, slice_tolerance=0.03, set_tolerance=1.0, drop_p=None))
    assert not strict.promote and "slice heldout/brand=adidas failed" in strict.reason


def test_small_slices_are_reported_not_judged():
    """A 10-crop slice that loses every crop is listed with its numbers but cannot refuse the challenger."""
    brand = ["rare" if i < 10 else "nike" for i in range(100)]
    sets = [_data("heldout", brand=brand), _data("regression")]
    champ = _scores({"heldout": set(range(60)), "regression": ALL}, sets)
    chall = _scores({"heldout": set(range(10, 90)), "regression": ALL}, sets)
    d = decide(champ, chall, GateConfig(min_slice_n=20))
    rare = next(c for c in d.checks if c.name == "slice heldout/brand=rare")
    assert rare.passed is None and "10 lost, 0 gained" in rare.detail and "reported, not judged" in rare.detail
    assert d.promote


def test_an_empty_set_is_absent_not_zero():
    """heldout empty (the first nights): reported with n=0 and no score; nothing in the JSON reads 0.0 for it."""
    labels = [f"CD{i:04d}" for i in range(80)]
    sets = [_data("heldout", labels=[]), _data("new_batch", labels=labels), _data("regression")]
    champ = _scores({"heldout": set(), "new_batch": set(range(40)), "regression": ALL}, sets)
    chall = _scores({"heldout": set(), "new_batch": set(range(60)), "regression": ALL}, sets)
    assert champ["heldout"].summary() == {"n": 0, "exact_match": None, "norm_edit_distance": None}
    d = decide(champ, chall)
    assert d.promote and "on new_batch (" in d.reason
    out = json.loads(json.dumps(d.to_dict()))
    held = next(c for c in out["checks"] if c["name"] == "set heldout")
    assert held["passed"] is None and held["stats"]["n"] == 0 and held["detail"] == "empty (n=0): not judged"
    assert held["stats"]["champion_exact_match"] is None and held["stats"]["challenger_exact_match"] is None


def test_mlflow_logs_no_score_for_an_empty_set_and_tags_the_verdict(tagloop_home):
    """The first night: heldout empty. MLflow gets no ``*.heldout.exact_match`` (not 0.0), the verdict as a tag,
    and the overall test's numbers as metrics."""
    import mlflow

    from loop import tracking
    from loop.registry import setup_mlflow
    from loop.stages import metrics_of

    labels = [f"CD{i:04d}" for i in range(60)]
    sets = [_data("heldout", labels=[]), _data("new_batch", labels=labels), _data("regression")]
    scores = {"champion": _scores({"heldout": set(), "new_batch": set(range(30)), "regression": ALL}, sets),
              "challenger": _scores({"heldout": set(), "new_batch": set(range(33)), "regression": ALL}, sets)}
    d = decide(scores["champion"], scores["challenger"])
    setup_mlflow(str(tagloop_home))
    with mlflow.start_run() as run:
        tracking.log_decision(d, metrics_of(scores, ["heldout", "new_batch"]), {})
    data = mlflow.get_run(run.info.run_id).data
    assert not any("heldout" in k for k in data.metrics)
    assert data.metrics["champion.new_batch.exact_match"] == 0.5 and data.metrics["gate.n"] == 60
    assert data.metrics["gate.p"] == pytest.approx(0.25) and data.metrics["gate.mde"] == pytest.approx(0.1)
    assert data.tags["gate.verdict"] == "no decision" and data.tags["gate.promoted"] == "false"
    assert data.tags["gate.reason"].startswith("no decision: keep the champion, n too small")
    assert "not judged set heldout: empty (n=0)" in data.tags["mlflow.note.content"]


def test_the_growing_real_heldout_set_is_judged_on_evidence_not_on_its_size():
    """The real held-out set grows night by night. A small one is judged like any set: a drop counts only
    when the paired sign test says it is not chance, so 2 lost of 20 passes (p=0.25) and 10 lost of 20 refuses (p<0.001)."""
    def night(n_heldout: int, n_lost: int) -> object:
        sets = [_data("heldout", LABELS[:n_heldout]), _data("new_batch"), _data("regression")]
        lost = set(range(n_lost))
        champ = _scores({"heldout": set(range(n_heldout)), "new_batch": set(range(60)), "regression": ALL}, sets)
        chall = _scores({"heldout": set(range(n_heldout)) - lost, "new_batch": set(range(90)), "regression": ALL}, sets)
        return decide(champ, chall, GateConfig())

    noise = night(20, 2)
    assert noise.verdict == PROMOTED
    assert "2 lost, 0 gained, sign test p=0.250" in next(c for c in noise.checks if c.name == "set heldout").detail
    real = night(20, 10)
    assert real.verdict == REFUSED and "set heldout failed" in real.reason and "sign test p<0.001" in real.reason
