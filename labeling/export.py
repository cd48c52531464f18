"""``tagloop label export``: the review and labeling queues -> a new Label Studio project.

One task per crop. Its data: the image, why the crop is there (``why``), the item's ``key``
and the ``sprint`` id; the champion's reading is the task's prediction (a pre-annotation the
annotator accepts or edits, with the champion's confidence as its score). Images reach
Label Studio one of two ways (``images``):

- ``inline``: the crop's bytes in the task as a ``data:`` URI. Works with any bucket (``gs://``
  too) and any server, no configuration; a crop is a few kB.
- ``local-files``: the crop is copied under ``document_root/tagloop/<sprint>/`` and the task
  points at ``/data/local-files/?d=tagloop/<sprint>/<file>``, which the server serves when it
  runs with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
  ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=document_root``; the project gets a local-files
  storage on that folder (Label Studio serves a file only to projects with such a storage).

Order: create the project, import the tasks, then write the sprint record
(``labeling.queues.SprintRecord``). A failure before the record is written deletes the
project again, so a crop is either in a recorded sprint or in none.
"""
from __future__ import annotations

import base64
import os
import re
import secrets
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from bucket.files import atomic_write
from bucket.layout import check_day
from bucket.storage import ObjectNotFound, Storage
from labeling.queues import QueueItem, SprintRecord, exported_keys, labeling_items, review_items
from labeling.studio import StudioClient, StudioError

CODE, VERDICT, IMAGE = "code", "verdict", "image"      # names of the label config's tags
UNREADABLE = "unreadable"
LABEL_CONFIG = f"""<View>
  <Text name="why" value="$why"/>
  <Image name="{IMAGE}" value="$image" zoom="true" zoomControl="true" rotateControl="true"/>
  <Header value="Type the product code exactly as printed (upper case; space, - . / : ( ) # as on the tag)" size="6"/>
  <TextArea name="{CODE}" toName="{IMAGE}" rows="1" maxSubmissions="1" editable="true"
            placeholder="e.g. DD1391-100"/>
  <Choices name="{VERDICT}" toName="{IMAGE}" choice="single" showInline="true">
    <Choice value="{UNREADABLE}" hint="no product code can be read in this crop"/>
  </Choices>
</View>
"""
Queue = Literal["review", "labeling", "both"]
Images = Literal["inline", "local-files"]
MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg"}


