"""New kinds of print the loop must learn, for the per-domain learning benchmark (``benchmarks.domain_curve``).

Three domains of different nature, each a function ``(n, seed) -> (JPEG bytes, labels)``:
- ``dot_matrix``: ink-jet dot-matrix box labels, rendered by ``synth`` (the project's own renderer).
  The nightly recipe was chosen on this domain in earlier sessions: it is the TUNING domain.
- ``dark_lowres``: light print on dark labels photographed small (text 9-14 px high), noisy, heavily
  compressed; drawn with PIL by code written here (not ``synth``), held-out font families.
- ``serif_plus``: a serif type family the renderer never uses (URW Bookman, C059, P052) and codes with a
  character outside the shipped charset (``+``, e.g. ``KL2231+05``): the fine-tune must extend the charset
  (``synth.newprint``, where ``tagloop demo`` takes its new brand from).
No recipe knob is chosen on ``dark_lowres`` or ``serif_plus``; they only score.
"""
from __future__ import annotations

import random
from typing import Callable

import numpy as np
from PIL import Image

from benchmarks.othergen import fonts as heldout_fonts
from synth.newprint import PLUS, code, draw, jpeg, pil_stream, serif_plus

Domain = Callable[[int, int], tuple[list[bytes], list[str]]]
DARK_TEMPLATES = ("ll9999-999", "999999-99", "l99999", "ll9999 999", "9ll99999l-999", "lll 999999", "ll999l")


def _dark_lowres(rng: random.Random, font_files: list[str]) -> tuple[bytes, str]:
    label = code(rng, DARK_TEMPLATES)
    img, h = draw(rng, label, rng.choice(font_files), rng.randint(40, 64), rng.randint(10, 60), rng.randint(150, 235),
                  rng.random() < 0.3)
    img = img.rotate(rng.uniform(-3, 3), resample=Image.BICUBIC, expand=True, fillcolor=int(np.median(np.asarray(img))))
    th = rng.uniform(9, 14)                                      # text height in the photo: small
    img = img.resize((max(8, int(img.width * th / h)), max(8, int(img.height * th / h))), Image.BILINEAR)
    arr = np.asarray(img, np.float32) + np.random.default_rng(rng.randrange(2**31)).normal(0, rng.uniform(4, 12),
                                                                                           (img.height, img.width))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return jpeg(img, rng.randint(20, 50)), label


def dot_matrix(n: int, seed: int) -> tuple[list[bytes], list[str]]:
    from benchmarks.learning_curve import render_jpegs

    return render_jpegs(n, seed, workers=2)


DOMAINS: dict[str, Domain] = {
    "dot_matrix": dot_matrix,
    "dark_lowres": pil_stream(_dark_lowres, heldout_fonts),
    "serif_plus": serif_plus,                # synth.newprint: also the demo's new brand
}
EXTRA_CHARS = {"serif_plus": PLUS}         # characters a domain's labels need beyond the shipped charset
TUNED_ON = ("dot_matrix",)                 # domains the nightly recipe was chosen on
