"""The morning page's parts without a browser: plot geometry, the gate's evidence, history, runbook, pages."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from loop.gate import SetScore, decide
from loop.paired import Paired, effect_ci
from loop.stages import gate_evidence
from monitoring import history, morning, plots
from monitoring.accuracy import EvalSet, accuracy_summary
from monitoring.html import accuracy_html, index_html


def test_one_night_is_a_labelled_dot_and_a_gap_breaks_the_line():
    one = plots.line_chart(["11-29 03:00"], [plots.Series("champion · new_batch", [0.429])])
    (line,) = one["lines"]
    assert line["paths"] == [] and len(line["points"]) == 1 and line["last"]["value"] == "0.429"
    gap = plots.line_chart(["a", "b", "c", "d"], [plots.Series("x", [0.5, 0.6, None, 0.7])])
    (line,) = gap["lines"]
    assert len(line["paths"]) == 1 and line["paths"][0].count("L") == 1     # a-b joined; d stands alone
    assert [p["value"] for p in line["points"]] == ["0.500", "0.600", "0.700"]
    ys = [p["y"] for p in line["points"]]
    assert ys[0] > ys[1] > ys[2]                   # higher values higher up (SVG y grows downwards)


def test_same_set_same_colour_and_labels_do_not_overlap():
    c = plots.line_chart(["a", "b"], [plots.Series("champion · s", [0.7, 0.71], key="s"),
                                      plots.Series("challenger · s", [0.7, 0.71], dashed=True, key="s"),
                                      plots.Series("champion · t", [0.9, 0.9], key="t")])
    a, b, t = c["lines"]
    assert a["color"] == b["color"] != t["color"]
    assert abs(a["last"]["label_y"] - b["last"]["label_y"]) >= 12


def test_change_bars_scale_covers_every_interval_and_colours_by_status():
    rows = [plots.Change("overall", 0.08, (0.05, 0.12), 252, "better"),
            plots.Change("slice a", -0.2, (-0.41, 0.01), 30, "failed"),
            plots.Change("empty", None, None, 0, "not judged")]
    c = plots.change_bars(rows)
    xs = [w for r in c["rows"] if r["whisker"] for w in (r["whisker"]["x0"], r["whisker"]["x1"])]
    assert all(c["box"].x0 - 1e-6 <= x <= c["box"].x1 + 1e-6 for x in xs)
    assert [r["color"] for r in c["rows"]] == [plots.BETTER, plots.WORSE, plots.NEUTRAL]
    assert c["rows"][2]["bar"] is None and c["rows"][2]["text"] == "-"
    assert c["rows"][0]["bar"]["x"] == pytest.approx(c["zero"])      # a gain starts at 0 and goes right


def test_heatmap_draws_the_most_frequent_pairs_with_their_counts():
    h = plots.heatmap({"champion": {"0>O": 9, "1>I": 2, "8>B": 1}, "challenger": {"0>O": 3, "5>S": 4}}, top=3)
    assert h["pairs"] == ["0>O", "5>S", "1>I"]
    cells = {(g["role"], c["pair"]): c["count"] for g in h["grids"] for c in g["cells"]}
    assert cells[("champion", "0>O")] == 9 and cells[("challenger", "5>S")] == 4 and cells[("challenger", "1>I")] == 0
    assert ("champion", "8>B") not in cells
    assert max(c["shade"] for g in h["grids"] for c in g["cells"]) == 1.0


def test_histograms_are_shares_of_each_window():
    h = plots.numeric_histogram("brightness", [10.0] * 30 + [200.0] * 10, [200.0] * 5)
    assert sum(h.reference) == pytest.approx(1) and sum(h.current) == pytest.approx(1)
    c = plots.categorical_histogram("format_family", ["nike"] * 3 + ["vans"], ["vans"] * 2 + [None])
    assert c.bins == ["nike", "vans"] and c.reference == [0.75, 0.25] and c.current == [0.0, 1.0]


def _scores(champ: list[bool], chall: list[bool], brand: list[str], name: str = "new_batch") -> dict[str, SetScore]:
    labels = [f"AB{i:04d}" for i in range(len(champ))]
    read = lambda ok: [lab if r else lab + "X" for lab, r in zip(labels, ok)]  # noqa: E731
    return {name: SetScore(name, "fp", labels, read(champ), [0.9] * len(labels), {"brand": brand}),
            "regression": SetScore("regression", "fp2", labels, read(champ), [0.9] * len(labels), {})}, \
           {name: SetScore(name, "fp", labels, read(chall), [0.8] * len(labels), {"brand": brand}),
            "regression": SetScore("regression", "fp2", labels, read(champ), [0.8] * len(labels), {})}


def test_gate_evidence_gives_every_check_its_interval():
    rng = np.random.default_rng(0)
    champ = list(rng.random(200) < 0.5)
    chall = [a or (i % 4 == 0) for i, a in enumerate(champ)]
    a, b = _scores(champ, chall, ["nike" if i % 2 else "vans" for i in range(200)])
    gate = gate_evidence(decide(a, b))
    assert gate["verdict"] == "promoted"
    for c in gate["checks"]:
        s = c["stats"]
        if s.get("n"):
            assert s["ci"] == pytest.approx(list(effect_ci(Paired(s["n"], 0, 0, s["gained"], s["lost"]), 0.05)))
    rows = morning.change_rows(gate)
    assert rows[0].label.startswith("overall") and rows[0].status == "better"
    assert {r.label for r in rows} >= {"new_batch", "new_batch/brand=nike", "regression suite (synthetic)"}


def test_refused_page_puts_the_failed_check_first_and_says_what_to_do():
    champ = [True] * 100
    chall = [i % 3 != 0 for i in range(100)]          # a third lost
    a, b = _scores(champ, chall, ["vans"] * 100)
    gate = gate_evidence(decide(a, b))
    ev = morning.evidence(gate)
    assert gate["verdict"] == "refused" and ev["n_failed"] >= 1
    assert ev["failed"] and all(c["status"] == "failed" for c in ev["failed"])
    assert ev["n_judged"] == len(ev["failed"]) + len(ev["sets"]) + len(ev["slices"]) - (ev["overall"]["passed"] is not None)
    es = EvalSet("new_batch", a["new_batch"].labels, {"champion": a["new_batch"].predictions,
                                                     "challenger": b["new_batch"].predictions})
    page = accuracy_html(accuracy_summary([es], gate), [es], {"models": {"champion": "4", "challenger": "5"}})
    assert 'data-verdict="refused">REFUSED<' in page
    assert page.index('data-table="gate-failed"') < page.index('data-table="gate-sets"')
    assert 'data-check="set new_batch"' in page[page.index('data-table="gate-failed"'):page.index('data-table="gate-sets"')]
    lines = morning.runbook("refused", {"champion": "4", "challenger": "5"}, [], gate["overall"])
    assert "v4 stays" in lines[0] and "tagloop promote 5" in lines[0]
    assert "rollback" in morning.runbook("promoted", {"challenger": "5"}, [], {})[0]
    assert "next night" in morning.runbook("no decision", {}, [], {"mde": 0.04})[0]
    assert len(morning.runbook("promoted", {}, [{"name": "dataset_drift"}], {})) == 2
    waiting = morning.runbook("awaiting approval", {"champion": "4", "challenger": "5"}, [], {})[0]
    assert "tagloop approve 5 --by NAME" in waiting and "v4 serves" in waiting
    assert morning.headline({"verdict": "awaiting approval"}, {})["text"] == "WAITING FOR APPROVAL"


def _summary(run: str, ts: str, em: float | None, rate: float | None = 0.2) -> dict:
    return {"run_id": run, "created_at": ts, "kind": "retrain", "models": {"champion": "1", "challenger": "2"},
            "exact_match": {} if em is None else {"new_batch": {"n": 10, "champion": em, "challenger": em + 0.1}},
            "gate": {"verdict": "no decision"}, "correction_rate": rate, "drift_share": 0.5, "alerts": [],
            "report_uris": {"accuracy.html": "x"}}


def test_history_reads_every_runs_summary_oldest_first(tmp_path):
    from bucket.storage import LocalStorage

    (tmp_path / "b").mkdir()
    st = LocalStorage(str(tmp_path / "b"))
    st.write("reports/r2/summary.json", json.dumps(_summary("r2", "2026-11-29T03:00:00", 0.6)).encode())
    st.write("reports/r1/summary.json", json.dumps(_summary("r1", "2026-11-28T03:00:00", 0.5)).encode())
    st.write("reports/m1/summary.json", json.dumps(_summary("m1", "2026-11-28T12:00:00", None, 0.3)).encode())
    st.write("reports/latest/summary.json", json.dumps(_summary("r2", "2026-11-29T03:00:00", 0.6)).encode())
    st.write("reports/broken/summary.json", b"{not json")
    points = history.read_history(st)
    assert [p["run_id"] for p in points] == ["r1", "m1", "r2"]
    assert history.em_series(points) == {("new_batch", "champion"): [0.5, None, 0.6],
                                         ("new_batch", "challenger"): [0.6, None, 0.7]}
    assert [p["run_id"] for p in history.read_history(st, exclude="r2")] == ["r1", "m1"]
    page = index_html(points)
    assert page.count("<tr data-run=") == 3 and page.index('data-run="r2"') < page.index('data-run="r1"')
    assert 'href="r1/accuracy.html"' in page and 'data-plot="trend-exact-match"' in page


def test_trend_after_one_night_shows_each_set_as_one_labelled_point():
    points = [history.trend_point(_summary("r1", "2026-11-29T03:00:00", 0.5))]
    t = morning.trend(points, ["champion", "challenger"])
    assert [(ln["name"], [p["value"] for p in ln["points"]]) for ln in t["lines"]] == [
        ("champion · new_batch", ["0.500"]), ("challenger · new_batch", ["0.600"])]
    assert t["n_nights"] == 1


def test_morning_page_reads_verdict_first_with_links(tmp_path):
    labels = ["DD1391-100", "EE8484", "AV3133 001", "162058C"] * 10
    champ = [lab if i % 4 else lab.replace("1", "I") for i, lab in enumerate(labels)]
    chall = [lab.replace("0", "O") if i % 8 == 0 else lab.replace("8", "B") if i % 8 == 1 else lab
             for i, lab in enumerate(labels)]
    es = EvalSet("new_batch", labels, {"champion": champ, "challenger": chall},
                 images=[np.full((30, 90, 3), 200, np.uint8)] * len(labels))
    a = {"new_batch": SetScore("new_batch", "f", labels, champ, [0.9] * 40, {})}
    b = {"new_batch": SetScore("new_batch", "f", labels, chall, [0.9] * 40, {})}
    gate = gate_evidence(decide(a, b))
    meta = {"run_id": "retrain-x", "models": {"champion": "1", "challenger": "2"}, "ingest_run_id": "20261129T0300Z-a",
            "n_quarantined": 2, "n_review": 3, "mlflow_run_id": "abc", "mlflow_run_url": "http://mlflow:5000/#/x"}
    page = accuracy_html(accuracy_summary([es], gate), [es], meta, [], has_drift=True)
    assert page.index('id="verdict"') < page.index('id="evidence"') < page.index('id="change"') < page.index('id="worst"')
    for href in ("drift.html", "../index.html", "http://mlflow:5000/#/x", "../../quarantine/20261129T0300Z-a/",
                 "../../review/queue.jsonl"):
        assert f'href="{href}"' in page
    assert re.search(r'data-outcome="lost"', page) and re.search(r'data-outcome="gained"', page)
    assert 'data-plot="change"' in page and 'data-plot="confusions-champion"' in page
    assert "<script" not in page and "http://" not in page.replace("http://mlflow:5000/#/x", "")


def test_later_nights_compare_with_the_previous_window():
    """The drift reference after the first night: the newest ingest runs of the champion's rows, enough of them
    for a fair comparison, never the synthetic suite."""
    import pandas as pd

    from loop.stages import DataSplit, drift_reference, previous_window

    runs = ["20261127T030000Z-a"] * 150 + ["20261128T030000Z-b"] * 120 + ["20261129T030000Z-c"] * 100
    earlier = pd.DataFrame({"sample_id": [f"s{i}" for i in range(len(runs))], "label": ["AB1234"] * len(runs),
                            "ingest_run": runs, "width": 90.0, "height": 30.0})
    rows, what = previous_window(earlier, min_rows=200)
    assert set(rows["ingest_run"]) == {"20261128T030000Z-b", "20261129T030000Z-c"} and len(rows) == 220
    assert what.startswith("previous window: 220 corrections")
    assert len(previous_window(earlier, min_rows=50)[0]) == 100
    table, meta = drift_reference(DataSplit("v2", earlier.iloc[:0], earlier), [], {"run_id": "r"}, min_rows=200)
    assert len(table) == 220 and meta["drift_reference"] == what


def test_drift_page_counts_agree_and_scores_are_grouped_by_kind():
    """The monitor featurized 302 of 305 corrections: the page says so in one place, with the reasons; a p-value
    and a distance never share a column."""
    from monitoring.html import drift_html

    f = lambda score, method, thr, drifted: {"score": score, "method": method, "threshold": thr, "drifted": drifted}  # noqa: E731
    drift = {"dataset_drift": False, "drift_share": 1 / 3, "drifted_features": ["format_family"],
             "features": {"brightness": f(0.4, "K-S p_value", 0.05, False), "blur": f(0.2, "K-S p_value", 0.05, False),
                          "format_family": f(0.31, "sized_jensenshannon", 0.12, True)},
             "n_reference": 1000, "n_current": 302, "skipped_features": ["confidence"], "correction_rate": 0.12,
             "reference_correction_rate": 0.1, "correction_rate_change": 0.02, "n_rate_current": 302,
             "n_rate_reference": 1000, "config": {"drift_share": 0.5}}
    page = drift_html(drift, None, {"run_id": "monitor-x", "kind": "monitor", "n_current": 305,
                                    "current_skipped": {"corrupt_image": 2, "missing_sidecar": 1}})
    assert 'data-metric="n_current">302<' in page and "302 of 305 new corrections; 3 not featurized" in page
    assert "corrupt_image: 2, missing_sidecar: 1" in page
    sections = re.findall(r'data-group="([^"]+)">(.*?)</section>', page, re.S)
    assert [(k, re.findall(r'drift_score/(\w+)', body)) for k, body in sections] == [
        ("p-value", ["brightness", "blur"]), ("distance", ["format_family"])]
    assert 'href="accuracy.html"' not in page          # a monitor run has no accuracy page


def test_mlflow_link_is_a_page_on_a_server_and_an_id_otherwise(monkeypatch):
    from types import SimpleNamespace

    import mlflow

    from loop.tracking import run_links

    run = SimpleNamespace(info=SimpleNamespace(run_id="r123", experiment_id="4"))
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: "https://mlflow.example/")
    assert run_links(run)["mlflow_run_url"] == "https://mlflow.example/#/experiments/4/runs/r123"
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: "sqlite:///home/mlflow.db")
    local = run_links(run)
    assert "mlflow_run_url" not in local and local["mlflow_run_id"] == "r123"
    (link,) = [x for x in morning.links(local, False) if x["text"] == "MLflow run"]
    assert link["href"] == "" and "r123" in link["note"] and "sqlite:///home/mlflow.db" in link["note"]
