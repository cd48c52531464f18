"""Drift and accuracy reports end to end on rendered crops: verdicts, publishing, trend, browser."""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from monitoring.accuracy import EvalSet
from monitoring.html import fmt
from monitoring.publish import trend_panels
from monitoring.report import build_reports, publish_reports
from monitoring.table import FEATURES, table_from_crops
from recognizer.metrics import exact_match, norm_edit_distance

SHIFT = dict(text_px=(12, 20), p_inverted=0.7, brand_mix={"vans": 0.4, "skechers": 0.3, "asics": 0.3})
NIGHT = datetime(2026, 11, 20, 3, 0, tzinfo=timezone.utc)


def misread(label: str, i: int, every: int) -> str:
    """A champion-like reading: every ``every``-th crop gets its 0s read as O (or a char dropped)."""
    if i % every:
        return label
    return label.replace("0", "O") if "0" in label else label[:-1]


def render(n: int, seed: int, every: int, **cfg):
    from synth.dataset import iter_crops
    from synth.render import RenderConfig

    crops = list(iter_crops(n, seed, RenderConfig(**cfg)))
    reads = [misread(c.label, i, every) for i, c in enumerate(crops)]
    table = table_from_crops([c.image for c in crops], [c.label for c in crops], reads, [0.9] * n)
    return crops, table


@pytest.fixture(scope="module")
def reference():
    return render(160, 101, every=20)[1]


@pytest.fixture(scope="module")
def unshifted():
    return render(120, 202, every=20)[1]


@pytest.fixture(scope="module")
def shifted():
    return render(120, 303, every=4, **SHIFT)


@pytest.fixture(scope="module")
def eval_sets(shifted):
    crops = shifted[0]
    labels = [c.label for c in crops]
    champion = [misread(lab, i, 4) for i, lab in enumerate(labels)]
    challenger = [misread(lab, i, 10) for i, lab in enumerate(labels)]
    half = len(crops) // 2
    return [EvalSet(name, labels[sl], {"champion": champion[sl], "challenger": challenger[sl]},
                    slices={"brand": [c.brand for c in crops[sl]]}, images=[c.image for c in crops[sl]],
                    confidences={"champion": [0.9] * len(labels[sl]), "challenger": [0.8] * len(labels[sl])})
            for name, sl in (("heldout", slice(0, half)), ("renders", slice(half, None)))]


@pytest.fixture(scope="module")
def reports(reference, shifted, eval_sets):
    """Night 2: a shifted batch and a gate decision."""
    gate = {"promoted": True, "reason": "challenger beats champion by 0.1125 exact match on heldout+renders"}
    return build_reports("night-2", reference, shifted[1], eval_sets, gate,
                         meta={"dataset_version": "abc123", "models": {"champion": "7", "challenger": "8"}},
                         timestamp=NIGHT + timedelta(days=1))


@pytest.fixture(scope="module")
def night1(reference, unshifted, eval_sets):
    """Night 1: an unshifted batch, no gate."""
    return build_reports("night-1", reference, unshifted, eval_sets[:1], None, timestamp=NIGHT, embed_evidently=False)


def test_shifted_batch_drifts_and_names_the_shifted_features(reports):
    drift = json.loads(reports.files["drift.json"])
    assert drift["dataset_drift"] is True
    assert {"brightness", "height", "width", "format_family"} <= set(drift["drifted_features"])
    assert drift["features"]["brightness"]["drifted"] and drift["features"]["brightness"]["score"] < 0.05
    assert drift["correction_rate"] > drift["reference_correction_rate"]


def test_unshifted_split_does_not_drift(night1):
    drift = json.loads(night1.files["drift.json"])
    assert drift["dataset_drift"] is False
    assert drift["drift_share"] < 0.5
    assert not {"brightness", "height", "format_family"} & set(drift["drifted_features"])
    assert set(drift["features"]) == set(FEATURES) and drift["skipped_features"] == []
    assert night1.summary["should_retrain"] is False


def test_summary_alerts_and_json_numbers(reports, shifted, eval_sets):
    s = reports.summary
    assert s["dataset_drift"] is True and s["should_retrain"] is True
    assert "dataset_drift" in [a["name"] for a in s["alerts"]]
    crops = shifted[0]
    corrected = sum(not exact_match(misread(c.label, i, 4), c.label) for i, c in enumerate(crops))
    assert s["correction_rate"] == corrected / len(crops)
    acc = json.loads(reports.files["accuracy.json"])
    for role in ("champion", "challenger"):
        pairs = [(p, lab) for es in eval_sets for p, lab in zip(es.predictions[role], es.labels)]
        assert acc["overall"][role]["exact_match"] == sum(exact_match(p, lab) for p, lab in pairs) / len(pairs)
        assert acc["overall"][role]["norm_edit_distance"] == pytest.approx(
            sum(norm_edit_distance(p, lab) for p, lab in pairs) / len(pairs), abs=1e-12)
        assert s["accuracy"][role]["exact_match"] == acc["overall"][role]["exact_match"]
    assert acc["overall"]["champion"]["confusions"]["0>O"] > 0
    assert acc["gate"]["promoted"] is True


