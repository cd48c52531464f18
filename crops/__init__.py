"""Crop definitions: what a crop is and how it is described, one definition each.

``crops.image``: bytes -> RGB array (the one decoding rule: EXIF, size limits, reasons).
``crops.families``: the characters codes are written in, brand families and their layouts
(the regex table), ``format_family``, ``looks_like_a_code``.
``crops.slices``: length band, tilt band, coarse image condition (the slice columns).
``crops.features``: per-crop features (hashes, image statistics, label features).

Used alike by synth, recognizer, ingest, loop (gate, mix) and monitoring; imports nothing
else from tagloop.
"""
