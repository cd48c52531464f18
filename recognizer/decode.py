"""Greedy CTC decoding with a per-crop confidence."""
from __future__ import annotations

import numpy as np

from recognizer.tokenizer import CTCTokenizer


def collapse_mask(ids: np.ndarray, blank: int) -> np.ndarray:
    """Bool per frame of a greedy CTC path: the frames that emit a character (repeats merged, blanks dropped)."""
    keep = np.ones(len(ids), bool)
    keep[1:] = ids[1:] != ids[:-1]
    return keep & (ids != blank)


def greedy_decode(logp: np.ndarray, lengths: np.ndarray, tok: CTCTokenizer) -> list[tuple[str, float]]:
    """T x B x K log-probs -> [(text, confidence)] per crop.

    Confidence = product over emitted characters of their max probability (geometric
    reading of the path); 0 for an empty reading is avoided by using the blank path.
    """
    best = logp.argmax(-1)                     # T x B
    top = np.take_along_axis(logp, best[..., None], -1)[..., 0]  # T x B
    out = []
    for b in range(logp.shape[1]):
        n = int(lengths[b])
        ids = best[:n, b]
        text = tok.decode(ids)
        keep = collapse_mask(ids, tok.blank_id)
        scores = top[:n, b][keep] if keep.any() else top[:n, b]
        conf = float(np.exp(scores.min())) if len(scores) else 0.0
        out.append((text, conf))
    return out
