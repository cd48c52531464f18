"""A lock object in the bucket, so two runs that write the dataset (retrains, ingests) never overlap.

Whatever starts them (a deployment, ``tagloop retrain`` or ``ingest``, the demo, two machines), they
share the bucket, so the lock lives there: ``state/retrain/lock.json`` holding the owner,
a random token and an expiry. Acquiring checks for a live lock, then creates the object only if it
is absent (GCS ``ifGenerationMatch=0``, a hard link on a directory) and reads it back (the
GCS emulator ignores preconditions: there the check + read-back narrow the race to
milliseconds; real GCS and directories make it atomic).
The holder refreshes the expiry at every stage; a run that dies without releasing leaves a
lock that the next run takes over once it has expired (``ttl_s``, default 3 h), or at once
when a person says so (``break_by``: ``tagloop retrain --break-lock --forced-by NAME``): the
broken lock is kept under ``state/retrain/broken-locks/`` with who broke it and when. The run
whose lock was broken stops at its next stage (its heartbeat finds the lock no longer its own)
before it moves an alias.
"""
from __future__ import annotations

import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from bucket.state import encode_json, read_json, write_json
from bucket.storage import Storage, StorageError

LOCK_KEY = "state/retrain/lock.json"
BROKEN_PREFIX = "state/retrain/broken-locks/"
DEFAULT_TTL_S = 3 * 3600.0


class LockHeld(RuntimeError):
    """Another run (a retrain or an ingest) holds the bucket's lock."""


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@dataclass
class BucketLock:
    storage: Storage
    owner: str
    ttl_s: float = DEFAULT_TTL_S
    key: str = LOCK_KEY
    token: str = ""
    break_by: str | None = None    # a person taking over a live lock (audited)

    def _doc(self) -> bytes:
        now = time.time()
        return encode_json({"owner": self.owner, "token": self.token, "acquired_at": _stamp(now),
                            "expires_at": now + self.ttl_s, "expires": _stamp(now + self.ttl_s)})

    def current(self) -> dict | None:
        """The lock object's content, or None when nobody holds it."""
        return read_json(self.storage, self.key)

    def acquire(self, log: Callable[[str], None] = print) -> None:
        """Take the lock or raise ``LockHeld`` (an expired lock is taken over)."""
        self.token = secrets.token_hex(8)
        for _ in range(3):
            held = self.current()
            if held is not None:
                live = float(held.get("expires_at", 0)) > time.time()
                if live and not self.break_by:
                    raise LockHeld(
                        f"another run holds {self.storage.uri(self.key)}: owner {held.get('owner')}, "
                        f"since {held.get('acquired_at')}, expires {held.get('expires')}. It is released when that "
                        "run ends; if no retrain or ingest is running (a killed process), wait for the expiry or "
                        "break it: tagloop retrain --break-lock --forced-by NAME")
                if live:
                    self._record_break(held, log)
                else:
                    log(f"lock: taking over the expired lock of {held.get('owner')} (expired {held.get('expires')})")
                self.storage.delete_state(self.key)
            if self.storage.create(self.key, self._doc()):
                held = self.current()
                if held and held.get("token") == self.token:
                    return
                raise LockHeld(f"lost the race for {self.storage.uri(self.key)} to {held and held.get('owner')}")
        raise LockHeld(f"could not take {self.storage.uri(self.key)}: it keeps reappearing")

    def _record_break(self, held: dict, log: Callable[[str], None]) -> None:
        now = time.time()
        key = f"{BROKEN_PREFIX}{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}-{self.token}.json"
        write_json(self.storage, key, {"broken_by": self.break_by, "broken_at": _stamp(now),
                                       "new_owner": self.owner, "lock": held})
        log(f"lock: {self.break_by} broke the live lock of {held.get('owner')} (acquired {held.get('acquired_at')}); "
            f"recorded at {self.storage.uri(key)}")

    def refresh(self) -> None:
        """Heartbeat: push the expiry forward, if the lock is still ours."""
        held = self.current()
        if not held or held.get("token") != self.token:
            raise LockHeld(f"{self.storage.uri(self.key)} is no longer ours (held by "
                           f"{held and held.get('owner')}); stopping before anything else is written")
        self.storage.write(self.key, self._doc(), "application/json")

    def release(self) -> None:
        """Remove the lock if it is still ours (never someone else's)."""
        held = self.current()
        if held and held.get("token") == self.token:
            self.storage.delete_state(self.key)


@contextmanager
def bucket_lock(storage: Storage, owner: str, ttl_s: float = DEFAULT_TTL_S,
                log: Callable[[str], None] = print, break_by: str | None = None) -> Iterator[BucketLock]:
    """Hold the bucket's lock for the ``with`` block; released on success, on errors and on SIGTERM/SIGINT.

    ``break_by``: the person taking over a live lock (recorded; see the module docstring).
    """
    lock = BucketLock(storage, owner, ttl_s, break_by=break_by)

    def release() -> None:
        try:
            lock.release()
        except Exception as e:  # noqa: BLE001 - the bucket may be the reason we are failing
            log(f"lock: could not release {storage.uri(lock.key)} ({e}); it expires after {ttl_s:.0f} s")

    try:
        lock.acquire(log)
    except (LockHeld, StorageError):        # nothing of ours was left in the bucket
        raise
    except BaseException:                   # stopped part-way (a signal): our lock may be in place already
        release()
        raise
    try:
        yield lock
    finally:
        release()
