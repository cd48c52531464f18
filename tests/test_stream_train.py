"""The time-boxed streaming trainer (GPU pretraining recipe) on a tiny CPU budget."""
from __future__ import annotations

import numpy as np
import pytest

from recognizer.checkpoint import load_model
from recognizer.stream_train import StreamConfig, StreamingSynth, lr_at_time, stream_train
from recognizer.tokenizer import CTCTokenizer


def test_lr_follows_wall_clock_cosine():
    cfg = StreamConfig(seconds=100, lr=1e-3, warmup_s=10, min_lr_frac=0.02)
    assert lr_at_time(0, cfg) < lr_at_time(5, cfg) < lr_at_time(10, cfg) == pytest.approx(1e-3)
    assert lr_at_time(55, cfg) == pytest.approx(1e-3 * (0.02 + 0.98 * 0.5), rel=1e-6)
    assert lr_at_time(100, cfg) == pytest.approx(2e-5) == lr_at_time(1000, cfg)


def test_stream_yields_width_bucketed_labelled_batches():
    tok = CTCTokenizer()
    ds = StreamingSynth(StreamConfig(batch_size=8, buffer=40, fresh_per_batch=2, seed=3), tok)
    it = iter(ds)
    for _ in range(3):
        b = next(it)
        assert b["images"].shape[:3] == (8, 1, 32)
        assert int(b["target_lengths"].sum()) == b["targets"].numel()
        assert b["targets"].min() >= 1 and b["targets"].max() < tok.num_classes  # never the blank
        w = b["widths"].numpy()
        assert w.max() <= b["images"].shape[3]
        # drawn from a 4x-batch candidate window sorted by width: similar widths, not the whole range
        assert np.ptp(w) < 0.9 * w.max()


@pytest.mark.slow
def test_time_boxed_run_writes_a_loadable_artifact(tmp_path, base_model_dir):
    cfg = StreamConfig(seconds=3, batch_size=8, buffer=30, fresh_per_batch=2, workers=0,
                       val_samples=16, eval_every=10**6, init=base_model_dir)
    res = stream_train(cfg, str(tmp_path), log=lambda s: None)
    assert res["step"] >= 1 and res["images_seen"] == 8 * res["step"]
    model, tok, meta = load_model(str(tmp_path))
    assert meta["meta"]["step"] == res["step"] and meta["meta"]["recipe"]["stream"]["seconds"] == 3
    assert tok.charset == CTCTokenizer().charset
