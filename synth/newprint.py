"""Kinds of print the renderer (``synth.render``) never draws: for the demo's night and the per-domain benchmark.

A loop earns its keep on what the served model cannot read yet. These crops are drawn with PIL by code
that shares nothing with ``synth.render`` (no TRDG, no procedural labels, no camera model), so neither the
base model nor any recipe knob has seen them:

- ``serif_plus(n, seed)``: a brand whose codes carry a character outside the shipped charset (``+``, e.g.
  ``KL2231+05``), printed in serif families the renderer never uses (URW Bookman, C059, P052): the champion
  cannot write ``+`` at all, and a night that extends the charset (``IngestConfig.extra_chars``) must learn it.
  ``tagloop demo``'s new brand; ``benchmarks.domains``' ``serif_plus``.

``draw`` and ``code`` are shared with ``benchmarks.domains``' other PIL domain (dark, low resolution).
Each function is ``(n, seed) -> (JPEG bytes, labels)``, deterministic for ``seed``.
"""
from __future__ import annotations

import glob
import io
import random
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Stream = Callable[[int, int], tuple[list[bytes], list[str]]]
LETTERS, DIGITS = "ABCDEFGHJKLMNPRSTUVWXYZ", "0123456789"
PLUS_TEMPLATES = ("ll9999+99", "999999+l", "l99+999-99", "ll-999+9", "9999+lll", "lll99+999")
PLUS = "+"                                  # the character ``serif_plus`` adds to the charset
SERIF_GLOBS = ("/usr/share/fonts/opentype/urw-base35/URWBookman-*.otf", "/usr/share/fonts/opentype/urw-base35/C059-*.otf",
               "/usr/share/fonts/opentype/urw-base35/P052-*.otf")
# words printed near a code on a tag (a neighbouring line partly in the crop)
NEIGHBOURS = ("SIZE 9", "MADE IN VIETNAM", "US 10 UK 9 EU 44", "01/06/21", "STYLE", "COLOR", "27.5 CM", "FABRIQUE")


def code(rng: random.Random, templates: tuple[str, ...]) -> str:
    """A code from ``templates`` (``l``: a letter, ``9``: a digit, anything else as written)."""
    pick = {"l": LETTERS, "9": DIGITS}
    return "".join(rng.choice(pick[c]) if c in pick else c for c in rng.choice(templates))


def jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def text_on_label(font: ImageFont.FreeTypeFont, label: str, bg: int, ink: int) -> tuple:
    """``label`` drawn in ``ink`` on a plain grey label with 1.2 text heights of room around it (no randomness):
    (PIL image, its draw handle, pad, text width, text height)."""
    x0, y0, x1, y1 = font.getbbox(label)
    w, h = x1 - x0, y1 - y0
    pad = int(1.2 * h)
    img = Image.new("L", (w + 2 * pad, h + 2 * pad), bg)
    d = ImageDraw.Draw(img)
    d.text((pad - x0, pad - y0), label, font=font, fill=ink)
    return img, d, pad, w, h


def draw(rng: random.Random, label: str, font_file: str, size: int, bg: int, ink: int, neighbour: bool) -> tuple:
    """``label`` in ``font_file`` on a plain grey label (optionally a smaller neighbouring line), cropped with a
    random margin: (PIL image, text height in px)."""
    img, d, pad, w, h = text_on_label(ImageFont.truetype(font_file, size), label, bg, ink)
    if neighbour:
        small = ImageFont.truetype(font_file, int(size * rng.uniform(0.5, 0.8)))
        y = pad - int(rng.uniform(0.9, 1.1) * h) if rng.random() < 0.5 else pad + int(rng.uniform(1.15, 1.3) * h)
        d.text((pad + rng.randint(-h, h), y), rng.choice(NEIGHBOURS), font=small, fill=ink)
    mx, my = int(rng.uniform(0.1, 0.5) * h), int(rng.uniform(0.05, 0.3) * h)
    return img.crop((pad - mx, pad - my, pad + w + mx, pad + h + my)), h


def _serif_plus(rng: random.Random, font_files: list[str]) -> tuple[bytes, str]:
    label = code(rng, PLUS_TEMPLATES)
    img, h = draw(rng, label, rng.choice(font_files), rng.randint(40, 64), rng.randint(180, 250), rng.randint(0, 70),
                  rng.random() < 0.4)
    img = img.rotate(rng.uniform(-4, 4), resample=Image.BICUBIC, expand=True, fillcolor=int(np.median(np.asarray(img))))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))
    th = rng.uniform(18, 40)
    img = img.resize((max(8, int(img.width * th / h)), max(8, int(img.height * th / h))), Image.BILINEAR)
    return jpeg(img, rng.randint(50, 90)), label


def pil_stream(make: Callable[[random.Random, list[str]], tuple[bytes, str]],
               font_files: Callable[[], list[str]]) -> Stream:
    """``make`` (one crop from an RNG and the font files) -> an ``(n, seed)`` stream."""
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


serif_plus: Stream = pil_stream(_serif_plus, serif_fonts)
