"""One small object-storage interface: a local directory or a ``gs://`` bucket.

``open_storage(url)`` picks the implementation. Every public call retries
transient errors (HTTP 429/5xx, connection resets) with exponential backoff.
Object names are ``/``-separated keys; a key with ``..``, ``.``, an empty
segment or a leading ``/`` is refused (``UnsafeObjectName``) so nothing can
escape a local root.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
import errno
import os
import random
import stat
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable, TypeVar

from bucket.files import TEMP_PREFIX, atomic_write, write_temp

T = TypeVar("T")


class StorageError(RuntimeError):
    """Storage misconfiguration or a permanent failure; the message says what to fix."""


class BucketNotFound(StorageError):
    """The bucket (or local root directory) does not exist."""


class ObjectNotFound(StorageError, KeyError):
    """No object under that key."""


class UnsafeObjectName(StorageError, ValueError):
    """A key with ``..``, an absolute path or other characters that could escape the root."""


class ObjectUnreadable(StorageError):
    """An object that exists but is not a readable file (a symlink, a FIFO, no permission): a fault
    of that object alone, never retried. ``reason`` names it for a quarantine record."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class OutOfSpace(StorageError):
    """The disk under a directory bucket is full; nothing half-written is left behind."""


class TransientStorageError(StorageError):
    """Raised by backends (or fault injectors) for errors worth retrying."""


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int
    updated: datetime   # UTC


STATE_PREFIX = "state/"      # the only prefix tagloop may delete from (locks)
Listing = list[ObjectInfo]   # alias: inside Storage the name ``list`` is the method


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 10.0


def is_unsafe_name(name: str) -> bool:
    """True for keys that could escape a directory root or are ambiguous."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return True
    return any(part in ("", ".", "..") for part in name.split("/"))


def check_name(name: str) -> str:
    if is_unsafe_name(name):
        raise UnsafeObjectName(f"refusing unsafe object name {name!r}")
    return name


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (TransientStorageError, ConnectionError, TimeoutError)):
        return True
    code = getattr(exc, "code", None)
    if isinstance(code, int) and (code == 429 or 500 <= code < 600):
        return True
    try:
        import requests

        return isinstance(exc, (requests.ConnectionError, requests.Timeout))
    except ImportError:  # pragma: no cover
        return False


class Storage(ABC):
    """list / read / write / exists over object keys, with retries on transient errors."""

    url: str = ""

    def __init__(self, retry: RetryPolicy | None = None) -> None:
        self.retry = retry or RetryPolicy()
        self.retries_done = 0

    def _call(self, fn: Callable[[], T]) -> T:
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return fn()
            except Exception as e:  # noqa: BLE001 - classified below
                if not _is_transient(e) or attempt == self.retry.attempts:
                    raise
                self.retries_done += 1
                delay = min(self.retry.max_delay_s, self.retry.base_delay_s * 2 ** (attempt - 1))
                time.sleep(delay * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")

    def list(self, prefix: str = "") -> Listing:
        """All objects whose key starts with ``prefix``, sorted by name."""
        return sorted(self._call(lambda: self._list(prefix)), key=lambda o: o.name)

    def read(self, name: str) -> bytes:
        return self._call(lambda: self._read(check_name(name)))

    def write(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._call(lambda: self._write(check_name(name), data, content_type))

    def exists(self, name: str) -> bool:
        return self._call(lambda: self._exists(check_name(name)))

    def create(self, name: str, data: bytes, content_type: str = "application/json") -> bool:
        """Write ``name`` only if absent (atomic); False when it already exists. For lock objects."""
        return self._call(lambda: self._create(check_name(name), data, content_type))

    def delete_state(self, name: str) -> None:
        """Remove an object under ``state/`` (a lock); corrections and everything else are never deleted."""
        if not check_name(name).startswith(STATE_PREFIX):
            raise UnsafeObjectName(f"refusing to delete {name!r}: only {STATE_PREFIX} objects may be deleted")
        self._call(lambda: self._delete(name))

    @abstractmethod
    def _create(self, name: str, data: bytes, content_type: str) -> bool:
        """Write ``name`` only if absent; False when it already exists."""

    @abstractmethod
    def _delete(self, name: str) -> None:
        """Remove ``name`` (absent is fine)."""

    def check(self) -> None:
        """Raise ``BucketNotFound``/``StorageError`` early if the bucket is unusable."""
        self._call(self._check)

    def uri(self, name: str) -> str:
        return f"{self.url.rstrip('/')}/{name}"

    # backends implement these
    @abstractmethod
    def _list(self, prefix: str) -> Listing:
        """Objects whose key starts with ``prefix`` (any order)."""

    @abstractmethod
    def _read(self, name: str) -> bytes:
        """Bytes of one object; ``ObjectNotFound`` when absent."""

    @abstractmethod
    def _write(self, name: str, data: bytes, content_type: str) -> None:
        """Create or replace one object."""

    @abstractmethod
    def _exists(self, name: str) -> bool:
        """Whether the object exists."""

    @abstractmethod
    def _check(self) -> None:
        """Raise ``BucketNotFound`` / ``StorageError`` when the bucket is unusable."""


@contextmanager
def _disk_full_is_permanent(path: str) -> Iterator[None]:
    """ENOSPC / EDQUOT while writing ``path`` -> ``OutOfSpace`` (one line, never retried)."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutOfSpace(f"disk full writing {path} ({e.strerror}); nothing was left half-written") from None
        raise


