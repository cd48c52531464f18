"""Local files written whole: through a temporary file beside the target and a rename, with the mode any
file a person creates gets (0644 under the usual umask 022), not ``tempfile.mkstemp``'s 0600.

Everything tagloop writes for people (bucket objects of a directory bucket: queues, reports, manifests;
``preds.csv``) goes through ``write_temp`` / ``atomic_write``, so a reader sees the old file or the new
one, never part of one, and a failed write (a full disk) leaves no temporary file behind.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress

FILE_MODE = 0o644           # before the umask, like open(path, "w") would give
TEMP_PREFIX = ".tmp-"       # directory listings skip names holding it


def _umask() -> int:
    """The process umask, read without changing it where Linux says it (``/proc/self/status``)."""
    with suppress(OSError, ValueError, IndexError):      # no /proc (not Linux): the classic read below
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)      # the classic read: set, then put back at once
    os.umask(mask)
    return mask


@contextmanager
def discarded_on_error(tmp: str) -> Iterator[None]:
    """Remove the temporary file ``tmp`` when the block fails (the block's error is the one raised)."""
    try:
        yield
    except BaseException:
        with suppress(OSError):
            os.remove(tmp)
        raise


def write_temp(directory: str, data: bytes, mode: int = FILE_MODE) -> str:
    """``data`` in a new temporary file in ``directory`` with ``mode`` less the umask; its path. The
    caller renames or links it into place (and removes it if that fails); on a failed write it is gone."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX)
    with discarded_on_error(tmp):
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode & ~_umask())
    return tmp


def atomic_write(path: str, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` atomically (``write_temp`` + ``os.replace``)."""
    tmp = write_temp(os.path.dirname(os.path.abspath(path)), data, mode)
    with discarded_on_error(tmp):
        os.replace(tmp, path)
