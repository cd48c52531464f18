"""The photo reader: its artifact is consistent, it reads, it trains what it should, and the predictor
hands it exactly the unsure readings."""
import json
import os
import shutil

import numpy as np
import pytest

from adapter_helpers import scramble_adapters
from crops.codes import differ_by_confusables, looks_like_a_code
from recognizer.photoreader import PHOTO_DIR, PhotoReader, decode, prepare
from recognizer.predict import Predictor, _rot, _upright


@pytest.fixture(scope="module")
def reader():
    return PhotoReader(threads=1)


@pytest.fixture(scope="module")
def renders():
    from synth.pools import render_pool

    pool = render_pool(24, seed=8_800_001, workers=1, height=48)
    return [pool.image(i) for i in range(len(pool))], pool.labels


def test_shipped_graph_runs_the_same_in_torch_and_onnx(reader):
    """model.onnx is what reads, graph.json + model.safetensors is what trains: they must be one model."""
    import torch
    from safetensors.numpy import load_file

    from recognizer.graphnet import GraphNet

    with open(os.path.join(PHOTO_DIR, "graph.json")) as f:
        net = GraphNet(json.load(f), load_file(os.path.join(PHOTO_DIR, "model.safetensors"))).eval()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 48, 320)).astype(np.float32)
    onnx_out = reader.sess.run(None, {"x": x})[0]
    with torch.no_grad():
        torch_out = net(torch.from_numpy(x)).numpy()
    assert onnx_out.shape == torch_out.shape == (2, 40, len(reader.charset) + 1)   # 320 px -> 40 steps
    assert np.abs(onnx_out - torch_out).max() < 1e-4


def test_reads_rendered_codes_with_calibrated_confidence(reader, renders):
    grays, labels = renders
    reads = reader.read(grays)
    right = [" ".join(t.split()) == " ".join(lab.split()) for (t, _), lab in zip(reads, labels)]
    assert sum(right) >= 0.7 * len(labels), list(zip(reads, labels))
    conf_right = np.mean([c for (_, c), r in zip(reads, right) if r])
    assert all(0.0 <= c <= 1.0 for _, c in reads)
    if not all(right):   # wrong readings are the less confident ones on average
        assert np.mean([c for (_, c), r in zip(reads, right) if not r]) < conf_right


def test_decode_collapses_repeats_and_blanks():
    charset = "AB"
    probs = np.zeros((1, 6, 3), np.float32)
    for t, k in enumerate([1, 1, 0, 1, 2, 0]):     # A A _ A B _
        probs[0, t, k] = 0.9 if t != 4 else 0.6
    assert decode(probs, charset) == [("AAB", pytest.approx(0.6))]
    assert decode(np.eye(3, dtype=np.float32)[None, [0, 0]], charset) == [("", 0.0)]


def test_prepare_pads_short_crops_to_the_trained_width():
    x = prepare([np.full((20, 40), 255, np.uint8), np.zeros((10, 200), np.uint8)], 48, 320)
    assert x.shape == (2, 3, 48, 960)                       # 200 px at height 10 -> 960 at 48
    assert x[0, :, :, :96].min() == 1.0 and (x[0, :, :, 96:] == 0).all()   # 40 px -> 96; zero padding after


def test_reading_adds_a_margin_of_the_crops_own_edge_pixels(reader):
    """Tight crops get 0.3 x their height of edge pixels left and right before reading (PP-OCR reads
    detector boxes, drawn about a third of the text height outside the text); top and bottom untouched."""
    assert reader.margin == json.load(open(os.path.join(PHOTO_DIR, "config.json")))["read_margin"] == 0.3
    g = np.zeros((20, 200), np.uint8)
    g[:, 0], g[:, -1] = 100, 200
    x = prepare([g], 20, 0, margin=0.3)                       # height 20: no resize, 6 px each side
    assert x.shape == (1, 3, 20, 212)
    left, right = (x[0, 0, :, :7] + 1) * 127.5, (x[0, 0, :, 205:] + 1) * 127.5
    assert np.allclose(left, 100) and np.allclose(right, 200)
    assert np.allclose(prepare([g], 20, 0), prepare([g], 20, 0, margin=0.0))