class LocalStorage(Storage):
    """A directory standing in for a bucket; writes are atomic (temp file + rename)."""

    def __init__(self, root: str, retry: RetryPolicy | None = None) -> None:
        super().__init__(retry)
        self.root = os.path.realpath(root)
        self.url = f"file://{self.root}"

    def _path(self, name: str) -> str:
        path = os.path.realpath(os.path.join(self.root, *name.split("/")))
        if os.path.commonpath([path, self.root]) != self.root:
            raise UnsafeObjectName(f"object name {name!r} escapes {self.root}")
        return path

    def _check(self) -> None:
        if not os.path.isdir(self.root):
            raise BucketNotFound(f"{self.root}: bucket directory does not exist")

    def _list(self, prefix: str) -> Listing:
        self._check()
        out = []
        for dirpath, _dirs, files in os.walk(self.root):     # symlinked directories are not entered
            for f in files:
                full = os.path.join(dirpath, f)
                name = os.path.relpath(full, self.root).replace(os.sep, "/")
                if name.startswith(prefix) and TEMP_PREFIX not in f:
                    st = os.lstat(full)        # a dangling or looping symlink is listed, not followed
                    out.append(ObjectInfo(name, st.st_size, datetime.fromtimestamp(st.st_mtime, timezone.utc)))
        return out

    def _read(self, name: str) -> bytes:
        lexical = os.path.join(self.root, *name.split("/"))
        try:
            st = os.lstat(lexical)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"{self.uri(name)}: no such object") from None
        if stat.S_ISLNK(st.st_mode):
            raise ObjectUnreadable(f"{self.uri(name)}: a symlink; objects are read only as regular files", "symlink")
        if not stat.S_ISREG(st.st_mode):
            raise ObjectUnreadable(f"{self.uri(name)}: not a regular file", "not_a_regular_file")
        path = self._path(name)                 # a symlinked parent directory may not lead outside the root
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except PermissionError:
            raise ObjectUnreadable(f"{self.uri(name)}: permission denied", "permission_denied") from None
        except FileNotFoundError:
            raise ObjectNotFound(f"{self.uri(name)}: no such object") from None
        except OSError as e:                    # ELOOP: replaced by a symlink since the check
            raise ObjectUnreadable(f"{self.uri(name)}: {e.strerror}", "symlink") from None
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def _write(self, name: str, data: bytes, content_type: str) -> None:
        path = self._path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with _disk_full_is_permanent(path):
            atomic_write(path, data)                # bucket.files: mode 0644, no temporary file left

    def _exists(self, name: str) -> bool:
        return os.path.isfile(self._path(name))

    def _create(self, name: str, data: bytes, content_type: str) -> bool:
        path = self._path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with _disk_full_is_permanent(path):
            tmp = write_temp(os.path.dirname(path), data)
        try:
            os.link(tmp, path)          # atomic; fails when the name exists
            return True
        except FileExistsError:
            return False
        finally:
            os.remove(tmp)

    def _delete(self, name: str) -> None:
        try:
            os.remove(self._path(name))
        except FileNotFoundError:
            pass


