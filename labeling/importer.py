"""``tagloop label import``: a finished sprint's annotations -> the bucket, for the next ingest.

What each task becomes depends on the queue its crop came from (the sprint record says which):

- a **labeling-queue** crop (``incoming/``, never labelled) becomes a new correction, written with
  ``ingest.corrections.write_correction`` as the serving app would:
  ``corrections/<day>/<crop_id>-ls<annotation>.<ext>`` + sidecar with ``source: labeling-sprint``,
  the champion's reading as ``predicted_label``/``confidence``/``model_version``, the annotator,
  ``origin_key``/``origin_crop_id`` (the incoming crop) and ``label_studio`` (server, project, task,
  annotation). ``<day>`` and ``created_at`` are the annotation's creation time, so the name is the
  same however often the sprint is imported. *Unreadable* writes nothing (reported).
- a **review-queue** crop is a correction already, held for review: a second copy would only be
  quarantined as a duplicate, and the held one would wait for ever. The sprint's answer goes
  where review decisions go, ``review/decisions.jsonl`` (``ingest.review``): the same code ->
  ``confirm``, another code -> ``relabel``, *unreadable* -> ``reject``; the line also carries
  ``source``, ``annotator`` and ``label_studio``. Lines already there are kept as they are; an
  item no longer pending review is reported (``no_longer_pending``), not decided again.

A task whose annotations give no usable label (``labeling.annotations``), that tagloop did not
export (``not_from_tagloop``, ``unknown_task``, ``other_project``), or whose crop is gone
(``crop_missing``) is reported with its reason and writes nothing: fix it in Label Studio and
import again. Nothing is ever rewritten or deleted: a correction whose sidecar exists, and a
decision whose annotation is already in ``decisions.jsonl``, count as ``already_imported``, so a
second import writes nothing new. ``import_sprint`` holds the bucket lock (``bucket.lock``) while it
writes, so an import never overlaps an ingest, a retrain or another import.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from bucket.lock import bucket_lock
from bucket.storage import ObjectNotFound, Storage
from ingest.corrections import CORRECTIONS, write_correction
from ingest.review import DECISIONS
from labeling.annotations import Verdict, verdict
from labeling.queues import QueueItem, SprintRecord, load_sprint, review_items
from labeling.studio import StudioClient
from recognizer.metrics import exact_match

SOURCE = "labeling-sprint"
LOCK_TTL_S = 1800.0      # a killed import's lock is taken over after half an hour


@dataclass
class ImportSummary:
    project: int
    label_studio: str
    sprints: list[str] = field(default_factory=list)
    n_tasks: int = 0
    n_corrections: int = 0                  # new corrections written
    n_decisions: int = 0                    # new review decisions written
    decisions: dict[str, int] = field(default_factory=dict)     # confirm / relabel / reject
    n_already_imported: int = 0
    n_reported: int = 0
    reasons: dict[str, int] = field(default_factory=dict)       # reported tasks by reason
    reported: list[dict[str, Any]] = field(default_factory=list)    # task, key, reason, detail
    written: list[str] = field(default_factory=list)            # corrections' sidecars, decisions' keys

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class _Run:
    """One import's bookkeeping: records by sprint, pending review keys, decisions already imported."""

    def __init__(self, storage: Storage, client: StudioClient, project: int) -> None:
        self.storage, self.client, self.project = storage, client, project
        self.summary = ImportSummary(project, client.url)
        self.records: dict[str, SprintRecord | None] = {}
        self.pending = {i.key for i in review_items(storage)}
        self.imported = _imported_annotations(storage)
        self.new_lines: list[dict[str, Any]] = []

    def report(self, task: dict[str, Any], key: str | None, reason: str, detail: str = "") -> None:
        self.summary.reported.append({"task": task.get("id"), "key": key, "reason": reason, "detail": detail})

    def record(self, sprint: Any) -> SprintRecord | None:
        if not isinstance(sprint, str):
            return None
        if sprint not in self.records:
            try:
                self.records[sprint] = load_sprint(self.storage, sprint)
            except ValueError:
                self.records[sprint] = None
        return self.records[sprint]

    def origin(self, task: dict[str, Any]) -> QueueItem | None:
        """The exported item behind ``task`` (from the bucket's sprint record), or None (reported)."""
        data = task.get("data") if isinstance(task.get("data"), dict) else {}
        rec = self.record(data.get("sprint"))
        if rec is None:
            self.report(task, data.get("key"), "not_from_tagloop",
                        f"no sprint record for {data.get('sprint')!r}: a task tagloop did not export")
            return None
        if rec.project != self.project:
            self.report(task, data.get("key"), "other_project", f"sprint {rec.sprint} was exported to project "
                                                                f"{rec.project}, not {self.project}")
            return None
        item = rec.item(data.get("key")) if isinstance(data.get("key"), str) else None
        if item is None:
            self.report(task, data.get("key"), "unknown_task", f"sprint {rec.sprint} exported no such crop")
        elif rec.sprint not in self.summary.sprints:
            self.summary.sprints.append(rec.sprint)
        return item


