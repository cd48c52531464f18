"""Retry policy for side-effecting tasks (bucket, registry, Prefect API).

Transient storage errors are already retried inside ``bucket.storage``; a Prefect retry
covers longer outages. Errors that another attempt cannot fix (no such bucket, a bad
parameter, a missing model) fail at once instead of waiting through the delays.
"""
from __future__ import annotations

from typing import Any

from bucket.lock import LockHeld
from bucket.storage import BucketNotFound, ObjectNotFound, ObjectUnreadable, OutOfSpace, UnsafeObjectName
from ingest.pipeline import ValidationFailed
from labeling.studio import StudioRefused

# what no retry can fix: a bad parameter or object, a full disk, a held lock, a batch that failed validation,
# Label Studio refusing a request (a bad token, no such project)
PERMANENT = (BucketNotFound, ObjectNotFound, ObjectUnreadable, UnsafeObjectName, OutOfSpace, LockHeld,
             ValidationFailed, StudioRefused, ValueError, FileNotFoundError, TypeError, KeyError, RecursionError, OverflowError,
             MemoryError)


def worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: False for errors a retry cannot fix."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - result not retrievable: retry as usual
        return True
    return not isinstance(exc, PERMANENT)


IO_RETRIES: dict[str, Any] = {"retries": 3, "retry_delay_seconds": [1, 5, 15], "retry_condition_fn": worth_retrying}
API_RETRIES: dict[str, Any] = {"retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": worth_retrying}