class GCSStorage(Storage):
    """``gs://bucket[/prefix]`` through google-cloud-storage (honours STORAGE_EMULATOR_HOST)."""

    def __init__(self, bucket: str, retry: RetryPolicy | None = None, client=None) -> None:
        super().__init__(retry)
        self.url = f"gs://{bucket}"
        self.bucket_name = bucket
        self.client = client or _make_client()
        self.bucket = self.client.bucket(bucket)

    def _not_found(self, e: Exception) -> StorageError:
        return BucketNotFound(f"{self.url}: bucket does not exist or is not visible ({e})")

    def _check(self) -> None:
        from google.api_core import exceptions as gexc

        try:
            list(self.client.list_blobs(self.bucket_name, max_results=1, retry=None))
        except gexc.NotFound as e:
            raise self._not_found(e) from None

    def _list(self, prefix: str) -> Listing:
        from google.api_core import exceptions as gexc

        try:
            blobs = list(self.client.list_blobs(self.bucket_name, prefix=prefix, retry=None))
        except gexc.NotFound as e:
            raise self._not_found(e) from None
        return [ObjectInfo(b.name, int(b.size or 0), b.updated or datetime.now(timezone.utc)) for b in blobs]

    def _read(self, name: str) -> bytes:
        from google.api_core import exceptions as gexc

        try:
            return self.bucket.blob(name).download_as_bytes(retry=None)
        except gexc.NotFound:
            raise ObjectNotFound(f"{self.uri(name)}: no such object") from None

    def _write(self, name: str, data: bytes, content_type: str) -> None:
        self.bucket.blob(name).upload_from_string(data, content_type=content_type, retry=None)

    def _exists(self, name: str) -> bool:
        return bool(self.bucket.blob(name).exists(retry=None))

    def _create(self, name: str, data: bytes, content_type: str) -> bool:
        """``ifGenerationMatch=0``: GCS refuses the upload when the object exists."""
        from google.api_core import exceptions as gexc

        try:
            self.bucket.blob(name).upload_from_string(data, content_type=content_type, if_generation_match=0,
                                                      retry=None)
            return True
        except gexc.PreconditionFailed:
            return False

    def _delete(self, name: str) -> None:
        from google.api_core import exceptions as gexc

        try:
            self.bucket.blob(name).delete(retry=None)
        except gexc.NotFound:
            pass


def _make_client():
    """A storage client; anonymous against an emulator, else Application Default Credentials."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "tagloop-local"))
    try:
        return storage.Client()
    except Exception as e:  # DefaultCredentialsError, EnvironmentError without a project
        raise StorageError(
            f"no Google Cloud credentials ({e}); set GOOGLE_APPLICATION_CREDENTIALS or run "
            "`gcloud auth application-default login`, or set STORAGE_EMULATOR_HOST for an emulator"
        ) from None


def open_storage(url: str, retry: RetryPolicy | None = None) -> Storage:
    """``gs://bucket``, ``file:///path`` or a plain path -> a Storage."""
    if not url:
        raise StorageError("no bucket given: pass --bucket or set TAGLOOP_BUCKET")
    if url.startswith("gs://"):
        bucket = url[5:].strip("/")
        if not bucket or "/" in bucket:
            raise StorageError(f"{url}: expected gs://BUCKET (no sub-path)")
        return GCSStorage(bucket, retry)
    path = url[7:] if url.startswith("file://") else url
    return LocalStorage(path, retry)
