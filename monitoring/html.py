"""Small self-contained HTML pages for the drift and accuracy reports (no external assets).

Every figure sits in an element with a ``data-metric`` attribute naming it, so a
browser test (or a person with devtools) can find it; numbers are shown with
``fmt``.
"""
from __future__ import annotations

import base64
import html
from typing import Any

import cv2
import numpy as np

from monitoring.accuracy import EvalSet
from monitoring.confusions import PAIR_NAMES, align
from recognizer.metrics import normalize

CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}
mark{background:#ffd54f}.bad{color:#b00020;font-weight:bold}.ok{color:#0a7d32;font-weight:bold}img{image-rendering:pixelated}
iframe{width:100%;height:900px;border:1px solid #ccc}"""


def fmt(x: Any) -> str:
    """4-decimal number, ``-`` for None; ints stay ints."""
    if x is None:
        return "-"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.4f}"


def esc(x: Any) -> str:
    return html.escape(str(x))


def cell(value: Any, metric: str | None = None, cls: str = "") -> str:
    attr = f' data-metric="{esc(metric)}"' if metric else ""
    klass = f' class="{cls}"' if cls else ""
    return f"<td{attr}{klass}>{esc(fmt(value) if not isinstance(value, str) else value)}</td>"


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>{body}</body></html>")


def thumbnail(rgb: np.ndarray, height: int = 40, max_width: int = 320) -> str:
    """RGB crop -> ``data:image/png;base64,...`` at most ``height`` x ``max_width`` pixels."""
    h, w = rgb.shape[:2]
    scale = min(height / h, max_width / w, 1.0)
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode thumbnail")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode()


def _meta(meta: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th class='l'>{esc(k)}</th>{cell(str(v), f'meta/{k}', 'l')}</tr>" for k, v in meta.items())
    return f"<table>{rows}</table>" if rows else ""


def _alerts(alerts: dict[str, Any] | None) -> str:
    if not alerts:
        return ""
    items = "".join(f"<li class='bad' data-alert='{esc(a['name'])}'>{esc(a['name'])}: {esc(a['message'])}</li>"
                    for a in alerts["alerts"]) or "<li class='ok'>no alert</li>"
    verdict = "yes" if alerts["should_retrain"] else "no"
    return f"<h2>Alerts</h2><ul>{items}</ul><p>Should retrain: <b data-metric='should_retrain'>{verdict}</b></p>"


def drift_html(drift: dict[str, Any], alerts: dict[str, Any] | None = None, meta: dict[str, Any] | None = None,
               evidently_html: str | None = None) -> str:
    """Drift summary page: verdict, per-feature scores, correction rates, alerts, the Evidently report."""
    verdict = "DRIFT" if drift["dataset_drift"] else "no drift"
    head = (f"<p>Dataset drift: <b data-metric='dataset_drift' class='{'bad' if drift['dataset_drift'] else 'ok'}'>"
            f"{verdict}</b> &mdash; drifted features: <b data-metric='drift_share'>{fmt(drift['drift_share'])}</b> "
            f"share ({len(drift['drifted_features'])} of {len(drift['features'])}): "
            f"<span data-metric='drifted_features'>{esc(', '.join(drift['drifted_features']) or 'none')}</span></p>"
            f"<p>Reference rows {drift['n_reference']}, current rows {drift['n_current']}.</p>")
    rates = ("<h2>Correction rate</h2><table><tr><th>window</th><th>share of crops corrected</th></tr>"
             f"<tr><td class='l'>current</td>{cell(drift['correction_rate'], 'correction_rate')}</tr>"
             f"<tr><td class='l'>reference</td>{cell(drift['reference_correction_rate'], 'reference_correction_rate')}"
             f"</tr><tr><td class='l'>change</td>{cell(drift['correction_rate_change'], 'correction_rate_change')}"
             "</tr></table>")
    rows = "".join(
        f"<tr><td class='l'>{esc(name)}</td>{cell(f['score'], f'drift_score/{name}')}<td class='l'>{esc(f['method'])}"
        f"</td>{cell(f['threshold'])}{cell('yes' if f['drifted'] else 'no', f'drifted/{name}', 'bad' if f['drifted'] else '')}"
        "</tr>" for name, f in drift["features"].items())
    table = ("<h2>Features</h2><table><tr><th class='l'>feature</th><th>score</th><th class='l'>test</th>"
             f"<th>threshold</th><th>drifted</th></tr>{rows}</table>")
    skipped = (f"<p>Not compared (no values on one side): {esc(', '.join(drift['skipped_features']))}</p>"
               if drift["skipped_features"] else "")
    embed = (f"<h2>Evidently report</h2><iframe srcdoc=\"{html.escape(evidently_html, quote=True)}\"></iframe>"
             if evidently_html else "")
    return page("tagloop drift report", _meta(meta or {}) + head + _alerts(alerts) + rates + table + skipped + embed)


def _score_table(title: str, scores: dict[str, dict[str, Any]], key: str) -> str:
    roles = list(scores)
    head = "".join(f"<th>{esc(r)} exact match</th><th>{esc(r)} norm. edit distance</th>" for r in roles)
    rows = "<tr><td class='l'><b>all</b></td>" + "".join(
        cell(scores[r]["exact_match"], f"{key}/{r}/exact_match")
        + cell(scores[r]["norm_edit_distance"], f"{key}/{r}/norm_edit_distance") for r in roles) + "</tr>"
    first = scores[roles[0]]
    for col, vals in first.get("slices", {}).items():
        for val in vals:
            rows += f"<tr><td class='l'>{esc(col)} = {esc(val)} (n={vals[val]['n']})</td>" + "".join(
                cell(scores[r]["slices"][col][val]["exact_match"], f"{key}/{r}/{col}={val}/exact_match")
                + cell(scores[r]["slices"][col][val]["norm_edit_distance"]) for r in roles) + "</tr>"
    return (f"<h2>{esc(title)} (n={first['n']})</h2><table><tr><th class='l'>slice</th>{head}</tr>{rows}</table>")


def pair_slug(name: str) -> str:
    """``0>O`` -> ``0_to_O``, ``-> `` -> ``dash_to_space`` (attribute-safe names for confusion cells)."""
    words = {"-": "dash", " ": "space"}
    return "_to_".join(words.get(c, c) for c in name.split(">")) if ">" in name else name


def _confusion_table(overall: dict[str, dict[str, Any]]) -> str:
    roles = list(overall)
    names = PAIR_NAMES + ["other_substitutions"]
    head = "".join(f"<th>{esc(r)}</th>" for r in roles)
    rows = "".join(f"<tr><td class='l'>{esc(n.replace(' ', '␣'))}</td>"
                   + "".join(cell(overall[r]["confusions"][n], f"confusion/{r}/{pair_slug(n)}") for r in roles)
                   + "</tr>"
                   for n in names)
    return ("<h2>Character confusions (label&gt;read, all sets)</h2>"
            f"<table><tr><th class='l'>pair</th>{head}</tr>{rows}</table>")


def diff_markup(label: str, pred: str) -> str:
    """``pred`` as HTML with the characters that differ from ``label`` in ``<mark>`` (a missing one as ``·``)."""
    out = []
    for a, b in align(normalize(label), normalize(pred)):
        if b is None:
            out.append("<mark title='missing'>·</mark>")
        elif a != b:
            out.append(f"<mark>{esc(b).replace(' ', '&nbsp;')}</mark>")
        else:
            out.append(esc(b))
    return "".join(out)


def _worst_table(worst: list[dict[str, Any]], sets: dict[str, EvalSet], roles: list[str]) -> str:
    rows = ""
    for w in worst:
        es = sets[w["set"]]
        img = (f"<img alt='crop' src='{thumbnail(es.images[w['index']])}'>" if es.images is not None else "")
        preds = "".join(f"<td class='l'><code>{diff_markup(w['label'], w['predictions'][r])}</code></td>"
                        if r in w["predictions"] else "<td></td>" for r in roles)
        rows += (f"<tr class='worst'><td class='l'>{img}</td><td class='l'><code>{esc(w['label'])}</code></td>{preds}"
                 f"<td class='l'>{esc(w['set'])}</td></tr>")
    head = "".join(f"<th class='l'>{esc(r)}</th>" for r in roles)
    return (f"<h2 id='worst'>Worst examples</h2><table><tr><th class='l'>crop</th><th class='l'>label</th>{head}"
            f"<th class='l'>set</th></tr>{rows}</table>")


def _p_value(p: Any) -> Any:
    """A p-value as people read it: ``<0.001`` rather than ``0.0000`` for a tiny one."""
    return "<0.001" if isinstance(p, (int, float)) and p < 0.001 else p


def _gate(gate: dict[str, Any] | None) -> str:
    """The decision: ``promoted``, ``refused`` (``not promoted``) or ``no decision`` (the champion stays), with the
    overall paired test's numbers when given."""
    if not gate:
        return "<h2>Gate</h2><p data-metric='gate'>no gate decision given</p>"
    promoted = bool(gate.get("promoted"))
    verdict = gate.get("verdict") or ("promoted" if promoted else "not promoted")
    label = {"refused": "not promoted", "no decision": "no decision: the champion stays"}.get(verdict, verdict)
    cls = "ok" if promoted else "" if verdict == "no decision" else "bad"
    ov = gate.get("overall") or {}
    ci = ov.get("ci") or [None, None]
    test = "" if not ov else (
        "<table><tr><th>n</th><th>gained</th><th>lost</th><th>difference</th><th>CI low</th><th>CI high</th>"
        "<th>exact McNemar p</th><th>minimum detectable effect</th></tr><tr>"
        + "".join(cell(ov.get(k), f"gate/{k}") for k in ("n", "gained", "lost", "diff"))
        + cell(ci[0], "gate/ci_low") + cell(ci[1], "gate/ci_high") + cell(_p_value(ov.get("p")), "gate/p")
        + cell(ov.get("mde"), "gate/mde") + "</tr></table>")
    return (f"<h2>Gate</h2><p>Decision: <b data-metric='gate/promoted' data-verdict='{esc(verdict)}' class='{cls}'>"
            f"{esc(label)}</b> &mdash; "
            f"<span data-metric='gate/reason'>{esc(gate.get('reason', ''))}</span></p>{test}")


def accuracy_html(summary: dict[str, Any], sets: list[EvalSet], meta: dict[str, Any] | None = None) -> str:
    """Accuracy page: gate decision, overall and per-set score tables, confusions, worst examples."""
    roles = summary["roles"]
    body = _meta(meta or {}) + _gate(summary["gate"]) + _score_table("All sets", summary["overall"], "overall")
    for name, scores in summary["sets"].items():
        body += _score_table(f"Set {name}", scores, f"set/{name}")
    body += _confusion_table(summary["overall"])
    body += _worst_table(summary["worst_examples"], {s.name: s for s in sets}, roles)
    return page("tagloop accuracy report", body)
