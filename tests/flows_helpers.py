"""Helpers for the flow tests: incoming crops in a bucket, reading JSON lines back."""
from __future__ import annotations

import json

from bucket.storage import Storage
from ingest_helpers import png_bytes


def put_incoming(storage: Storage, day: str, crops, prefix: str = "c") -> list[str]:
    """Write rendered crops as ``incoming/<day>/<prefix><i>.png``; returns their keys."""
    keys = []
    for i, c in enumerate(crops):
        key = f"incoming/{day}/{prefix}{i}.png"
        storage.write(key, png_bytes(c.image), "image/png")
        keys.append(key)
    return keys


def jsonl(storage: Storage, key: str) -> list[dict]:
    return [json.loads(line) for line in storage.read(key).decode().splitlines() if line.strip()]