def test_predictor_consults_it_only_below_photo_below(base_model_dir, renders, monkeypatch):
    grays, _ = renders
    monkeypatch.delenv("TAGLOOP_PHOTO_READER", raising=False)
    assert Predictor(base_model_dir).photo_dir is not None             # on by default
    crnn = Predictor(base_model_dir, photo=None).predict_arrays(grays)
    # photo_below=0: no reading is replaced; the photo reader only confirms (or vetoes) the CRNN's 180-degree turns
    never = Predictor(base_model_dir, photo_below=0.0, photo_outside_layouts=False).predict_arrays(grays)
    for c, n in zip(crnn, never):
        assert (n.text, n.confidence, n.rotation) == (c.text, c.confidence, c.rotation) or (
            n.rotation == (c.rotation + 180) % 360 and c.rotation != n.rotation)
    # the photo reading of each crop the way up the CRNN read it (turns confirmed)
    direct = [PhotoReader().read([_rot(g, n.rotation)])[0] for g, n in zip(grays, never)]
    # the confidence rules alone (``photo_weighed=None``; the weighing of two differing readings: the next test)
    always = Predictor(base_model_dir, photo_below=1.01, photo_floor=0.0, photo_upright_view=False,
                       photo_weighed=None).predict_arrays(grays)
    assert [p.text for p in always] == [t or n.text for (t, _), n in zip(direct, never)]  # the photo reading (if any)
    default = Predictor(base_model_dir, photo_weighed=None).predict_arrays(grays)
    # an unsure reading turned from upright (a deskew retry's turn): the upright view's photo reading when surer
    upright = [PhotoReader().read([_rot(g, _upright(g))])[0] for g in grays]
    for g, n, d, (t, conf), up in zip(grays, never, default, direct, upright):
        if n.confidence >= 0.97 and not looks_like_a_code(n.text):
            # a sure reading outside every brand layout: an equally sure, different photo reading replaces it, and
            # so does one at least photo_floor sure that differs from it only in confusable glyphs (0/O, 1/I, ...)
            replaced = t != n.text and (conf >= 0.97 or (conf >= 0.5 and differ_by_confusables(n.text, t)))
            assert (d.text, d.confidence) == ((t, conf) if replaced else (n.text, n.confidence))
            continue
        if n.confidence < 0.97 and n.rotation != _upright(g) and up[1] > conf:
            t, conf = up
        if n.confidence >= 0.97 or conf < 0.5 or not t:
            assert (d.text, d.confidence) == (n.text, n.confidence)    # other sure readings are never changed
        else:
            assert (d.text, d.confidence) == (t, conf)
    monkeypatch.setenv("TAGLOOP_PHOTO_READER", "off")
    off = Predictor(base_model_dir, photo_below=1.01, photo_floor=0.0)
    assert off.photo_dir is None
    assert [p.text for p in off.predict_arrays(grays)] == [p.text for p in crnn]


