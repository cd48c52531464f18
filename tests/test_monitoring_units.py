"""Monitoring building blocks on tiny hand-made inputs: features, confusions, accuracy, alerts."""
from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import pandas as pd
import pytest

from crops.codes import format_family
from crops.features import char_classes, digit_share
from monitoring.accuracy import EvalSet, accuracy_summary, per_crop_frame
from monitoring.alerts import AlertConfig, alert_summary
from monitoring.confusions import ConfusionCounter, align, substitutions
from monitoring.drift import DriftResult
from monitoring.html import accuracy_html, thumbnail
from monitoring.publish import publish_files, report_prefix
from monitoring.table import FEATURES, correction_rate, table_from_crops, table_from_manifest
from recognizer.metrics import TextMatch, exact_match, norm_edit_distance


@pytest.mark.parametrize("label,sig", [("DD1391-100", "A9-"), ("SN 149337 COLOR:WSL", "A9_."), ("374923-02", "9-"),
                                       ("EE8484", "A9"), ("", "")])
def test_char_classes(label, sig):
    assert char_classes(label) == sig


def test_digit_share_and_format_family():
    assert digit_share("AB12") == 0.5 and digit_share("") == 0.0
    assert format_family("DD1391-100") == "nike"
    assert format_family("VN0A2XSZW00") == "vans"
    assert format_family("SN 149337 COLOR:WSL") == "skechers"
    assert format_family("a lower case note!") == "unknown"


def test_align_is_a_minimal_edit_path():
    steps = align("DD1391-100", "DD1391 1O0")
    assert len([s for s in steps if s[0] != s[1]]) == 2
    assert "".join(a for a, _ in steps if a) == "DD1391-100"
    assert "".join(b for _, b in steps if b) == "DD1391 1O0"
    assert align("ABC", "") == [("A", None), ("B", None), ("C", None)]


def test_confusions_count_only_the_pairs_that_matter():
    assert substitutions("DD1391-100", "DD1391 1O0") == {"-> ": 1, "0>O": 1}
    cc = ConfusionCounter()
    cc.update("DD1391 1O0", "DD1391-100")    # dash read as space, 0 read as O
    cc.update("5B", "S8")                     # S read as 5, 8 read as B
    cc.update("AX", "AY")                     # an unrelated substitution
    cc.update("A8", "AB8")                    # a deletion is not a confusion
    s = cc.summary()
    assert s["-> "] == 1 and s[" >-"] == 0
    assert s["0>O"] == 1 and s["S>5"] == 1 and s["8>B"] == 1 and s["1>I"] == 0
    assert s["other_substitutions"] == 1


def _set(name="clean", n=6):
    labels = ["DD1391-100", "EE8484", "AV3133 001", "162058C", "M9160C", "VN0A2XSZW00"][:n]
    champion = ["DD1391-1O0", "EE8484", "AV3133-001", "162058C", "M916OC", "VN0A2XSZW00"][:n]
    challenger = ["DD1391-100", "EE8484", "AV3133  001", "162058", "M9160C", "VN0A2XSZW00"][:n]
    imgs = [np.full((30, 90, 3), 40 * i, np.uint8) for i in range(n)]
    return EvalSet(name, labels, {"champion": champion, "challenger": challenger},
                   confidences={"champion": [0.9] * n, "challenger": [0.8] * n},
                   slices={"brand": ["nike", "adidas", "nike", "converse", "nb", "vans"][:n]}, images=imgs)


def test_accuracy_numbers_equal_recognizer_metrics():
    sets = [_set("clean"), _set("rotated", 4)]
    summary = json.loads(json.dumps(accuracy_summary(sets, {"promoted": True, "reason": "better"})))
    for es in sets:
        for role in ("champion", "challenger"):
            tm = TextMatch()
            for p, lab, b in zip(es.predictions[role], es.labels, es.slices["brand"]):
                tm.update(p, lab, {"brand": b})
            expected = tm.summary()
            got = summary["sets"][es.name][role]
            assert got["exact_match"] == expected["exact_match"]
            assert got["norm_edit_distance"] == expected["norm_edit_distance"]
            assert got["slices"] == expected["slices"]
    pooled = [(p, lab) for es in sets for p, lab in zip(es.predictions["champion"], es.labels)]
    assert summary["overall"]["champion"]["exact_match"] == sum(exact_match(p, lab) for p, lab in pooled) / 10
    assert summary["overall"]["champion"]["norm_edit_distance"] == pytest.approx(
        sum(norm_edit_distance(p, lab) for p, lab in pooled) / 10)
    assert summary["overall"]["challenger"]["exact_match"] == 8 / 10   # "  " collapses: AV3133  001 matches
    assert summary["gate"] == {"promoted": True, "reason": "better"}