@dataclass
class ExportConfig:
    queue: str = field(default="both", metadata={"help": "which queue to label: review, labeling or both"})
    day: str | None = field(default=None, metadata={"help": "labeling queue of this YYYY-MM-DD only (default: every day)"})
    max_tasks: int = field(default=500, metadata={"help": "at most this many crops in the sprint (review items first)"})
    title: str = field(default="", metadata={"help": "project title (default: tagloop sprint <date>)"})
    images: str = field(default="inline", metadata={
        "help": "inline: crops embedded in the tasks (any bucket, any server); local-files: copied under "
                "--document-root, served by Label Studio's local-files serving"})
    document_root: str | None = field(default=None, metadata={
        "help": "for --images local-files: the server's document root (default: "
                "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)"})
    include_exported: bool = field(default=False, metadata={
        "help": "also export crops an earlier sprint already holds"})

    def __post_init__(self) -> None:
        check_day(self.day)
        if self.queue not in ("review", "labeling", "both"):
            raise ValueError(f"queue must be review, labeling or both, got {self.queue!r}")
        if self.images not in ("inline", "local-files"):
            raise ValueError(f"images must be inline or local-files, got {self.images!r}")
        if self.images == "local-files" and not (self.document_root and os.path.isdir(self.document_root)):
            raise ValueError("--images local-files needs --document-root: an existing directory, the server's "
                             f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (got {self.document_root!r})")
        if self.max_tasks < 1:
            raise ValueError(f"max_tasks must be at least 1, got {self.max_tasks}")


@dataclass
class ExportSummary:
    sprint: str | None
    project: int | None
    project_url: str | None
    n_tasks: int
    n_review: int
    n_labeling: int
    n_already_exported: int
    n_over_max: int
    missing: list[str]              # queued crops whose image object is gone
    record: str | None


def new_sprint_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def select_items(storage: Storage, cfg: ExportConfig) -> tuple[list[QueueItem], int, int]:
    """Queue items to export -> (items, n already exported, n left over by ``max_tasks``)."""
    items = (review_items(storage) if cfg.queue in ("review", "both") else []) + \
        (labeling_items(storage, cfg.day) if cfg.queue in ("labeling", "both") else [])
    seen = set() if cfg.include_exported else exported_keys(storage)
    fresh = list({i.key: i for i in items if i.key not in seen}.values())
    return fresh[:cfg.max_tasks], len(items) - len(fresh), max(0, len(fresh) - cfg.max_tasks)


def _ext(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name.rsplit("/", 1)[-1] else "png"
    return ext if ext in MIME else "png"


def task_for(item: QueueItem, sprint: str, image_url: str) -> dict[str, Any]:
    """One Label Studio task: data + the champion's reading as a prediction."""
    task: dict[str, Any] = {"data": {"image": image_url, "why": item.reason, "key": item.key, "kind": item.kind,
                                     "sprint": sprint}}
    if item.prediction:
        task["predictions"] = [{"model_version": item.model_version or "champion",
                                "score": item.confidence if item.confidence is not None else 0.0,
                                "result": [{"from_name": CODE, "to_name": IMAGE, "type": "textarea",
                                            "value": {"text": [item.prediction]}}]}]
    return task


def _image_url(item: QueueItem, data: bytes, sprint: str, cfg: ExportConfig) -> str:
    ext = _ext(item.image)
    if cfg.images == "inline":
        return f"data:{MIME.get(ext, 'application/octet-stream')};base64,{base64.b64encode(data).decode()}"
    rel = f"tagloop/{sprint}/{item.kind}-{re.sub(r'[^A-Za-z0-9_.-]', '_', item.crop_id).lstrip('.')}.{ext}"
    path = os.path.join(str(cfg.document_root), *rel.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, data)
    return f"/data/local-files/?d={rel}"


def build_tasks(storage: Storage, items: list[QueueItem], sprint: str,
                cfg: ExportConfig) -> tuple[list[dict[str, Any]], list[QueueItem], list[str]]:
    """Read each crop and build its task -> (tasks, items exported, keys whose crop is gone)."""
    tasks, done, missing = [], [], []
    for item in items:
        try:
            data = storage.read(item.image)
        except ObjectNotFound:
            missing.append(item.key)
            continue
        tasks.append(task_for(item, sprint, _image_url(item, data, sprint, cfg)))
        done.append(item)
    return tasks, done, missing


def export_sprint(storage: Storage, client: StudioClient, cfg: ExportConfig, bucket: str, by: str,
                  now: datetime | None = None) -> ExportSummary:
    """Create the sprint's project with one task per selected crop; see the module docstring."""
    now = now or datetime.now(timezone.utc)
    items, n_seen, n_over = select_items(storage, cfg)
    sprint = new_sprint_id(now)
    tasks, done, missing = build_tasks(storage, items, sprint, cfg)
    if not tasks:
        return ExportSummary(None, None, None, 0, 0, 0, n_seen, n_over, missing, None)
    title = cfg.title or f"tagloop sprint {now:%Y-%m-%d} ({len(tasks)} crops)"
    project = client.create_project(title, LABEL_CONFIG, f"tagloop labeling sprint {sprint}, bucket {bucket}")
    try:
        if cfg.images == "local-files":
            client.add_local_storage(project, os.path.join(os.path.abspath(str(cfg.document_root)), "tagloop", sprint),
                                     f"tagloop {sprint}")
        client.import_tasks(project, tasks)
        record = SprintRecord(sprint, client.url, project, f"{now:%Y-%m-%dT%H:%M:%SZ}", by, bucket, cfg.images,
                              {i.key: i.to_json() for i in done})
        record.save(storage)
    except BaseException:
        with suppress(StudioError):     # the first error is the one to report
            client.delete_project(project)
        raise
    kinds = [i.kind for i in done]
    return ExportSummary(sprint, project, f"{client.url}/projects/{project}/data", len(tasks), kinds.count("review"),
                         kinds.count("labeling"), n_seen, n_over, missing, storage.uri(record.object_key))