def test_where_the_readers_disagree_the_reading_both_score_likelier_stands(base_model_dir, renders):
    """Served (``photo_weighed`` 0.5): where our reading and the photo reading differ, each reader scores both
    (CTC log-probability of the whole reading) and the one with the higher 0.5 x ours + the photo reader's stands;
    where they agree, or the photo reading is empty, the confidence rules decide as before."""
    from recognizer.decode import ctc_log_likelihood
    from recognizer.preprocess import resize_height

    grays, _ = renders
    # every crop goes to the photo reader (photo_below > 1), read the way up the CRNN read it
    kw = dict(photo_below=1.01, photo_upright_view=False, photo_outside_layouts=False)
    never = Predictor(base_model_dir, photo_below=0.0, photo_outside_layouts=False).predict_arrays(grays)
    rules = Predictor(base_model_dir, photo_weighed=None, **kw)
    weighed = Predictor(base_model_dir, **kw)
    assert weighed.photo_weighed == 0.5
    got, by_rules = weighed.predict_arrays(grays), rules.predict_arrays(grays)
    changed = 0
    for g, n, w, r in zip(grays, never, got, by_rules):
        view = _rot(g, n.rotation)
        (t, c, photo_lp), = PhotoReader().read_frames([view])
        if not t or t == n.text:
            assert (w.text, w.confidence) == (r.text, r.confidence)
            continue
        # ours is scored on the view the CRNN read: turned, and levelled when a deskew retry read it
        (crnn_lp,) = weighed.engine.log_probs([resize_height(weighed._view(g, n), weighed.height)])

        def score(text):
            ids = weighed.tok.encode(text)
            return 0.5 * ctc_log_likelihood(crnn_lp, ids) + ctc_log_likelihood(photo_lp, ids)

        assert (w.text, w.confidence) == ((t, c) if score(t) > score(n.text) else (n.text, n.confidence))
        changed += (w.text, w.confidence) != (r.text, r.confidence)
    assert changed > 0                       # the weighing decided differently from the rules on some crop here


def test_a_learnt_reading_gives_way_only_to_a_surer_or_glyph_confusable_photo_reading(base_model_dir, renders, tmp_path):
    """What the adapters learnt stands unless the photo reader is surer, or the two differ only in confusable glyphs
    (``0``/``O``: the photo reader's wins); ``photo_over_learnt=None`` keeps it."""
    from recognizer.checkpoint import load_model, save_model
    from recognizer.finetune import add_adapters

    grays, _ = renders
    model, tok, _ = load_model(base_model_dir)
    adapted = add_adapters(model, 8).eval()
    scramble_adapters(adapted, 3)            # adapters that learnt something else entirely
    model_dir = save_model(adapted, tok, str(tmp_path / "noisy"))
    paths = dict(adapted_below=1.01, adapted_margin=-1.0, backend="torch")   # every crop: the adapted reading wins
    # the photo reader replaces nothing here; it only confirms 180-degree turns, as it does when serving
    crnn = Predictor(model_dir, photo_below=0.0, photo_over_learnt=None, photo_outside_layouts=False, **paths)
    base = crnn._predict(grays, 0, {})                                 # the base path alone
    ours = crnn.predict_arrays(grays)                                  # base, then adapted on unsure crops
    learnt = [(b.text, b.confidence) != (o.text, o.confidence) for b, o in zip(base, ours)]
    assert 0 < sum(learnt) < len(learnt)
    kw = dict(photo_below=1.01, photo_floor=0.0, photo_weighed=None, **paths)   # the confidence rules alone
    photo = [PhotoReader().read([_rot(g, p.rotation)])[0] for g, p in zip(grays, ours)]   # read the way up ours was
    default = Predictor(model_dir, **kw)
    over = default.photo_over_learnt                                   # -0.2: a photo reading up to 0.2 less sure wins
    served = default.predict_arrays(grays)
    kept = Predictor(model_dir, photo_over_learnt=None, **kw).predict_arrays(grays)
    for o, was_learnt, (t, c), s, k in zip(ours, learnt, photo, served, kept):
        if not was_learnt and not t:
            assert (s.text, s.confidence) == (k.text, k.confidence)             # no photo reading: ours stands
        elif not was_learnt:
            assert (s.text, s.confidence) == (k.text, k.confidence) == (t, c)   # every other crop: the photo reading
        else:
            assert (k.text, k.confidence) == (o.text, o.confidence)
            photo_wins = c > o.confidence + over or differ_by_confusables(o.text, t)
            assert (s.text, s.confidence) == ((t, c) if photo_wins else (o.text, o.confidence))