def _imported_annotations(storage: Storage) -> set[tuple[str, int, int]]:
    """(server, project, annotation) of every decision line a sprint import wrote."""
    try:
        raw = storage.read(DECISIONS).decode("utf-8", "replace")
    except ObjectNotFound:
        return set()
    out = set()
    for line in raw.splitlines():
        try:
            ls = json.loads(line).get("label_studio")
            out.add((ls["url"], int(ls["project"]), int(ls["annotation"])))
        except (ValueError, AttributeError, KeyError, TypeError):
            continue
    return out


def _provenance(run: _Run, task: dict[str, Any], v: Verdict, sprint: str) -> dict[str, Any]:
    return {"url": run.client.url, "project": run.project, "task": task.get("id"), "annotation": v.annotation,
            "sprint": sprint}


def _correction(run: _Run, task: dict[str, Any], item: QueueItem, v: Verdict, sprint: str) -> None:
    if v.unreadable:
        run.report(task, item.key, "unreadable", f"{v.annotator} could read no code in it")
        return
    assert v.label is not None
    crop_id, ext = f"{item.crop_id}-ls{v.annotation}", item.image.rsplit(".", 1)[-1].lower()
    sidecar = f"{CORRECTIONS}{v.at[:10]}/{crop_id}.json"
    if run.storage.exists(sidecar):
        run.summary.n_already_imported += 1
        return
    try:
        image = run.storage.read(item.image)
    except ObjectNotFound:
        run.report(task, item.key, "crop_missing", f"{item.image} is no longer in the bucket")
        return
    write_correction(run.storage, image, ext, item.prediction or "", item.confidence or 0.0, v.label,
                     item.model_version or "unknown", source=SOURCE, crop_id=crop_id, created_at=v.at,
                     extra={"annotator": v.annotator, "origin_key": item.key, "origin_crop_id": item.crop_id,
                            "label_studio": _provenance(run, task, v, sprint)})
    run.summary.n_corrections += 1
    run.summary.written.append(sidecar)


def _decision(run: _Run, task: dict[str, Any], item: QueueItem, v: Verdict, sprint: str) -> None:
    if (run.client.url, run.project, v.annotation) in run.imported:
        run.summary.n_already_imported += 1
        return
    if item.key not in run.pending:
        run.report(task, item.key, "no_longer_pending", "the review queue no longer holds it (decided since export)")
        return
    line: dict[str, Any] = {"key": item.key}
    if v.unreadable:
        line["decision"] = "reject"
    elif item.label is not None and exact_match(v.label or "", item.label):
        line["decision"] = "confirm"
    else:
        line.update(decision="relabel", label=v.label)
    line.update(source=SOURCE, annotator=v.annotator, decided_at=v.at, label_studio=_provenance(run, task, v, sprint))
    run.new_lines.append(line)


def _append_decisions(storage: Storage, lines: list[dict[str, Any]]) -> None:
    """Existing ``decisions.jsonl`` bytes unchanged, the new lines after them."""
    try:
        old = storage.read(DECISIONS)
    except ObjectNotFound:
        old = b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    storage.write(DECISIONS, old + "".join(json.dumps(x, sort_keys=True) + "\n" for x in lines).encode(),
                  "application/x-ndjson")


def import_project(storage: Storage, client: StudioClient, project: int, extra_chars: str = "") -> ImportSummary:
    """Every task of ``project`` -> new corrections / review decisions / reported reasons (module docstring)."""
    tasks = client.project_tasks(project)
    users = client.users()
    run = _Run(storage, client, project)
    run.summary.n_tasks = len(tasks)
    for task in sorted(tasks, key=lambda t: t.get("id") or 0):
        item = run.origin(task)
        if item is None:
            continue
        v = verdict(task, users, extra_chars)
        if not v.ok:
            run.report(task, item.key, v.problem, v.detail)
            continue
        sprint = task["data"]["sprint"]
        (_correction if item.kind == "labeling" else _decision)(run, task, item, v, sprint)
    if run.new_lines:
        _append_decisions(storage, run.new_lines)
        run.summary.n_decisions = len(run.new_lines)
        run.summary.decisions = dict(Counter(x["decision"] for x in run.new_lines))
        run.summary.written += [x["key"] for x in run.new_lines]
    run.summary.n_reported = len(run.summary.reported)
    run.summary.reasons = dict(Counter(r["reason"] for r in run.summary.reported))
    return run.summary


def import_sprint(storage: Storage, client: StudioClient, project: int, owner: str, extra_chars: str = "",
                  log: Callable[[str], None] = print) -> ImportSummary:
    """``import_project`` under the bucket lock (``LockHeld`` when a retrain, ingest or import holds it)."""
    storage.check()
    with bucket_lock(storage, owner, LOCK_TTL_S, log):
        return import_project(storage, client, project, extra_chars)
