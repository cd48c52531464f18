"""Evaluation of a model on preprocessed pools or labelled crops (exact match, edit distance, slices)."""
from __future__ import annotations

import numpy as np
import torch

from recognizer.decode import greedy_decode
from recognizer.metrics import TextMatch
from recognizer.model import CRNN
from recognizer.preprocess import batch_tensor, width_batches
from recognizer.pool import Pool
from recognizer.tokenizer import CTCTokenizer


@torch.inference_mode()
def read_batch(model: CRNN, tok: CTCTokenizer, grays: list[np.ndarray]) -> list[tuple[str, float]]:
    """Upright reading of height-normalised crops (no orientation handling)."""
    x, widths = batch_tensor(grays)
    device = next(model.parameters()).device
    logp, _ = model(torch.from_numpy(x).to(device))
    lens = np.minimum((widths + 3) // 4, logp.shape[0])
    return greedy_decode(logp.float().cpu().numpy(), lens, tok)


def evaluate_pool(model: CRNN, tok: CTCTokenizer, pool: Pool, batch_size: int = 128) -> dict:
    """Exact match / normalised edit distance of upright readings over a pool."""
    tm = TextMatch()
    for idx in width_batches(pool.widths, batch_size):
        preds = read_batch(model, tok, [pool.image(int(i)) for i in idx])
        for i, (text, _) in zip(idx, preds):
            tm.update(text, pool.labels[int(i)])
    return tm.summary()
