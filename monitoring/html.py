"""The report pages, rendered from Jinja2 templates (``monitoring/templates``), self-contained.

No external asset: figures are inline SVG (``monitoring.plots`` places them, the
``plots.html.j2`` macros draw them), thumbnails are base64 PNG, so a page opens from a
bucket copy offline. Every number a test or a person with devtools looks for sits in an
element with a ``data-metric`` attribute; every figure has ``data-plot``.
"""
from __future__ import annotations

import base64
import os
import re
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from monitoring import morning, plots
from monitoring.accuracy import EvalSet
from monitoring.confusions import PAIR_NAMES, align
from recognizer.metrics import normalize

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")


def fmt(x: Any) -> str:
    """3-decimal number, ``-`` for None; ints stay ints; booleans read yes / no."""
    if x is None:
        return "-"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, str):
        return x
    return f"{float(x):.3f}"


def signed(x: Any) -> str:
    return "-" if x is None else f"{float(x):+.3f}"


def pvalue(p: Any) -> str:
    """A p-value as people read it: ``<0.001`` rather than ``0.000`` for a tiny one."""
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def when(ts: Any) -> str:
    """``2026-11-29T03:00:12+00:00`` -> ``2026-11-29 03:00 UTC``."""
    s = str(ts or "")
    return f"{s[:10]} {s[11:16]} UTC" if len(s) >= 16 else s


