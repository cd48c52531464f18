"""Plot geometry for the report pages: plain numbers in, coordinates out.

The SVG markup lives in ``templates/plots.html.j2`` (Jinja2 macros); these functions
only place things (scales, ticks, paths, bar ends, cell shades), so the pages stay a
few kB per figure and render offline from a bucket, with no script and no CDN.
Coordinates are SVG user units (pixels at 100 % zoom); y grows downwards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

PALETTE = ["#1f5fa8", "#d9822b", "#2e8b57", "#8e44ad", "#c0392b", "#7f8c8d", "#b7950b"]
BETTER, WORSE, NEUTRAL = "#2e8b57", "#c0392b", "#8a8f98"


@dataclass
class Box:
    """Plot area inside an SVG of ``width`` x ``height``: margins left, right, top, bottom."""

    width: int
    height: int
    left: int = 48
    right: int = 16
    top: int = 14
    bottom: int = 34

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:
        return self.top

    @property
    def y1(self) -> float:
        return self.height - self.bottom


def nice_step(span: float, ticks: int = 5) -> float:
    """A 1-2-5 step giving about ``ticks`` intervals over ``span``."""
    if span <= 0:
        return 0.1
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def value_range(values: Sequence[float], lo: float = 0.0, hi: float = 1.0, pad: float = 0.05) -> tuple[float, float]:
    """A y range around ``values`` (padded, on step boundaries), clipped to [``lo``, ``hi``]."""
    vals = [v for v in values if v is not None]
    if not vals:
        return lo, hi
    a, b = min(vals) - pad, max(vals) + pad
    step = nice_step(b - a)
    return max(lo, math.floor(a / step) * step), min(hi, math.ceil(b / step) * step)


def _ticks(a: float, b: float, n: int = 5) -> list[float]:
    step = nice_step(b - a, n)
    first = math.ceil(a / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((b - first) / step + 1e-9) + 1)]


def _label(v: float, step: float) -> str:
    digits = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{v:.{digits}f}"


@dataclass
class Series:
    name: str
    values: list[float | None]          # one per x position; None = no value that night
    dashed: bool = False
    key: str | None = None              # series with the same key share a colour (default: the name)


def line_chart(x_labels: list[str], series: list[Series], width: int = 600, height: int = 230,
               y_title: str = "", lo: float = 0.0, hi: float = 1.0, from_zero: bool = False) -> dict[str, Any]:
    """Lines over nights (``x_labels``); a lone value (one night, or a gap on each side) is a labelled dot.

    Every point carries its value as text (a tooltip and, for the last night, a label at the point).
    ``from_zero``: the y axis starts at ``lo`` whatever the values.
    """
    box = Box(width, height, bottom=46)
    y_lo, y_hi = value_range([v for s in series for v in s.values if v is not None], lo, hi)
    y_lo = lo if from_zero else y_lo
    keys = list(dict.fromkeys(s.key or s.name for s in series))
    n = max(len(x_labels), 1)
    xs = [box.x0 + (box.x1 - box.x0) * ((i + 0.5) / n) for i in range(n)]
    y = lambda v: box.y1 - (box.y1 - box.y0) * ((v - y_lo) / ((y_hi - y_lo) or 1))  # noqa: E731
    step = nice_step(y_hi - y_lo)
    grid = [{"y": y(t), "label": _label(t, step)} for t in _ticks(y_lo, y_hi)]
    every = max(1, math.ceil(n / 10))            # at most ~10 x labels
    xticks = [{"x": xs[i], "label": x_labels[i]} for i in range(n) if i % every == 0 or i == n - 1]
    lines = []
    for s in series:
        pts = [{"x": xs[i], "y": y(v), "value": f"{v:.3f}", "night": x_labels[i]}
               for i, v in enumerate(s.values) if v is not None]
        segs, cur = [], []
        for i, v in enumerate(s.values):
            if v is None:
                segs, cur = (segs + [cur] if len(cur) > 1 else segs), []
            else:
                cur.append(f"{xs[i]:.1f},{y(v):.1f}")
        segs = segs + [cur] if len(cur) > 1 else segs
        last = pts[-1] if pts else None
        color = PALETTE[keys.index(s.key or s.name) % len(PALETTE)]
        lines.append({"name": s.name, "color": color, "dashed": s.dashed,
                      "paths": ["M" + " L".join(seg) for seg in segs], "points": pts, "last": last})
    _spread_labels([ln["last"] for ln in lines if ln["last"]])
    return {"width": width, "height": height, "box": box, "grid": grid, "xticks": xticks, "lines": lines,
            "y_title": y_title, "n_nights": len(x_labels)}


def _spread_labels(points: list[dict[str, Any]], gap: float = 12.0) -> None:
    """End labels of several lines at one x: move them apart vertically so none overlaps (``label_y``)."""
    for p in points:
        p["label_y"] = p["y"] + 4
    by_y = sorted(points, key=lambda p: p["label_y"])
    for a, b in zip(by_y, by_y[1:]):
        if b["label_y"] - a["label_y"] < gap:
            b["label_y"] = a["label_y"] + gap


@dataclass
class Change:
    """One row of a change plot: challenger minus champion with its interval."""

    label: str
    diff: float | None
    ci: tuple[float, float] | None = None
    n: int = 0
    status: str = "neutral"          # "better", "worse", "failed", "neutral", "not judged"
    note: str = ""


STATUS_COLOR = {"better": BETTER, "worse": WORSE, "failed": WORSE}


def change_bars(rows: list[Change], width: int = 1080, row_h: int = 22, label_w: int = 260) -> dict[str, Any]:
    """Horizontal bars from 0 to each difference, a whisker over its interval, coloured by ``status``.

    The x scale is symmetric around 0 and covers every interval; rows without a value
    (an empty set) show ``-`` and no bar.
    """
    box = Box(width, row_h * len(rows) + 40, left=label_w, right=90, top=8, bottom=30)
    ends = [abs(v) for r in rows for v in ((r.diff,) + tuple(r.ci or ())) if v is not None]
    span = nice_step(max(ends + [0.02]) * 2, 4) * 2
    span = max(span, max(ends + [0.02]))
    mid = (box.x0 + box.x1) / 2
    x = lambda v: mid + (box.x1 - box.x0) / 2 * (v / span)  # noqa: E731
    step = nice_step(span, 2)
    grid = [{"x": x(t), "label": f"{t:+.2f}" if t else "0"} for t in _ticks(-span, span, 4) if abs(t) <= span + 1e-9]
    out = []
    for i, r in enumerate(rows):
        yc = box.y0 + row_h * i + row_h / 2
        color = STATUS_COLOR.get(r.status, NEUTRAL)
        bar = None if r.diff is None else {"x": min(x(0), x(r.diff)), "w": max(abs(x(r.diff) - x(0)), 1.5)}
        whisker = None if r.ci is None else {"x0": x(r.ci[0]), "x1": x(r.ci[1])}
        text = "-" if r.diff is None else f"{r.diff:+.3f}"
        out.append({"label": r.label, "y": yc, "bar": bar, "whisker": whisker, "color": color, "text": text,
                    "status": r.status, "n": r.n, "note": r.note,
                    "ci": "" if r.ci is None else f"{r.ci[0]:+.3f}..{r.ci[1]:+.3f}"})
    return {"width": width, "height": box.height, "box": box, "rows": out, "grid": grid, "zero": x(0),
            "row_h": row_h, "step": step}


def heatmap(counts: dict[str, dict[str, int]], top: int = 12, cell: int = 30) -> dict[str, Any]:
    """Label-character x read-character grid per role from substitution counts ``{role: {"a>b": k}}``.

    Only the characters of the ``top`` most frequent pairs (over all roles) are drawn; a cell's
    shade is its count over the largest count of any role, so two roles compare by eye.
    """
    total: dict[str, int] = {}
    for pairs in counts.values():
        for p, k in pairs.items():
            total[p] = total.get(p, 0) + k
    chosen = [p for p, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:top] if total[p] > 0]
    rows = sorted({p.split(">", 1)[0] for p in chosen})
    cols = sorted({p.split(">", 1)[1] for p in chosen})
    peak = max([k for pairs in counts.values() for p, k in pairs.items() if p in chosen] + [1])
    grids = []
    for role, pairs in counts.items():
        cells = [{"r": i, "c": j, "count": pairs.get(f"{a}>{b}", 0),
                  "shade": round(pairs.get(f"{a}>{b}", 0) / peak, 3), "pair": f"{a}>{b}"}
                 for i, a in enumerate(rows) for j, b in enumerate(cols) if a != b]
        grids.append({"role": role, "cells": cells, "shown": sum(c["count"] for c in cells),
                      "total": sum(pairs.values())})
    return {"rows": [_show(c) for c in rows], "cols": [_show(c) for c in cols], "cell": cell, "grids": grids,
            "width": 40 + cell * len(cols), "height": 40 + cell * len(rows), "pairs": chosen}


def _show(ch: str) -> str:
    return "␣" if ch == " " else ch


@dataclass
class Histogram:
    """Reference vs current distribution of one feature, as shares per bin (or per category)."""

    feature: str
    bins: list[str]
    reference: list[float]
    current: list[float]
    drifted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def numeric_histogram(feature: str, ref: Sequence[float], cur: Sequence[float], bins: int = 16) -> Histogram:
    """Shares of both samples in ``bins`` equal-width bins over their pooled 1st..99th percentile."""
    a = np.asarray([v for v in ref if v is not None and np.isfinite(v)], dtype=float)
    b = np.asarray([v for v in cur if v is not None and np.isfinite(v)], dtype=float)
    both = np.concatenate([a, b])
    lo, hi = (np.quantile(both, [0.01, 0.99]) if len(both) else (0.0, 1.0))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    share = lambda x: (np.histogram(np.clip(x, lo, hi), edges)[0] / max(len(x), 1)).tolist()  # noqa: E731
    return Histogram(feature, [f"{edges[i]:.3g}" for i in range(bins)], share(a), share(b),
                     extra={"lo": f"{lo:.3g}", "hi": f"{hi:.3g}"})


def categorical_histogram(feature: str, ref: Sequence[Any], cur: Sequence[Any], top: int = 8) -> Histogram:
    """Shares of the ``top`` most common categories (pooled) in both samples; the rest as ``other``."""
    ra = [str(v) for v in ref if v is not None]
    ca = [str(v) for v in cur if v is not None]
    freq: dict[str, int] = {}
    for v in ra + ca:
        freq[v] = freq.get(v, 0) + 1
    cats = [c for c, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))]
    shown, rest = cats[:top], set(cats[top:])
    share = lambda xs, c: sum(v == c for v in xs) / max(len(xs), 1)  # noqa: E731
    labels = shown + (["other"] if rest else [])
    ref_s = [share(ra, c) for c in shown] + ([sum(v in rest for v in ra) / max(len(ra), 1)] if rest else [])
    cur_s = [share(ca, c) for c in shown] + ([sum(v in rest for v in ca) / max(len(ca), 1)] if rest else [])
    return Histogram(feature, labels, ref_s, cur_s, extra={"categorical": True})


def histogram_chart(h: Histogram, width: int = 250, height: int = 96) -> dict[str, Any]:
    """Paired bars (reference light, current dark) per bin, heights as shares of each sample."""
    cat = bool(h.extra.get("categorical"))
    # categories: labels slant down-left from their bar, so the first one needs room on the left
    box = Box(width, height + (22 if cat else 0), left=34 if cat else 8, right=8, top=6, bottom=40 if cat else 18)
    k = max(len(h.bins), 1)
    slot = (box.x1 - box.x0) / k
    peak = max(h.reference + h.current + [1e-9])
    y = lambda s: box.y1 - (box.y1 - box.y0) * s / peak  # noqa: E731
    bars = []
    for i, (a, b) in enumerate(zip(h.reference, h.current)):
        x = box.x0 + slot * i
        bars.append({"x": x + slot * 0.08, "w": slot * 0.42, "y_ref": y(a), "y_cur": y(b), "ref": f"{a:.1%}",
                     "cur": f"{b:.1%}", "bin": h.bins[i]})
    labels = ([{"x": box.x0 + slot * (i + 0.5), "text": b[:9], "end": False} for i, b in enumerate(h.bins)] if cat else
              [{"x": box.x0, "text": h.extra.get("lo", ""), "end": False},
               {"x": box.x1, "text": h.extra.get("hi", ""), "end": True}])
    return {"width": width, "height": box.height, "box": box, "bars": bars, "labels": labels, "feature": h.feature,
            "slot": slot, "categorical": cat, "drifted": h.drifted}