def test_a_reading_with_a_character_the_photo_reader_cannot_write_stands(base_model_dir, renders):
    """A fine-tune may add characters (``+``); the photo reader, cut to the base charset, never replaces them."""
    from recognizer.predict import Prediction

    grays, _ = renders
    predictor = Predictor(base_model_dir, photo_below=1.01, photo_floor=0.0, photo_weighed=None)
    preds = [Prediction("AB+12", 0.1), Prediction("AB12", 0.1)]
    predictor._photo_pass(grays[:2], preds, set())
    assert (preds[0].text, preds[0].confidence) == ("AB+12", 0.1)
    assert (preds[1].text, preds[1].confidence) == PhotoReader().read(grays[1:2])[0]


def test_a_sure_learnt_reading_that_differs_only_in_a_confusable_glyph_gives_way(base_model_dir, renders):
    from recognizer.predict import Prediction

    grays, _ = renders
    reads = PhotoReader().read(grays)
    swap = {"0": "O", "O": "0", "1": "I", "I": "1", "5": "S", "S": "5", "8": "B", "B": "8"}
    i, (text, conf) = next((i, r) for i, r in enumerate(reads) if set(r[0]) & set(swap) and r[1] >= 0.5)
    k = next(j for j, ch in enumerate(text) if ch in swap)
    confusable = text[:k] + swap[text[k]] + text[k + 1:]          # e.g. 1SMO1611D for 1SM01611D
    other = text[:k] + ("7" if text[k] != "7" else "4") + text[k + 1:]   # a different glyph, not a confusable one
    predictor = Predictor(base_model_dir, photo_below=1.01, photo_over_learnt=0.0, photo_weighed=None)  # glyph rule alone
    preds = [Prediction(confusable, 1.0), Prediction(other, 1.0)]           # no photo reading is surer
    predictor._photo_pass([grays[i], grays[i]], preds, learnt={0, 1})
    assert (preds[0].text, preds[0].confidence) == (text, conf)           # the photo reader's glyph wins
    assert (preds[1].text, preds[1].confidence) == (other, 1.0)           # sure, and not a glyph confusion: stands


def test_training_moves_only_neck_and_head_and_resumes(tmp_path, renders):
    from safetensors.numpy import load_file

    from recognizer.photoreader import FREEZE_UNTIL, export, train
    from recognizer.pool import Pool

    grays, labels = renders
    pool_path = str(tmp_path / "pool.npz")
    widths = np.array([g.shape[1] for g in grays], np.int32)
    offsets = np.concatenate([[0], np.cumsum([g.size for g in grays])[:-1]]).astype(np.int64)
    Pool(48, np.concatenate([g.reshape(-1) for g in grays]), widths, offsets, labels).save(pool_path)
    out = tmp_path / "photo"
    shutil.copytree(PHOTO_DIR, out, ignore=shutil.ignore_patterns("model.onnx"))
    before = load_file(str(out / "model.safetensors"))
    run = train(str(out), [pool_path], None, minutes=5, batch=4, every=2, max_steps=2, log=lambda s: None)
    assert run["steps"] == [0, 2] and os.path.isfile(out / "step2.safetensors")
    run2 = train(str(out), [pool_path], None, minutes=5, batch=4, every=2, max_steps=1, log=lambda s: None)
    assert run2["steps"] == [2, 3]                                       # resumed from the checkpoint
    assert [r["steps"] for r in json.loads((out / "config.json").read_text())["training"]][-2:] == [[0, 2], [2, 3]]
    export(str(out), str(out / "last.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    assert np.array_equal(before["conv2d_68.w_0"], after["conv2d_68.w_0"])        # backbone frozen
    assert not np.array_equal(before["linear_8.w_0"], after["linear_8.w_0"])      # output layer learnt
    assert FREEZE_UNTIL in after
    assert PhotoReader(str(out)).read(grays[:2])                          # the exported graph reads
