"""JSON state objects in the bucket: one way to read and write them.

A state object is a dataclass stored as one JSON document under ``state/``. Reading an
absent object gives the dataclass's defaults; keys a stored document has and the
dataclass lacks are ignored (written by an older or newer tagloop); a ``history`` list
is kept to its last ``HISTORY`` entries when saved. Writers replace the whole object,
so a state object is a run's commit point when it is written last.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, TypeVar

from bucket.storage import ObjectNotFound, Storage

HISTORY = 50
S = TypeVar("S", bound="JsonState")


def encode_json(doc: Any) -> bytes:
    """One JSON document as bytes (sorted keys; dates and other odd values as strings)."""
    return json.dumps(doc, sort_keys=True, default=str).encode()


def read_json(storage: Storage, key: str) -> Any | None:
    """The JSON document at ``key``, or None when there is no such object."""
    try:
        return json.loads(storage.read(key))
    except ObjectNotFound:
        return None


def write_json(storage: Storage, key: str, doc: Any) -> None:
    """Create or replace the JSON document at ``key``."""
    storage.write(key, encode_json(doc), "application/json")


@dataclass
class JsonState:
    """Base of the state dataclasses; a subclass names its object in ``KEY``."""

    KEY: ClassVar[str] = ""

    @classmethod
    def load(cls: type[S], storage: Storage) -> S:
        """The committed state, or the defaults when the object does not exist yet."""
        doc = read_json(storage, cls.KEY)
        if doc is None:
            return cls()
        return cls(**{f.name: doc[f.name] for f in fields(cls) if f.name in doc})

    def save(self, storage: Storage) -> None:
        """Write the whole state (``history`` trimmed to its last ``HISTORY`` entries)."""
        history = getattr(self, "history", None)
        if isinstance(history, list):
            setattr(self, "history", history[-HISTORY:])
        write_json(storage, self.KEY, asdict(self))
