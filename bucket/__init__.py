"""The bottom layer: the bucket (a ``gs://`` bucket or a local directory), its lock and its JSON state objects.

``bucket.storage``: list / read / write / create over object keys, with retries.
``bucket.state``: dataclasses stored as JSON documents under ``state/`` (one implementation).
``bucket.lock``: a lock object in the bucket, so two retrains on one bucket never overlap.
Nothing here knows about crops, models or flows.
"""
