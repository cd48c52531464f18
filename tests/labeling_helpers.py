"""Helpers for the labeling-sprint tests: queues in a bucket, Label Studio results, a local stand-in server.

``FakeStudio`` has ``labeling.studio.StudioClient``'s interface and answers in the shapes Label
Studio 1.23.2 answers (the e2e test, ``test_labeling_e2e.py``, runs the same round trip on a
real server): an export's task is ``{id, data, annotations, predictions, ...}``, an annotation
``{id, completed_by: <user id>, result, was_cancelled, ground_truth, created_at, updated_at}``.
"""
from __future__ import annotations

from typing import Any

from ingest.pipeline import IngestConfig, run_ingest
from ingest_helpers import add, png_bytes
from scoring.outputs import QueueConfig, write_day

DAY = "2026-11-21"
REVIEW_LABELS = [".AB123", "-CD456", "/EF789"]      # in the charset, no known code format: held for review


def seed_review(storage, crops) -> list[str]:
    """Three corrections that ingest holds for review (``unknown_format``); returns their keys."""
    for i, (c, label) in enumerate(zip(crops, REVIEW_LABELS)):
        add(storage, f"r{i}", png_bytes(c.image), label, predicted=c.label)
    s = run_ingest(storage, IngestConfig(max_failed_share=1.0, min_age_s=0))
    assert s.n_review == len(REVIEW_LABELS), s
    return [f"corrections/2026-11-20/r{i}" for i in range(len(REVIEW_LABELS))]


def seed_labeling(storage, crops, day: str = DAY) -> list[dict[str, Any]]:
    """Crops under ``incoming/<day>/`` and the day's labeling queue; returns the queue records, in order."""
    records = []
    for i, c in enumerate(crops):
        key = f"incoming/{day}/n{i}.png"
        storage.write(key, png_bytes(c.image), "image/png")
        records.append({"key": key, "crop_id": f"n{i}", "day": day, "prediction": c.label[:-1] + "Q",
                        "confidence": 0.2 + i / 20, "model_version": "4", "scored_at": f"{day}T10:00:00Z",
                        "error": ""})
    write_day(storage, day, records, QueueConfig())
    return records


def code(text: str) -> list[dict[str, Any]]:
    return [{"from_name": "code", "to_name": "image", "type": "textarea", "value": {"text": [text]}}]


def unreadable() -> list[dict[str, Any]]:
    return [{"from_name": "verdict", "to_name": "image", "type": "choices", "value": {"choices": ["unreadable"]}}]


class FakeStudio:
    """An in-memory Label Studio with ``StudioClient``'s methods (a stand-in, like the directory bucket)."""

    def __init__(self, url: str = "http://ls.test:8080") -> None:
        self.url = url
        self.projects: dict[int, dict[str, Any]] = {}
        self.user_names = {1: "admin@example.com", 2: "ann@example.com"}
        self.fail_import = False
        self._ids = {"project": 0, "task": 0, "annotation": 0}

    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def create_project(self, title: str, label_config: str, description: str = "") -> int:
        pid = self._next("project")
        self.projects[pid] = {"title": title, "label_config": label_config, "tasks": [], "storages": []}
        return pid

    def delete_project(self, project: int) -> None:
        del self.projects[project]

    def add_local_storage(self, project: int, path: str, title: str) -> None:
        self.projects[project]["storages"].append(path)

    def import_tasks(self, project: int, tasks: list[dict[str, Any]]) -> int:
        if self.fail_import:
            from labeling.studio import StudioRefused

            raise StudioRefused("import refused")
        for t in tasks:
            self.projects[project]["tasks"].append({"id": self._next("task"), "data": t["data"], "annotations": [],
                                                    "predictions": t.get("predictions", []), "project": project})
        return len(tasks)

    def project_tasks(self, project: int) -> list[dict[str, Any]]:
        return [dict(t) for t in self.projects[project]["tasks"]]

    def users(self) -> dict[int, str]:
        return dict(self.user_names)

    def task(self, project: int, key: str) -> dict[str, Any]:
        return next(t for t in self.projects[project]["tasks"] if t["data"]["key"] == key)

    def annotate(self, project: int, key: str, result: list[dict[str, Any]], user: int = 2, cancelled: bool = False,
                 ground_truth: bool = False, at: str = "2026-11-29T14:39:37.060616Z") -> int:
        aid = self._next("annotation")
        self.task(project, key)["annotations"].append(
            {"id": aid, "completed_by": user, "result": result, "was_cancelled": cancelled,
             "ground_truth": ground_truth, "created_at": at, "updated_at": at})
        return aid
