"""What the morning page says, as plain data for its template (``templates/accuracy.html.j2``).

Better or worse, and what to do: the gate's verdict and its evidence first, then the change
per set and slice with its 95 % interval (the gate's paired checks), the trend over nights,
the confusions that matter and the crops that changed hands. Nothing here computes a
statistic: the numbers come from the accuracy summary (``monitoring.accuracy``), the gate's
checks (``loop.gate``, intervals added by the cycle) and earlier runs' summaries
(``monitoring.history``).
"""
from __future__ import annotations

from typing import Any

from monitoring import history, plots

VERDICT_TEXT = {"promoted": "PROMOTED", "refused": "REFUSED", "no decision": "NO DECISION",
                "awaiting approval": "WAITING FOR APPROVAL"}
VERDICT_CLASS = {"promoted": "good", "refused": "bad", "no decision": "warn", "awaiting approval": "warn"}


def runbook(verdict: str | None, models: dict[str, Any], alerts: list[dict[str, Any]],
            overall: dict[str, Any]) -> list[str]:
    """One line per outcome: what the person reading the page does next."""
    champ, chall = models.get("champion", "?"), models.get("challenger", "?")
    mde = overall.get("mde")
    lines = {
        "promoted": f"Nothing to do: serving loads v{chall} as champion now. If the app reports trouble, "
                    "`tagloop rollback` puts the previous champion back.",
        "refused": f"The champion v{champ} stays. Read the failed checks below: a bad batch shows in the quarantine "
                   f"and review queue; a challenger you trust anyway is `tagloop promote {chall} --by NAME --reason ...`.",
        "no decision": f"The champion v{champ} stays; nothing failed, the batch is too small to tell the models apart"
                       + (f" (the smallest gain it could show: {mde:+.3f})" if mde is not None else "")
                       + ". Nothing to do: the next night pools more corrections.",
        "awaiting approval": f"The gate passed challenger v{chall}; the champion v{champ} serves until a person decides. "
                             f"Read this page, then `tagloop approve {chall} --by NAME` (or `tagloop reject {chall} "
                             "--by NAME`).",
    }
    out = [lines[verdict]] if verdict in lines else ["No gate decision in this run."]
    if alerts:
        out.append("Alert (" + ", ".join(a["name"] for a in alerts) + "): open the drift report, compare the "
                   "drifted features with what the shops changed; a retrain is requested when the alert asks for one.")
    return out


def headline(gate: dict[str, Any] | None, models: dict[str, Any]) -> dict[str, Any]:
    """The verdict badge and the one sentence under it."""
    if not gate:
        return {"verdict": None, "text": "no gate decision given", "cls": "warn", "sentence": ""}
    verdict = gate.get("verdict") or ("promoted" if gate.get("promoted") else "refused")
    ov = gate.get("overall") or {}
    sentence = ""
    if ov.get("n"):
        ci = ov.get("ci") or [None, None]
        num = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
        sentence = (f"Challenger v{models.get('challenger', '?')} read {num(ov.get('challenger_exact_match'))} and "
                    f"champion v{models.get('champion', '?')} {num(ov.get('champion_exact_match'))} of the same "
                    f"{ov['n']} held-out corrections: {ov.get('diff', 0):+.3f}"
                    + (f" (95% CI {ci[0]:+.3f}..{ci[1]:+.3f})" if ci[0] is not None else "")
                    + f"; {ov.get('gained', '-')} crops gained, {ov.get('lost', '-')} lost.")
    forced = f" (forced by {gate['forced_by']})" if gate.get("forced_by") else ""
    return {"verdict": verdict, "text": VERDICT_TEXT.get(verdict, verdict) + forced,
            "cls": VERDICT_CLASS.get(verdict, "warn"), "sentence": sentence}


def _status(check: dict[str, Any]) -> str:
    """``failed`` (the gate said no), ``better`` / ``worse`` (interval clear of 0), ``not judged``, ``neutral``."""
    s = check.get("stats") or {}
    ci = s.get("ci")
    if check.get("passed") is False:
        return "failed"
    if ci and ci[0] > 0:
        return "better"
    if ci and ci[1] < 0:
        return "worse"
    return "not judged" if check.get("passed") is None else "neutral"


def _scope(name: str) -> tuple[str, str]:
    """``slice new_batch/brand=vans`` -> (``slice``, ``new_batch/brand=vans``)."""
    kind, _, rest = name.partition(" ")
    return (kind, rest) if rest else (name, name)


