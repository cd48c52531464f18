"""A small client of Label Studio's REST API (plain ``requests``; checked against Label Studio 1.23).

Only the calls a labeling sprint needs: create a project, give it a local-files storage,
import tasks, read every task back with its annotations, list users, delete a project that
could not be set up. Authentication takes either kind of Label Studio token:

- a legacy token (``Authorization: Token <key>``; the one ``label-studio start --user-token``
  sets, enabled by ``--enable-legacy-api-token``);
- a personal access token (a JWT refresh token, three dot-separated parts): exchanged once at
  ``/api/token/refresh`` for an access token sent as ``Authorization: Bearer <access>``.
"""
from __future__ import annotations

import os
import time
from typing import Any

import requests

DEFAULT_URL = "http://localhost:8080"
TIMEOUT_S = 60.0
PAGE = 100


class StudioError(RuntimeError):
    """Label Studio could not be reached or refused a request; the message says which and why."""


class StudioUnreachable(StudioError):
    """No answer (connection refused, timeout, 5xx): worth trying again later."""


class StudioRefused(StudioError):
    """A 4xx answer (bad token, no such project, a task Label Studio would not take): no retry fixes it."""


def is_personal_access_token(token: str) -> bool:
    return token.count(".") == 2


class StudioClient:
    """``url``: the server's root (``http://localhost:8080``); ``token``: legacy token or personal access token."""

    def __init__(self, url: str, token: str, timeout_s: float = TIMEOUT_S) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Label Studio URL must start with http:// or https://, got {url!r}")
        if not token:
            raise ValueError("no Label Studio token: set LABEL_STUDIO_API_KEY (Account & Settings in Label Studio)")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self._token = token
        self._authorize()

    @classmethod
    def from_env(cls, url: str | None = None) -> "StudioClient":
        """``url`` (else ``LABEL_STUDIO_URL``, else ``DEFAULT_URL``) with the token in ``LABEL_STUDIO_API_KEY``:
        Label Studio SDK's own variable names, read here as the GCS and MLflow clients read theirs."""
        return cls(url or os.environ.get("LABEL_STUDIO_URL") or DEFAULT_URL, os.environ.get("LABEL_STUDIO_API_KEY", ""))

    def _authorize(self) -> None:
        if not is_personal_access_token(self._token):
            self.session.headers["Authorization"] = f"Token {self._token}"
            return
        access = self._send("POST", "/api/token/refresh", json={"refresh": self._token}, auth=False)["access"]
        self.session.headers["Authorization"] = f"Bearer {access}"

    def _request(self, method: str, path: str, auth: bool, **kw: Any) -> requests.Response:
        url = f"{self.url}{path}"
        try:
            if not auth:
                return requests.request(method, url, timeout=self.timeout_s, **kw)
            r = self.session.request(method, url, timeout=self.timeout_s, **kw)
            if r.status_code == 401 and is_personal_access_token(self._token):     # the access token expired
                self._authorize()
                r = self.session.request(method, url, timeout=self.timeout_s, **kw)
            return r
        except (requests.ConnectionError, requests.Timeout) as e:
            raise StudioUnreachable(f"Label Studio at {self.url} did not answer {method} {path}: "
                                    f"{type(e).__name__}") from None

    def _send(self, method: str, path: str, auth: bool = True, **kw: Any) -> Any:
        r = self._request(method, path, auth, **kw)
        if r.status_code >= 500:
            raise StudioUnreachable(f"Label Studio at {self.url}: {method} {path} -> HTTP {r.status_code}")
        if r.status_code in (401, 403):
            raise StudioRefused(f"Label Studio at {self.url} refused the token ({method} {path} -> HTTP "
                                f"{r.status_code}): check LABEL_STUDIO_API_KEY; a legacy token needs legacy tokens "
                                "enabled for the organization")
        if r.status_code >= 400:
            raise StudioRefused(f"Label Studio at {self.url}: {method} {path} -> HTTP {r.status_code}: "
                                f"{r.text[:500]}")
        return r.json() if r.content else None

    def version(self) -> str:
        return str(self._send("GET", "/api/version").get("release", "unknown"))

    def create_project(self, title: str, label_config: str, description: str = "") -> int:
        doc = self._send("POST", "/api/projects/", json={"title": title, "label_config": label_config,
                                                         "description": description, "show_skip_button": True})
        return int(doc["id"])

    def delete_project(self, project: int) -> None:
        self._send("DELETE", f"/api/projects/{project}/")

    def add_local_storage(self, project: int, path: str, title: str) -> None:
        """Let the project's tasks read files under ``path`` (which must lie under the server's
        ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``) through ``/data/local-files/?d=...``."""
        self._send("POST", "/api/storages/localfiles/", json={"project": project, "path": path, "title": title,
                                                              "use_blob_urls": True})

    def import_tasks(self, project: int, tasks: list[dict[str, Any]]) -> int:
        """Create tasks (with their predictions); returns how many the server created."""
        done = 0
        for i in range(0, len(tasks), PAGE):
            doc = self._send("POST", f"/api/projects/{project}/import", json=tasks[i:i + PAGE])
            done += int(doc.get("task_count", 0))
        if done != len(tasks):
            raise StudioRefused(f"Label Studio at {self.url} created {done} of {len(tasks)} tasks in project {project}")
        return done

    def project_tasks(self, project: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations, those without any included (``download_all_tasks``)."""
        self._send("GET", f"/api/projects/{project}/")          # a clear 404 for a project that does not exist
        tasks = self._send("GET", f"/api/projects/{project}/export",
                           params={"exportType": "JSON", "download_all_tasks": "true"})
        if not isinstance(tasks, list):
            raise StudioRefused(f"Label Studio at {self.url}: the export of project {project} is not a task list")
        return tasks

    def users(self) -> dict[int, str]:
        """User id -> email (or username when there is no email)."""
        return {int(u["id"]): (u.get("email") or u.get("username") or f"user {u['id']}")
                for u in self._send("GET", "/api/users/")}

    def wait_ready(self, deadline_s: float) -> str:
        """Poll ``/api/version`` until the server answers (a freshly started one migrates first)."""
        end = time.monotonic() + deadline_s
        while True:
            try:
                return self.version()
            except StudioUnreachable:
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)
