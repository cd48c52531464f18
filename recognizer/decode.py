"""Greedy CTC decoding with a per-crop confidence."""
from __future__ import annotations

import numpy as np

from recognizer.tokenizer import CTCTokenizer


def collapse_mask(ids: np.ndarray, blank: int) -> np.ndarray:
    """Bool per frame of a greedy CTC path: the frames that emit a character (repeats merged, blanks dropped)."""
    keep = np.ones(len(ids), bool)
    keep[1:] = ids[1:] != ids[:-1]
    return keep & (ids != blank)


SCORES = ("min", "gmean", "path")


def greedy_decode(logp: np.ndarray, lengths: np.ndarray, tok: CTCTokenizer,
                  score: str = "min") -> list[tuple[str, float]]:
    """T x B x K log-probs -> [(text, confidence)] per crop.

    ``score``: ``min`` = the smallest max-probability among the emitted characters' frames;
    ``gmean`` = their geometric mean; ``path`` = the probability of the whole greedy
    alignment (every frame of the crop, blanks included). An empty reading is scored on
    its blank frames.
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
        if not len(scores):
            conf = 0.0
        elif score == "path":
            conf = float(np.exp(top[:n, b].sum()))
        elif score == "gmean":
            conf = float(np.exp(scores.mean()))
        else:
            conf = float(np.exp(scores.min()))
        out.append((text, conf))
    return out