def test_worst_examples_say_who_was_right_losses_first():
    """The challenger's losses (champion right, challenger wrong) lead, then crops both read wrong, then gains;
    worst first within each."""
    worst = accuracy_summary([_set()])["worst_examples"]
    assert {w["label"] for w in worst} == {"DD1391-100", "AV3133 001", "162058C", "M9160C"}
    assert [w["outcome"] for w in worst] == ["lost", "gained", "gained", "gained"]
    assert worst[0]["label"] == "162058C" and worst[0]["right"] == {"champion": True, "challenger": False}
    neds = [max(w["norm_edit_distance"].values()) for w in worst[1:]]
    assert neds == sorted(neds, reverse=True)


def test_overall_pools_the_real_sets_only():
    """The headline never mixes synthetic renders with real crops; the synthetic set keeps its own numbers."""
    real, synth = _set("new_batch"), _set("regression", 4)
    synth.synthetic = True
    summary = accuracy_summary([real, synth])
    assert summary["overall_sets"] == ["new_batch"] and summary["synthetic_sets"] == ["regression"]
    assert summary["overall"]["champion"]["n"] == 6
    assert summary["overall"]["champion"]["exact_match"] == summary["sets"]["new_batch"]["champion"]["exact_match"]
    df = per_crop_frame([real, synth], ["champion"])
    assert df["champion_exact_match"].mean() == pytest.approx(3 / 6)
    assert df["champion_exact_match_synthetic"].mean() == pytest.approx(2 / 4)


def test_per_crop_frame_means_are_the_exact_match():
    df = per_crop_frame([_set()], ["champion", "challenger"])
    assert df["champion_exact_match"].mean() == pytest.approx(3 / 6)
    assert df["challenger_exact_match"].mean() == pytest.approx(5 / 6)


def test_eval_set_rejects_misaligned_lists():
    with pytest.raises(ValueError, match="not aligned"):
        EvalSet("x", ["A1", "B2"], {"champion": ["A1"]})


def test_thumbnail_is_a_small_jpeg():
    uri = thumbnail(np.zeros((200, 2000, 3), np.uint8))
    assert uri.startswith("data:image/jpeg;base64,")
    png = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert png.shape[0] <= 40 and png.shape[1] <= 320


def test_accuracy_html_escapes_and_embeds_thumbnails():
    es = _set()
    es.labels[0] = "<b>X1234</b>"
    page = accuracy_html(accuracy_summary([es], {"promoted": False, "reason": "a < b"}), [es])
    assert "<b>X1234</b>" not in page and "&lt;b&gt;X1234&lt;/b&gt;" in page
    assert page.count("data:image/jpeg;base64,") == len(accuracy_summary([es])["worst_examples"])
    assert 'data-verdict="refused">REFUSED<' in page and "a &lt; b" in page


def test_accuracy_html_shows_no_decision_and_the_paired_test():
    """The gate's third verdict reads as such on the page, with the overall test's numbers; a missing
    number (no minimum detectable effect) is "-", never 0."""
    es = _set()
    overall = {"n": 12, "gained": 1, "lost": 0, "diff": 1 / 12, "ci": [-0.1, 0.25], "p": 1.0, "mde": None}
    gate = {"promoted": False, "verdict": "no decision", "reason": "no decision: keep the champion, n too small",
            "overall": overall}
    page = accuracy_html(accuracy_summary([es], gate), [es], {"models": {"champion": "3", "challenger": "4"}})
    assert 'data-verdict="no decision">NO DECISION<' in page and "The champion v3 stays" in page
    assert "REFUSED" not in page and "PROMOTED" not in page
    assert 'data-metric="gate/p">1.000<' in page and 'data-metric="gate/mde">-<' in page
    assert 'data-metric="gate/ci">-0.100..+0.250<' in page
    clear = {**gate, "verdict": "promoted", "promoted": True, "overall": {**overall, "p": 3e-7}}
    assert 'data-metric="gate/p">&lt;0.001<' in accuracy_html(accuracy_summary([es], clear), [es])   # not 0.000


