"""Greedy CTC decoding with a per-crop confidence."""
from __future__ import annotations

from collections.abc import Sequence

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


def ctc_log_likelihood(logp: np.ndarray, labels: Sequence[int], blank: int = 0) -> float:
    """log P(labels | frames) under CTC: every alignment of ``labels`` to the T x K log-probs ``logp`` summed
    (the forward algorithm), so two readings of one crop get comparable scores whatever their lengths.
    -inf when the frames are too few for ``labels``."""
    ext = np.full(2 * len(labels) + 1, blank, np.int64)     # blank, l1, blank, l2, ..., blank
    ext[1::2] = labels
    S, T = len(ext), logp.shape[0]
    # a state may skip the blank before it when it is a label different from the label two states back
    skip = np.zeros(S, bool)
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    alpha = np.full(S, -np.inf)
    alpha[0] = logp[0, ext[0]]
    if S > 1:
        alpha[1] = logp[0, ext[1]]
    for t in range(1, T):
        prev1 = np.concatenate(([-np.inf], alpha[:-1]))
        prev2 = np.where(skip, np.concatenate(([-np.inf, -np.inf], alpha[:-2])), -np.inf)
        alpha = np.logaddexp(np.logaddexp(alpha, prev1), prev2) + logp[t, ext]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if S > 1 else alpha[-1])
