"""Drift and accuracy reports end to end on rendered crops: verdicts, publishing, trend, browser."""
from __future__ import annotations

import asyncio
import html
import json
import os
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitoring.accuracy import EvalSet
from monitoring.html import fmt
from monitoring.publish import sync_workspace, trend_panels
from monitoring.workspace import main as workspace_main
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
def gate(eval_sets):
    """The real gate on the two sets (both models' readings), with every check's interval."""
    from loop.gate import SetScore, decide
    from loop.stages import gate_evidence

    scores = {r: {es.name: SetScore(es.name, "fp-" + es.name, es.labels, es.predictions[r], es.confidences[r],
                                    es.slices) for es in eval_sets} for r in ("champion", "challenger")}
    suite = eval_sets[1]     # both read the regression suite alike: it holds
    for r in scores:
        scores[r]["regression"] = SetScore("regression", "fp-suite", suite.labels, suite.predictions["champion"],
                                           [0.9] * len(suite.labels), {})
    return gate_evidence(decide(scores["champion"], scores["challenger"], real_sets=["heldout", "renders"]))


@pytest.fixture(scope="module")
def reports(reference, shifted, eval_sets, gate):
    """Night 2: a shifted batch and the gate's decision."""
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
    assert acc["gate"]["verdict"] == "promoted" and acc["gate"]["promoted"] is True


def test_publish_to_bucket_and_workspace_trend(bucket, tmp_path, night1, reports):
    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.local.base import InMemoryDataStorage
    from evidently.ui.workspace import Workspace

    ws_dir = str(tmp_path / "evidently")
    publish_reports(night1, bucket, ws_dir)
    summary = publish_reports(reports, bucket, ws_dir)

    names = {o.name for o in bucket.list("reports/night-2/")}
    assert names == {f"reports/night-2/{n}" for n in
                     ("drift.html", "drift.json", "accuracy.html", "accuracy.json", "summary.json", "evidently.html",
                      "snapshots/drift.json", "snapshots/accuracy.json")}
    stored = json.loads(bucket.read("reports/night-2/summary.json"))
    assert stored["report_uris"]["accuracy.html"] == bucket.uri("reports/night-2/accuracy.html")
    assert stored["drifted_features"] == reports.summary["drifted_features"]
    assert set(summary["workspace_runs"]) == {"night-2-drift", "night-2-accuracy"}

    # the trend in the bucket: index and latest/ rebuilt from every run's summary
    index = json.loads(bucket.read("reports/index.json"))
    assert [r["run_id"] for r in index["runs"]] == ["night-1", "night-2"]
    assert bucket.read("reports/latest/accuracy.html") == reports.files["accuracy.html"]
    page = bucket.read("reports/index.html").decode()
    assert 'href="night-2/accuracy.html"' in page and 'href="night-1/drift.html"' in page

    ws = Workspace(ws_dir)
    project = ws.search_project("tagloop")[0]
    assert len(ws.list_runs(project.id)) == 4
    assert len(project.dashboard.model().panels) == len(trend_panels())
    storage = InMemoryDataStorage(ws_dir)
    for panel in trend_panels():       # every panel has one point per night, in order
        filters = [SeriesFilter(tags=[], metadata={}, metric=v.metric, metric_labels=v.metric_labels)
                   for v in panel.values]
        series = asyncio.run(storage.get_data_series(project.id, filters, None, None)).series
        assert series, panel.title
        for line in series:
            assert len([v for v in line.values if v is not None]) == 2, (panel.title, line)
    drift_series = asyncio.run(storage.get_data_series(project.id, [SeriesFilter(
        tags=[], metadata={}, metric="evidently:metric_v2:DriftedColumnsCount",
        metric_labels={"value_type": "share"})], None, None)).series[0].values
    assert drift_series == pytest.approx([night1.summary["drift_share"], reports.summary["drift_share"]])

    # another worker (or a reader's laptop) gets every night from the bucket, once
    other = str(tmp_path / "elsewhere")
    assert set(sync_workspace(other, storage=bucket)) == {f"night-{n}-{k}" for n in (1, 2) for k in ("drift", "accuracy")}
    assert sync_workspace(other, storage=bucket) == {}
    assert workspace_main(["--bucket", bucket.url, "--workspace", other]) == 0     # the reader's command: nothing new
    assert len(Workspace(other).list_runs(Workspace(other).search_project("tagloop")[0].id)) == 4