def test_publish_to_bucket_and_workspace_trend(bucket, tmp_path, night1, reports):
    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.local.base import InMemoryDataStorage
    from evidently.ui.workspace import Workspace

    ws_dir = str(tmp_path / "evidently")
    publish_reports(night1, None, ws_dir)
    summary = publish_reports(reports, bucket, ws_dir)

    names = {o.name for o in bucket.list("reports/night-2/")}
    assert names == {f"reports/night-2/{n}" for n in
                     ("drift.html", "drift.json", "accuracy.html", "accuracy.json", "summary.json")}
    stored = json.loads(bucket.read("reports/night-2/summary.json"))
    assert stored["report_uris"]["accuracy.html"] == bucket.uri("reports/night-2/accuracy.html")
    assert stored["drifted_features"] == reports.summary["drifted_features"]
    assert set(summary["workspace_runs"]) == {"drift", "accuracy"}

    ws = Workspace(ws_dir)
    project = ws.search_project("tagloop")[0]
    assert len(ws.list_runs(project.id)) == 4
    assert len(project.dashboard.model().panels) == len(trend_panels())
    storage = InMemoryDataStorage(ws_dir)
    for panel in trend_panels():       # every trend line has one point per night, in order
        filters = [SeriesFilter(tags=[], metadata={}, metric=v.metric, metric_labels=v.metric_labels)
                   for v in panel.values]
        series = asyncio.run(storage.get_data_series(project.id, filters, None, None)).series
        for line in series:
            assert len([v for v in line.values if v is not None]) == 2, (panel.title, line)
    drift_series = asyncio.run(storage.get_data_series(project.id, [SeriesFilter(
        tags=[], metadata={}, metric="evidently:metric_v2:DriftedColumnsCount",
        metric_labels={"value_type": "share"})], None, None)).series[0].values
    assert drift_series == pytest.approx([night1.summary["drift_share"], reports.summary["drift_share"]])


# --- headless Chromium ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium() -> str:
    path = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if path is None:  # `make test` installs it (scripts/setup.sh); a missing browser is a failure
        pytest.fail("no chromium on PATH: run scripts/setup.sh (installs Debian chromium)")
    return path


def dump_dom(chromium: str, html_path: str, profile: str) -> str:
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--dump-dom", f"file://{html_path}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=True).stdout


def metric(dom: str, name: str) -> str:
    m = re.search(rf'data-metric="{re.escape(name)}"[^>]*>([^<]*)<', dom)
    assert m, f"{name} not rendered"
    return m.group(1)


def test_reports_render_key_figures_in_chromium(chromium, reports, tmp_path):
    for name in ("accuracy.html", "drift.html"):
        (tmp_path / name).write_bytes(reports.files[name])
    acc = json.loads(reports.files["accuracy.json"])
    dom = dump_dom(chromium, str(tmp_path / "accuracy.html"), str(tmp_path / "profile"))
    assert "</html>" in dom
    for role in ("champion", "challenger"):
        assert metric(dom, f"overall/{role}/exact_match") == fmt(acc["overall"][role]["exact_match"])
        for set_name, scores in acc["sets"].items():
            assert metric(dom, f"set/{set_name}/{role}/exact_match") == fmt(scores[role]["exact_match"])
    assert metric(dom, "confusion/champion/0_to_O") == str(acc["overall"]["champion"]["confusions"]["0>O"])
    assert metric(dom, "gate/promoted") == "promoted"
    assert metric(dom, "gate/reason") == acc["gate"]["reason"]
    assert dom.count('<tr class="worst">') == len(acc["worst_examples"]) > 0
    assert dom.count("data:image/png;base64,") == len(acc["worst_examples"])

    drift = json.loads(reports.files["drift.json"])
    dom = dump_dom(chromium, str(tmp_path / "drift.html"), str(tmp_path / "profile"))
    assert metric(dom, "dataset_drift") == "DRIFT"
    assert metric(dom, "drift_share") == fmt(drift["drift_share"])
    assert metric(dom, "drifted_features") == ", ".join(drift["drifted_features"])
    assert metric(dom, "correction_rate") == fmt(drift["correction_rate"])
    assert metric(dom, "should_retrain") == "yes"
    assert metric(dom, "drift_score/brightness") == fmt(drift["features"]["brightness"]["score"])


def test_first_night_drift_compares_with_the_synthetic_suite(synth_crops):
    """No earlier corrections yet: the drift reference is the regression suite (rendered like the champion's
    training crops), so the first night gets a drift report; later nights compare with earlier rows."""
    import io

    from PIL import Image

    from ingest.dataset import empty_manifest
    from loop.gate import REGRESSION, EvalData
    from loop.stages import DataSplit, drift_reference
    from monitoring.report import build_reports
    from monitoring.table import table_from_crops

    def png(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        return buf.getvalue()

    suite = EvalData(REGRESSION, [f"s{i}" for i in range(len(synth_crops))], [c.label for c in synth_crops],
                     [png(c.image) for c in synth_crops])
    split = DataSplit("v1", empty_manifest(), empty_manifest())
    reference, meta = drift_reference(split, [suite], {"run_id": "r1"})
    assert len(reference) == len(synth_crops) and meta["drift_reference"].startswith("first night")
    current = table_from_crops([c.image[:, ::-1] // 3 for c in synth_crops], [c.label for c in synth_crops])
    out = build_reports("r1", reference=reference, current=current, meta=meta)
    assert "drift_skipped" not in out.summary and "drift.html" in out.files
    assert "first night" in out.files["drift.html"].decode()