def evidence(gate: dict[str, Any] | None) -> dict[str, Any]:
    """The gate's checks in groups: failed, set-level that hold (each set, the regression suite; the overall
    test has its own table), slices that hold, those reported but not judged; with the counts the gate's
    reason uses."""
    checks = [{**c, "status": _status(c), "mark": {True: "holds", False: "FAILED", None: "not judged"}[c.get("passed")]}
              for c in (gate or {}).get("checks") or []]
    judged = [c for c in checks if c.get("passed") is not None and c["name"] != "overall"]
    return {"failed": [c for c in checks if c.get("passed") is False],
            "sets": [c for c in checks if c.get("passed") is True and not c["name"].startswith("slice ")
                     and c["name"] != "overall"],
            "slices": [c for c in checks if c.get("passed") is True and c["name"].startswith("slice ")],
            "unjudged": [c for c in checks if c.get("passed") is None],
            "n": len(checks), "n_failed": sum(c.get("passed") is False for c in checks),
            "n_held": sum(c.get("passed") is True for c in judged), "n_judged": len(judged),
            "overall": next((c for c in checks if c["name"] == "overall"), None)}


def change_rows(gate: dict[str, Any] | None, synthetic: list[str] | tuple[str, ...] = (),
                min_slice_n: int = 10) -> list[plots.Change]:
    """One bar per check with numbers, in reading order: overall, each set, the regression suite, then the
    slices of the real sets (at least ``min_slice_n`` crops); a slice of a synthetic set only when it moved
    (interval clear of 0, or a failed check), since the suite's slices are meant not to move."""
    rows = []
    for c in (gate or {}).get("checks") or []:
        s = c.get("stats") or {}
        if not s.get("n"):
            continue
        kind, what = _scope(c["name"])
        status = _status(c)
        if kind == "slice" and (s["n"] < min_slice_n and status != "failed"
                                or what.split("/", 1)[0] in synthetic and status not in ("better", "worse", "failed")):
            continue
        label = {"overall": "overall (held-out corrections)", "regression": "regression suite (synthetic)"}.get(kind, what)
        ci = tuple(s["ci"]) if s.get("ci") else None
        rows.append(plots.Change(label, s.get("diff"), ci, s["n"], status,
                                 f"{s.get('gained', 0)} gained, {s.get('lost', 0)} lost"))
    rank = lambda r: (not r.label.startswith("overall"), "/" in r.label, r.label)  # noqa: E731
    return sorted(rows, key=rank)


def trend(points: list[dict[str, Any]], roles: list[str]) -> dict[str, Any] | None:
    """Exact match per night: the champion on every set (solid), the challenger on every set (dashed)."""
    if not points:
        return None
    series = history.em_series(points)
    lines = [plots.Series(f"{role} · {s}", vals, dashed=role != "champion", key=s)
             for role in roles for (s, r), vals in series.items() if r == role and any(v is not None for v in vals)]
    if not lines:
        return None
    return plots.line_chart([history.night_label(p) for p in points], lines, y_title="exact match")


def rate_trend(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Correction rate per night (runs with a rate only); drifted-feature share beside it."""
    with_rate = [p for p in points if p.get("correction_rate") is not None or p.get("drift_share") is not None]
    if not with_rate:
        return None
    lines = [plots.Series("correction rate", [p.get("correction_rate") for p in with_rate]),
             plots.Series("share of drifted features", [p.get("drift_share") for p in with_rate], dashed=True)]
    return plots.line_chart([history.night_label(p) for p in with_rate], lines, y_title="share", from_zero=True)


def links(meta: dict[str, Any], has_drift: bool) -> list[dict[str, str]]:
    """Where to look next: drift, the MLflow run, quarantine, review queue, all nights (relative to the run folder)."""
    out = []
    if has_drift:
        out.append({"text": "drift report", "href": "drift.html", "note": "tonight's crops against the reference"})
    out.append({"text": "all nights", "href": "../index.html", "note": "reports/index.html: every run, the trend"})
    if meta.get("mlflow_run_url"):
        out.append({"text": "MLflow run", "href": meta["mlflow_run_url"], "note": meta.get("mlflow_run_id", "")})
    elif meta.get("mlflow_run_id"):
        uri = meta.get("mlflow_tracking_uri") or "the MLflow store"
        out.append({"text": "MLflow run", "href": "", "note": f"run {meta['mlflow_run_id']}: mlflow ui "
                                                               f"--backend-store-uri {uri}"})
    if meta.get("ingest_run_id"):
        n_q = meta.get("n_quarantined")
        out.append({"text": "quarantine", "href": f"../../quarantine/{meta['ingest_run_id']}/",
                    "note": f"{n_q if n_q is not None else '-'} items refused at ingest"
                            + (f": {_reasons(meta.get('quarantine_reasons'))}" if meta.get("quarantine_reasons") else "")})
    if meta.get("n_review") is not None or meta.get("ingest_run_id"):
        out.append({"text": "review queue", "href": "../../review/queue.jsonl",
                    "note": f"{meta.get('n_review', '-')} labels the champion doubts, waiting for a person"})
    return out


def _reasons(reasons: Any) -> str:
    return ", ".join(f"{k} {v}" for k, v in reasons.items()) if isinstance(reasons, dict) else str(reasons)