def test_dashboard_has_data_after_one_night(tmp_path, night1):
    """Every panel has a value after the first night (counters and per-night bars; a line needs two)."""
    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.local.base import InMemoryDataStorage
    from evidently.ui.workspace import Workspace

    ws_dir = str(tmp_path / "ws")
    publish_reports(night1, None, ws_dir)
    project = Workspace(ws_dir).search_project("tagloop")[0]
    storage = InMemoryDataStorage(ws_dir)
    for panel in trend_panels():
        assert panel.plot_params["plot_type"] in ("counter", "bar"), panel.title
        filters = [SeriesFilter(tags=[], metadata={}, metric=v.metric, metric_labels=v.metric_labels)
                   for v in panel.values]
        series = asyncio.run(storage.get_data_series(project.id, filters, None, None)).series
        values = [v for line in series for v in line.values if v is not None]
        assert values, f"panel {panel.title!r} is blank after one night"


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
    return html.unescape(m.group(1))


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
    assert metric(dom, "gate/promoted") == "PROMOTED"
    assert metric(dom, "gate/reason") == acc["gate"]["reason"]
    assert metric(dom, "gate/n") == str(acc["gate"]["overall"]["n"])
    assert dom.count('<tr class="worst"') == len(acc["worst_examples"]) > 0
    assert dom.count("data:image/jpeg;base64,") == len(acc["worst_examples"])
    assert 'data-table="gate-overall"' in dom           # the overall test has its own table; every other check a row
    assert all(f'data-check="{c["name"]}"' in dom for c in acc["gate"]["checks"] if c["name"] != "overall")

    drift = json.loads(reports.files["drift.json"])
    dom = dump_dom(chromium, str(tmp_path / "drift.html"), str(tmp_path / "profile"))
    assert metric(dom, "dataset_drift") == "DRIFT"
    assert metric(dom, "drift_share") == fmt(drift["drift_share"])
    assert metric(dom, "drifted_features") == ", ".join(drift["drifted_features"])
    assert metric(dom, "correction_rate") == fmt(drift["correction_rate"])
    assert metric(dom, "n_current") == str(drift["n_current"])
    assert metric(dom, "should_retrain") == "yes"
    assert metric(dom, "drift_score/brightness") == "<0.001" and drift["features"]["brightness"]["score"] < 0.001
    assert metric(dom, "drift_score/format_family") == fmt(drift["features"]["format_family"]["score"])


def test_drift_page_one_kind_of_score_per_table_small_and_without_inner_scrolling(reports):
    page = reports.files["drift.html"].decode()
    assert len(reports.files["drift.html"]) < 300_000 and "<iframe" not in page and "<script" not in page
    drift = json.loads(reports.files["drift.json"])
    for group in re.findall(r'<section class="card" data-group="([^"]+)">(.*?)</section>', page, re.S):
        kind, body = group
        names = re.findall(r'data-metric="drift_score/([^"]+)"', body)
        assert names and {"p-value" if "p_value" in drift["features"][n]["method"] else "distance" for n in names} == {kind}
    assert page.count('data-plot="hist-') == len(drift["features"])
    assert 'href="evidently.html"' in page and "evidently.html" in reports.files