def _drift(share=0.0, rate=None, ref_rate=None):
    return DriftResult(10, 10, {}, ["brightness"] if share else [], share, share >= 0.5, [], rate, ref_rate)


@pytest.mark.parametrize("share,rate,ref,fired,retrain", [
    (0.0, None, None, [], False),
    (0.6, None, None, ["dataset_drift"], True),
    (0.1, 0.12, 0.11, ["correction_rate"], False),     # high, but as high as ever: tell people, do not retrain
    (0.1, 0.08, 0.01, ["correction_rate_increase"], True),
    (0.1, 0.04, 0.02, [], False),
])
def test_alerts(share, rate, ref, fired, retrain):
    out = alert_summary(_drift(share, rate, ref))
    assert [a["name"] for a in out["alerts"]] == fired
    assert out["should_retrain"] is retrain


def _counted(rate, n, ref, n_ref):
    d = _drift(0.0, rate, ref)
    d.n_rate_current, d.n_rate_reference = n, n_ref
    return alert_summary(d)


def test_correction_rate_alerts_need_evidence():
    """The night that fired "should retrain" for 42.4 % against 41.5 %: no retrain now; small samples and
    rises within chance fire nothing; a real rise on enough crops does."""
    same = _counted(0.424, 300, 0.415, 300)
    assert [a["name"] for a in same["alerts"]] == ["correction_rate"] and not same["should_retrain"]
    assert _counted(0.5, 10, 0.05, 300)["alerts"] == []                       # 10 crops say nothing
    assert _counted(0.16, 60, 0.10, 60)["alerts"] == [{"name": "correction_rate", "value": 0.16, "threshold": 0.1,
                                                       "message": "users corrected 16.0% of crops (threshold 10.0%)"}]
    rise = _counted(0.25, 200, 0.10, 400)
    assert [a["name"] for a in rise["alerts"]] == ["correction_rate", "correction_rate_increase"]
    assert rise["should_retrain"]


def test_rise_p_value_matches_a_hand_computed_z_test():
    from monitoring.alerts import rise_p_value

    # pooled 0.15, se = sqrt(.15 * .85 * (1/200 + 1/400)) = 0.030923, z = 0.15 / se = 4.851 -> p = 6.1e-7
    assert rise_p_value(0.25, 200, 0.10, 400) == pytest.approx(6.14e-7, rel=0.02)
    assert rise_p_value(0.10, 100, 0.10, 100) == pytest.approx(0.5)


def test_alert_thresholds_are_configurable():
    cfg = AlertConfig(max_drift_share=None, max_correction_rate=0.5, retrain_on=("correction_rate",))
    assert alert_summary(_drift(0.9, 0.2, 0.0), cfg)["should_retrain"] is False   # only the increase fired
    assert [a["name"] for a in alert_summary(_drift(0.9, 0.2, 0.0), cfg)["alerts"]] == ["correction_rate_increase"]


def test_table_from_manifest_reuses_stored_features():
    from ingest.dataset import empty_manifest, merge

    cols = {"sample_id": ["a", "b", "c"], "label": ["DD1391-100", "EE8484", "M9160C"],
            "predicted_label": ["DD1391-100", "EE8A84", None], "sidecar_confidence": [0.9, 0.4, None],
            "champion_confidence": [None, None, 0.7], "width": [100.0, 80, 60], "height": [30.0, 30, 20],
            "aspect": [3.3, 2.7, 3.0], "brightness": [200.0, 50, 120], "contrast": [40.0, 30, 20], "blur": [5.0, 9, 1]}
    rows = [{k: v[i] for k, v in cols.items()} for i in range(3)]
    manifest = merge(empty_manifest(), rows)      # the real manifest schema and dtypes, as ingest writes it
    t = table_from_manifest(manifest)
    assert list(t.columns[-len(FEATURES):]) == FEATURES
    assert t["brightness"].tolist() == [200.0, 50, 120]
    assert t["confidence"].tolist() == [0.9, 0.4, 0.7]
    assert t["corrected"].tolist() == ["no", "yes", None]
    assert correction_rate(t) == 0.5


