import csv
import os
import random

import numpy as np
import pytest
from PIL import ImageFont

from recognizer.tokenizer import CTCTokenizer
from synth.fonts import HELD_OUT, font_pool, is_held_out
from synth.grammar import FAMILIES, CodeSampler
from synth.render import Renderer, RenderConfig
from synth.trdg_compat import install, text_layer


def test_every_family_yields_codes_inside_charset_and_length_range():
    tok = CTCTokenizer()
    rng = random.Random(0)
    for name, fam in FAMILIES.items():
        for _ in range(200):
            code = fam(rng)
            assert not tok.unknown_chars(code), (name, code)
            assert 4 <= len(code) <= 21, (name, code)
            assert code == code.strip() and "  " not in code


def test_sampler_respects_mix_and_rejects_unknown_family():
    s = CodeSampler({"nike": 1.0})
    fams = {s.sample(random.Random(i))[1] for i in range(50)}
    assert fams == {"nike"}
    with pytest.raises(ValueError, match="unknown brand"):
        CodeSampler({"gucci": 1.0})


def test_trdg_shim_restores_getsize_with_pillow_semantics():
    install()
    font = ImageFont.truetype(font_pool("train")[0], 32)
    w, h = font.getsize("DD1391-100")
    left, top, right, bottom = font.getbbox("DD1391-100")
    assert (w, h) == (right, bottom) and w > h > 10


def test_trdg_text_layer_renders_and_handles_failure():
    layer = text_layer("GY7924", font_pool("train")[0], 30, "#FFFFFF")
    assert layer is not None and layer.mode == "RGBA"
    alpha = np.asarray(layer)[:, :, 3]
    assert alpha.max() > 200 and layer.width > layer.height
    assert text_layer("GY7924", "/nonexistent/font.ttf", 30, "#FFFFFF") is None


def test_held_out_fonts_are_disjoint_from_training_fonts():
    train, held = set(font_pool("train")), set(font_pool("heldout"))
    assert train and held and not train & held
    assert all(is_held_out(f) for f in held)


def test_every_font_package_the_setup_installs_is_found():
    """The font pool is what the model trained on and the benchmark tests on: a missing package changes every render."""
    import os

    names = {os.path.basename(f) for f in font_pool("all")}
    expected = {"NimbusSans-Regular.otf": "fonts-urw-base35", "LiberationSans-Regular.ttf": "fonts-liberation2",
                "OCRB.otf": "fonts-ocr-b", "Arimo-Regular.ttf": "fonts-croscore", "DejaVuSans.ttf": "fonts-dejavu-core",
                "DejaVuSansCondensed-Bold.ttf": "fonts-dejavu-extra", "Roboto-Regular.ttf": "trdg"}
    missing = {f: pkg for f, pkg in expected.items() if f not in names}
    assert not missing, f"fonts missing (run scripts/setup.sh): {missing}"
    held = {os.path.basename(f) for f in font_pool("heldout")}
    assert {h for h in HELD_OUT if not any(n.startswith(h) for n in held)} == set()


def test_font_order_does_not_depend_on_where_the_venv_lives(monkeypatch):
    """A seed picks a font by index: the same fonts must come in the same order from a checkout under /check
    (TRDG's fonts sort before /usr/share by path) and one under /work (after), or renders differ per machine."""
    import synth.fonts as fonts

    def listing(prefix):
        monkeypatch.setattr(fonts, "_trdg_fonts", lambda: [f"{prefix}/.venv/trdg/fonts/latin/Roboto-Regular.ttf"])
        fonts.all_fonts.cache_clear()
        return [os.path.basename(f) for f in fonts.all_fonts()]

    try:
        assert listing("/check/work/main") == listing("/work/main")
    finally:
        fonts.all_fonts.cache_clear()


def test_faint_renders_are_drawn_again_until_text_is_visible():
    """Low contrast on thin dot-matrix print could leave a crop with no visible text (grey std ~2), which ingest
    quarantines as blank: a simulated correction lost, a training label on an empty crop."""
    from flows.simulate import DOT_MATRIX_DOMAIN
    from synth.render import MIN_VISIBLE, RenderConfig

    cfg = RenderConfig(**{**DOT_MATRIX_DOMAIN, "p_low_contrast": 1.0, "p_inverted": 0.0, "p_colored": 0.0})
    r, rng = Renderer(cfg, seed=0), np.random.default_rng(0)
    spreads = [r.render(rng).image.astype(np.float32).mean(axis=2).std() for _ in range(120)]
    assert min(spreads) >= MIN_VISIBLE


def test_render_is_deterministic_and_well_formed():
    r1, r2 = Renderer(seed=3), Renderer(seed=3)
    a = [r1.render(np.random.default_rng(42)) for _ in range(1)][0]
    b = [r2.render(np.random.default_rng(42)) for _ in range(1)][0]
    assert a.label == b.label and np.array_equal(a.image, b.image)
    assert a.image.dtype == np.uint8 and a.image.ndim == 3 and a.image.shape[2] == 3


def test_rotation_condition_turns_the_crop():
    r = Renderer(RenderConfig(p_rot90=1.0), seed=0)
    rng = np.random.default_rng(1)
    crops = [r.render(rng) for _ in range(5)]
    assert all(c.rotation in (90, 270) and c.condition == "rotated" for c in crops)
    assert sum(c.image.shape[0] > c.image.shape[1] for c in crops) >= 4


def test_dataset_writer_writes_images_and_slice_columns(crops_dir):
    with open(os.path.join(crops_dir, "labels.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24
    assert {"filename", "label", "brand", "condition", "length", "tilt"} <= set(rows[0])
    for r in rows:
        assert os.path.getsize(os.path.join(crops_dir, "images", r["filename"])) > 100
    assert len({r["brand"] for r in rows}) > 3


def test_dataset_output_does_not_depend_on_worker_count(tmp_path):
    from synth.dataset import write_dataset

    a = write_dataset(str(tmp_path / "a"), 6, seed=4, workers=1, chunk=3)
    b = write_dataset(str(tmp_path / "b"), 6, seed=4, workers=2, chunk=3)
    assert open(a).read() == open(b).read()
    for name in os.listdir(tmp_path / "a" / "images"):
        assert (tmp_path / "a" / "images" / name).read_bytes() == (tmp_path / "b" / "images" / name).read_bytes()


def test_renderer_retries_when_trdg_yields_nothing(monkeypatch):
    import synth.render as render

    calls = {"n": 0}
    real = render.text_layer

    def flaky(*args, **kwargs):
        calls["n"] += 1
        return None if calls["n"] == 1 else real(*args, **kwargs)

    monkeypatch.setattr(render, "text_layer", flaky)
    crop = Renderer(seed=0).render(np.random.default_rng(0), label="GY7924", brand="adidas")
    assert crop.label == "GY7924" and calls["n"] >= 2

    monkeypatch.setattr(render, "text_layer", lambda *a, **k: None)
    with pytest.raises(RuntimeError, match="could not render"):
        Renderer(seed=0).render(np.random.default_rng(0), label="GY7924")


def test_dot_matrix_condition_is_opt_in():
    plain = Renderer(RenderConfig(), seed=4).render(np.random.default_rng(4))
    dots = Renderer(RenderConfig(p_dot_matrix=1.0), seed=4).render(np.random.default_rng(4))
    assert plain.label == dots.label and dots.condition == "dot_matrix" and "dot_matrix" not in plain.tags
    off = Renderer(RenderConfig(p_dot_matrix=0.0), seed=4).render(np.random.default_rng(4))
    assert np.array_equal(off.image, plain.image)          # p=0 draws no random number: renders unchanged