ARTIFACTS = Path(os.environ.get("TAGLOOP_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / ".tagloop-test-artifacts"))


def screenshot(chromium: str, html_path: Path, png: Path, profile: str, height: int = 2400) -> np.ndarray:
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--window-size=1280,{height}", f"--screenshot={png}", f"file://{html_path}"]
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    img = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert img is not None, f"no screenshot at {png}"
    print(f"screenshot: {png}")
    return img


def colour_pixels(img: np.ndarray, hex_rgb: str, tol: int = 12) -> int:
    rgb = np.array([int(hex_rgb[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(img[..., ::-1].astype(int) - rgb).max(axis=2) <= tol).sum())


@pytest.mark.slow
def test_morning_pages_in_chromium_with_screenshots(chromium, tmp_path, reference, unshifted, shifted, eval_sets, gate):
    """Two nights published into a bucket: the second morning page shows the trend as lines, the first as
    labelled dots; both render with their plots in Chromium; screenshots kept in .tagloop-test-artifacts/."""
    from bucket.storage import LocalStorage
    from monitoring.history import read_history

    (tmp_path / "bucket").mkdir()
    store = LocalStorage(str(tmp_path / "bucket"))
    meta = {"dataset_version": "abc123", "ingest_run_id": "20261120T030000Z-a", "n_quarantined": 2, "n_review": 5,
            "mlflow_run_id": "0123abcd", "mlflow_tracking_uri": "sqlite:///home/mlflow.db"}
    for night, current in ((1, unshifted), (2, shifted[1])):
        run = f"retrain-night-{night}"
        rep = build_reports(run, reference, current, eval_sets, gate, timestamp=NIGHT + timedelta(days=night - 1),
                            meta={**meta, "models": {"champion": str(night), "challenger": str(night + 1)}},
                            history=read_history(store, exclude=run), embed_evidently=False)
        publish_reports(rep, store)
    root = tmp_path / "bucket" / "reports"
    sizes = {p: (root / p).stat().st_size for p in ("retrain-night-2/accuracy.html", "retrain-night-2/drift.html",
                                                    "index.html")}
    assert all(size < 400_000 for size in sizes.values()), sizes

    prof = str(tmp_path / "profile")
    dom = dump_dom(chromium, str(root / "retrain-night-2" / "accuracy.html"), prof)
    for plot in ("trend-exact-match", "trend-correction-rate", "change", "confusions-champion", "confusions-challenger"):
        assert f'data-plot="{plot}"' in dom, plot
    trend = re.search(r'<svg data-plot="trend-exact-match".*?</svg>', dom, re.S).group(0)
    n_lines = trend.count("<path")
    assert n_lines == 2 * len(eval_sets) and trend.count("<circle") == 2 * n_lines    # two nights per line
    assert metric(dom, "gate/promoted") == gate["verdict"].upper()
    assert 'href="drift.html"' in dom and 'href="../index.html"' in dom and "quarantine/20261120T030000Z-a/" in dom
    assert {"lost", "gained"} & set(re.findall(r'data-outcome="([^"]+)"', dom))
    first = dump_dom(chromium, str(root / "retrain-night-1" / "accuracy.html"), prof)
    trend1 = re.search(r'<svg data-plot="trend-exact-match".*?</svg>', first, re.S).group(0)
    assert "<path" not in trend1 and trend1.count("<circle") == 2 * len(eval_sets) and "one night so far" in trend1

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = {"accuracy-night-2.png": root / "retrain-night-2" / "accuracy.html",
             "accuracy-night-1.png": root / "retrain-night-1" / "accuracy.html",
             "drift-night-2.png": root / "retrain-night-2" / "drift.html", "index.png": root / "index.html"}
    for name, page in shots.items():
        img = screenshot(chromium, page, ARTIFACTS / name, prof)
        assert img.shape[1] == 1280 and len(np.unique(img.reshape(-1, 3), axis=0)) > 200   # not a blank page
    badge = {"promoted": "#2e8b57", "refused": "#c0392b", "no decision": "#b7791f"}[gate["verdict"]]
    assert colour_pixels(cv2.imread(str(ARTIFACTS / "accuracy-night-2.png")), badge) > 800   # the verdict badge


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