def code(text: str) -> Markup:
    """Escape ``text`` and set its backquoted parts in ``<code>``."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def visible(s: str) -> str:
    return s.replace(" ", "␣")


def pair_slug(name: str) -> str:
    """``0>O`` -> ``0_to_O``, ``-> `` -> ``dash_to_space`` (attribute-safe names for confusion cells)."""
    words = {"-": "dash", " ": "space"}
    return "_to_".join(words.get(c, c) for c in name.split(">")) if ">" in name else name


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2", "html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=fmt, signed=signed, pvalue=pvalue, when=when, code=code, visible=visible, slug=pair_slug)
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def thumbnail(rgb: np.ndarray, height: int = 40, max_width: int = 320, quality: int = 85) -> str:
    """RGB crop -> ``data:image/jpeg;base64,...`` at most ``height`` x ``max_width`` pixels (JPEG: a photo's
    thumbnail is a quarter of its PNG)."""
    h, w = rgb.shape[:2]
    scale = min(height / h, max_width / w, 1.0)
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode thumbnail")
    return "data:image/jpeg;base64," + base64.b64encode(jpg.tobytes()).decode()


def diff_markup(label: str, pred: str) -> Markup:
    """``pred`` with the characters that differ from ``label`` in ``<mark>`` (a missing one as ``·``)."""
    out = []
    for a, b in align(normalize(label), normalize(pred)):
        if b is None:
            out.append(Markup("<mark class='missing' title='missing'>·</mark>"))
        elif a != b:
            out.append(Markup("<mark>%s</mark>") % Markup(str(escape(b)).replace(" ", "&nbsp;")))
        else:
            out.append(escape(b))
    return Markup("").join(out)


def _worst_rows(worst: list[dict[str, Any]], sets: dict[str, EvalSet]) -> list[dict[str, Any]]:
    rows = []
    for w in worst:
        es = sets[w["set"]]
        rows.append({**w, "thumb": thumbnail(es.images[w["index"]]) if es.images is not None else None,
                     "marked": {r: diff_markup(w["label"], p) for r, p in w["predictions"].items()},
                     "right": w.get("right", {})})
    return rows


def accuracy_html(summary: dict[str, Any], sets: list[EvalSet], meta: dict[str, Any] | None = None,
                  history: list[dict[str, Any]] | None = None, has_drift: bool = False) -> str:
    """The morning page: verdict and evidence, change per set and slice, trend, confusions, worst crops, links.

    ``history``: trend points of earlier runs (``monitoring.history``), tonight's included last.
    """
    meta = meta or {}
    roles, gate, models = summary["roles"], summary["gate"], meta.get("models") or summary.get("models") or {}
    points = history or []
    changes = morning.change_rows(gate, summary.get("synthetic_sets") or [])
    heat = plots.heatmap({r: dict(summary["overall"][r].get("substitutions") or {}) for r in roles})
    alerts = meta.get("alerts") or []
    return render("accuracy.html.j2", title=f"tagloop {meta.get('run_id', '')}: better or worse?", meta=meta,
                  models=models, gate=gate, head=morning.headline(gate, models),
                  runbook=morning.runbook(morning.headline(gate, models)["verdict"], models, alerts,
                                          (gate or {}).get("overall") or {}),
                  evidence=morning.evidence(gate), change=plots.change_bars(changes) if changes else None,
                  trend=morning.trend(points, roles), rates=morning.rate_trend(points), heat=heat, roles=roles,
                  pair_names=PAIR_NAMES, overall=summary["overall"], overall_sets=summary.get("overall_sets") or [],
                  synthetic_sets=summary.get("synthetic_sets") or [], sets=summary["sets"],
                  worst=_worst_rows(summary["worst_examples"], {s.name: s for s in sets}),
                  links=morning.links(meta, has_drift))


def score_kind(method: str) -> dict[str, str]:
    """How to read a drift score: a p-value (1 = same, drifts below the threshold) or a distance (0 = same,
    drifts above it)."""
    if "p_value" in method or "p-value" in method:
        return {"kind": "p-value", "reads": "1 = same distribution; drifts below the threshold"}
    return {"kind": "distance", "reads": "0 = same distribution; drifts above the threshold"}


METHOD_NAMES = {"K-S p_value": "Kolmogorov-Smirnov test, p-value", "sized_jensenshannon":
                "Jensen-Shannon distance (threshold grows for small batches)",
                "Wasserstein distance (normed)": "Wasserstein distance, normed", "Z-test p_value": "Z-test, p-value"}


def drift_groups(drift: dict[str, Any], reference: Any = None, current: Any = None) -> list[dict[str, Any]]:
    """Features grouped by their test, one kind of score per table, each row with its two histograms."""
    from monitoring.table import CATEGORICAL_FEATURES

    groups: dict[str, dict[str, Any]] = {}
    for name, f in drift["features"].items():
        g = groups.setdefault(f["method"], {"method": f["method"], "title": METHOD_NAMES.get(f["method"], f["method"]),
                                            **score_kind(f["method"]), "rows": []})
        chart = None
        if reference is not None and current is not None and name in reference and name in current:
            make = plots.categorical_histogram if name in CATEGORICAL_FEATURES else plots.numeric_histogram
            h = make(name, list(reference[name]), list(current[name]))
            h.drifted = bool(f["drifted"])
            chart = plots.histogram_chart(h)
        g["rows"].append({"name": name, **f, "chart": chart})
    return list(groups.values())


def drift_html(drift: dict[str, Any], alerts: dict[str, Any] | None = None, meta: dict[str, Any] | None = None,
               reference: Any = None, current: Any = None, evidently_file: str | None = None) -> str:
    """The drift page: verdict, counts that agree, features by kind of score with reference vs current
    histograms, correction rates, alerts; the full Evidently report is a separate, linked file."""
    meta = meta or {}
    return render("drift.html.j2", title=f"tagloop drift {meta.get('run_id', '')}", drift=drift,
                  alerts=alerts, meta=meta, groups=drift_groups(drift, reference, current),
                  evidently_file=evidently_file, skipped=meta.get("current_skipped") or {})


def index_html(points: list[dict[str, Any]], roles: tuple[str, ...] = ("champion", "challenger")) -> str:
    """``reports/index.html``: every run newest first, with links, and the trend plots over nights."""
    sets = sorted({s for p in points for s in p["exact_match"]})
    return render("index.html.j2", title="tagloop reports: every night", runs=list(reversed(points)), sets=sets,
                  roles=list(roles), trend=morning.trend(points, list(roles)), rates=morning.rate_trend(points))
