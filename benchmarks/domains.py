"""New kinds of print the loop must learn, for the per-domain learning benchmark (``benchmarks.domain_curve``).

Three domains of different nature, each a function ``(n, seed) -> (JPEG bytes, labels)``:
- ``dot_matrix``: ink-jet dot-matrix box labels, rendered by ``synth`` (the project's own renderer).
  The nightly recipe was chosen on this domain in earlier sessions: it is the TUNING domain.
- ``dark_lowres``: light print on dark labels photographed small (text 9-14 px high), noisy, heavily
  compressed; drawn with PIL by code written here (not ``synth``), held-out font families.
- ``serif_plus``: a serif type family the renderer never uses (URW Bookman, C059, P052) and codes with a
  character outside the shipped charset (``+``, e.g. ``KL2231+05``): the fine-tune must extend the charset.
No recipe knob is chosen on ``dark_lowres`` or ``serif_plus``; they only score.
"""
from __future__ import annotations

import glob
import io
import random
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from benchmarks.othergen import NEIGHBOURS, fonts as heldout_fonts

Domain = Callable[[int, int], tuple[list[bytes], list[str]]]
LETTERS, DIGITS = "ABCDEFGHJKLMNPRSTUVWXYZ", "0123456789"
DARK_TEMPLATES = ("ll9999-999", "999999-99", "l99999", "ll9999 999", "9ll99999l-999", "lll 999999", "ll999l")
PLUS_TEMPLATES = ("ll9999+99", "999999+l", "l99+999-99", "ll-999+9", "9999+lll", "lll99+999")
SERIF_GLOBS = ("/usr/share/fonts/opentype/urw-base35/URWBookman-*.otf", "/usr/share/fonts/opentype/urw-base35/C059-*.otf",
               "/usr/share/fonts/opentype/urw-base35/P052-*.otf")


def _code(rng: random.Random, templates: tuple[str, ...]) -> str:
    pick = {"l": LETTERS, "9": DIGITS}
    return "".join(rng.choice(pick[c]) if c in pick else c for c in rng.choice(templates))


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _draw(rng: random.Random, label: str, font_file: str, size: int, bg: int, ink: int, neighbour: bool) -> tuple:
    font = ImageFont.truetype(font_file, size)
    x0, y0, x1, y1 = font.getbbox(label)
    w, h = x1 - x0, y1 - y0
    pad = int(1.2 * h)
    img = Image.new("L", (w + 2 * pad, h + 2 * pad), bg)
    d = ImageDraw.Draw(img)
    d.text((pad - x0, pad - y0), label, font=font, fill=ink)
    if neighbour:
        small = ImageFont.truetype(font_file, int(size * rng.uniform(0.5, 0.8)))
        y = pad - int(rng.uniform(0.9, 1.1) * h) if rng.random() < 0.5 else pad + int(rng.uniform(1.15, 1.3) * h)
        d.text((pad + rng.randint(-h, h), y), rng.choice(NEIGHBOURS), font=small, fill=ink)
    mx, my = int(rng.uniform(0.1, 0.5) * h), int(rng.uniform(0.05, 0.3) * h)
    return img.crop((pad - mx, pad - my, pad + w + mx, pad + h + my)), h


def _dark_lowres(rng: random.Random, font_files: list[str]) -> tuple[bytes, str]:
    label = _code(rng, DARK_TEMPLATES)
    img, h = _draw(rng, label, rng.choice(font_files), rng.randint(40, 64), rng.randint(10, 60), rng.randint(150, 235),
                   rng.random() < 0.3)
    img = img.rotate(rng.uniform(-3, 3), resample=Image.BICUBIC, expand=True, fillcolor=int(np.median(np.asarray(img))))
    th = rng.uniform(9, 14)                                      # text height in the photo: small
    img = img.resize((max(8, int(img.width * th / h)), max(8, int(img.height * th / h))), Image.BILINEAR)
    arr = np.asarray(img, np.float32) + np.random.default_rng(rng.randrange(2**31)).normal(0, rng.uniform(4, 12),
                                                                                           (img.height, img.width))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return _jpeg(img, rng.randint(20, 50)), label


def _serif_plus(rng: random.Random, font_files: list[str]) -> tuple[bytes, str]:
    label = _code(rng, PLUS_TEMPLATES)
    img, h = _draw(rng, label, rng.choice(font_files), rng.randint(40, 64), rng.randint(180, 250), rng.randint(0, 70),
                   rng.random() < 0.4)
    img = img.rotate(rng.uniform(-4, 4), resample=Image.BICUBIC, expand=True, fillcolor=int(np.median(np.asarray(img))))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))
    th = rng.uniform(18, 40)
    img = img.resize((max(8, int(img.width * th / h)), max(8, int(img.height * th / h))), Image.BILINEAR)
    return _jpeg(img, rng.randint(50, 90)), label


def _pil_domain(make: Callable[[random.Random, list[str]], tuple[bytes, str]], font_files: Callable[[], list[str]]) -> Domain:
    def render(n: int, seed: int) -> tuple[list[bytes], list[str]]:
        rng, files = random.Random(seed), font_files()
        out = [make(rng, files) for _ in range(n)]
        return [b for b, _ in out], [lab for _, lab in out]
    return render


def serif_fonts() -> list[str]:
    found = sorted(f for g in SERIF_GLOBS for f in glob.glob(g) if "Italic" not in f)
    if not found:
        raise RuntimeError("URW base35 fonts missing (scripts/setup.sh installs fonts-urw-base35)")
    return found


def dot_matrix(n: int, seed: int) -> tuple[list[bytes], list[str]]:
    from benchmarks.learning_curve import render_jpegs

    return render_jpegs(n, seed, workers=2)


DOMAINS: dict[str, Domain] = {
    "dot_matrix": dot_matrix,
    "dark_lowres": _pil_domain(_dark_lowres, heldout_fonts),
    "serif_plus": _pil_domain(_serif_plus, serif_fonts),
}
EXTRA_CHARS = {"serif_plus": "+"}          # characters a domain's labels need beyond the shipped charset
TUNED_ON = ("dot_matrix",)                 # domains the nightly recipe was chosen on