def test_table_from_crops_measures_images():
    dark, light = np.full((20, 60, 3), 10, np.uint8), np.full((40, 80, 3), 240, np.uint8)
    t = table_from_crops([dark, light], ["AB1234", "CD5678"], ["AB1234", "CD5678"])
    assert t["width"].tolist() == [60.0, 80.0] and t["aspect"].tolist() == [3.0, 2.0]
    assert t["brightness"].iloc[0] < 20 < 230 < t["brightness"].iloc[1]
    assert correction_rate(t) == 0.0 and t["confidence"].isna().all()


def test_report_prefix_refuses_path_tricks(tmp_path):
    from bucket.storage import open_storage

    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(ValueError):
            report_prefix(bad)
    uris = publish_files(open_storage(str(tmp_path)), "2026-11-22T03-00", {"a.json": b"{}"})
    assert (tmp_path / "reports" / "2026-11-22T03-00" / "a.json").read_bytes() == b"{}"
    assert uris["a.json"].endswith("reports/2026-11-22T03-00/a.json")


def test_drift_skips_features_missing_on_one_side_and_flags_a_brightness_shift():
    from monitoring.drift import run_drift

    rng = np.random.default_rng(0)
    labels = ["DD1391-100", "EE8484", "M9160C", "VN0A2XSZW00"] * 15
    light = [np.clip(rng.normal(200, 20, (30, 90, 3)), 0, 255).astype(np.uint8) for _ in labels]
    dark = [(img * 0.3).astype(np.uint8) for img in light]
    ref = table_from_crops(light, labels)                       # no predictions: a synthetic reference
    cur = table_from_crops(dark, labels, labels, [0.9] * len(labels))
    result, _ = run_drift(ref, cur)
    assert result.skipped_features == ["confidence", "corrected"]
    # pixel values scaled by 0.3: brightness, contrast and the Laplacian variance change; nothing else
    assert result.drifted_features == ["brightness", "contrast", "blur"]
    assert result.dataset_drift is False and result.drift_share == pytest.approx(3 / 10)
    assert result.reference_correction_rate is None and result.correction_rate == 0.0


def test_diff_markup_marks_only_the_misread_characters():
    from monitoring.html import diff_markup

    assert diff_markup("DD1391-100", "DD1391-1O0") == "DD1391-1<mark>O</mark>0"
    assert diff_markup("AV3133-001", "AV3133 001") == "AV3133<mark>&nbsp;</mark>001"
    assert diff_markup("M9160C", "M960C") == "M9<mark class='missing' title='missing'>·</mark>60C"
    assert diff_markup("A<1", "A<1") == "A&lt;1"


def test_empty_batch_skips_drift_but_keeps_accuracy():
    from monitoring.report import build_reports

    ref = table_from_crops([np.full((20, 60, 3), 100, np.uint8)] * 3, ["AB1234"] * 3)
    out = build_reports("empty-night", ref, ref.iloc[:0], [_set()])
    assert "drift_skipped" in out.summary and "drift.json" not in out.files
    assert out.summary["should_retrain"] is False
    assert out.summary["accuracy"]["champion"]["exact_match"] == 0.5
    assert set(out.files) == {"accuracy.html", "accuracy.json", "summary.json"}


def test_categorical_threshold_grows_for_small_batches_and_still_catches_a_real_shift():
    from monitoring.drift import categorical_threshold, run_drift

    fams = [f"f{i}" for i in range(11)]
    rng = np.random.default_rng(3)
    p = np.linspace(3, 1, 11) / np.linspace(3, 1, 11).sum()

    def table(n, probs):
        t = pd.DataFrame({c: [None] * n for c in FEATURES})
        t["format_family"] = rng.choice(fams, size=n, p=probs)
        t["brightness"] = rng.normal(128, 20, n)
        return t

    small = categorical_threshold(table(160, p)["format_family"], table(120, p)["format_family"])
    assert small > 0.15                                   # chance alone reaches ~0.1 at this size
    assert categorical_threshold(table(20_000, p)["format_family"], table(20_000, p)["format_family"]) == 0.1
    # the same mix at small size: (almost) never drifts; a changed mix does
    false_alarms = sum(run_drift(table(160, p), table(120, p))[0].features["format_family"].drifted for _ in range(10))
    assert false_alarms <= 1
    shifted = np.r_[np.full(3, 0.3), np.full(8, 0.1 / 8)]
    res, _ = run_drift(table(160, p), table(120, shifted))
    f = res.features["format_family"]
    assert f.drifted and f.threshold > 0.15 and f.score > f.threshold
