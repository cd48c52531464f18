"""Renders from a second, independent generator: a check on renders nobody trained or tuned on.

    python -m benchmarks.othergen [--n 500] [--model champion] [--skip-tesseract]

``synth/`` (TRDG text, its own code grammar, procedural labels, ``recognizer.photo`` at
training time) is what the recognizer learnt from. This generator shares none of it: PIL
draws the text, codes follow a short template list written here, only the project's
held-out font families are used, and the camera is PIL's filters. Nothing trains on it and
no rule or threshold is chosen on it; it only scores. Writes ``benchmarks/results/othergen.json``.
"""
from __future__ import annotations

import argparse
import glob
import io
import random
import time

import numpy as np
from PIL import Image, ImageFilter, ImageFont

from benchmarks.common import save
from benchmarks.real import score
from synth.newprint import NEIGHBOURS, text_on_label   # a word list and PIL text on a plain label: none of synth.render

FONT_GLOBS = ("/usr/share/fonts/truetype/croscore/Arimo-*.ttf", "/usr/share/fonts/truetype/croscore/Cousine-*.ttf",
              "/usr/share/fonts/truetype/liberation*/LiberationSansNarrow-*.ttf",
              "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf", "/usr/share/fonts/opentype/ocr-b/*.otf")
# l: a letter, 9: a digit, x: either; everything else as written
TEMPLATES = ("ll9999-999", "ll9999 999", "999999-999", "999999-99", "l99999", "ll9999", "999999C", "l9999C",
             "VN0Axxxxx", "SN 999999 COLOR:lll", "999 l99999", "9ll99999l-999", "ll-lll9-999(9)", "l9lll99",
             "lll 999999", "99-l9999", "ll999l")


def code(rng: random.Random) -> str:
    pick = {"l": "ABCDEFGHJKLMNPRSTUVWXYZ", "9": "0123456789", "x": "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"}
    return "".join(rng.choice(pick[c]) if c in pick else c for c in rng.choice(TEMPLATES))


def fonts() -> list[str]:
    found = sorted(f for g in FONT_GLOBS for f in glob.glob(g) if "Italic" not in f and "Oblique" not in f)
    if not found:
        raise RuntimeError("no held-out fonts installed (scripts/setup.sh installs them)")
    return found


def crop(rng: random.Random, font_files: list[str]) -> tuple[np.ndarray, str]:
    """One photo-like crop (RGB uint8) and its label."""
    label = code(rng)
    size = rng.randint(40, 72)
    font = ImageFont.truetype(rng.choice(font_files), size)
    dark_on_light = rng.random() < 0.8
    bg = rng.randint(170, 250) if dark_on_light else rng.randint(5, 70)
    ink = rng.randint(0, 80) if dark_on_light else rng.randint(190, 255)
    img, d, pad, w, h = text_on_label(font, label, bg, ink)
    if rng.random() < 0.5:      # another line of the tag above or below
        small = ImageFont.truetype(rng.choice(font_files), int(size * rng.uniform(0.5, 0.9)))
        above = rng.random() < 0.5
        y = pad - int(rng.uniform(0.8, 1.1) * h) if above else pad + int(rng.uniform(1.1, 1.3) * h)
        d.text((pad + rng.randint(-h, h), y), rng.choice(NEIGHBOURS), font=small, fill=ink)
    mx, my = int(rng.uniform(0.0, 0.5) * h), int(rng.uniform(-0.03, 0.35) * h)
    img = img.crop((pad - mx, pad - my, pad + w + mx, pad + h + my))
    img = img.rotate(rng.uniform(-5, 5), resample=Image.BICUBIC, expand=True, fillcolor=bg)   # box around a tilt
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 2.5)))
    th = rng.uniform(16, 48)                      # text height in the photo
    img = img.resize((max(8, int(img.width * th / h)), max(8, int(img.height * th / h))), Image.BILINEAR)
    arr = np.asarray(img, np.float32) * rng.uniform(0.7, 1.1) + np.random.default_rng(rng.randrange(2**31)).normal(
        0, rng.uniform(1, 8), (img.height, img.width))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=rng.randint(25, 90))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")), label


def render(n: int, seed: int = 31_337) -> tuple[list[np.ndarray], list[str]]:
    rng, font_files = random.Random(seed), fonts()
    out = [crop(rng, font_files) for _ in range(n)]
    return [im for im, _ in out], [lab for _, lab in out]


def main() -> None:
    from benchmarks.real import engines

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="crops")
    ap.add_argument("--model", default="champion", help="model to read with (default: the shipped base model)")
    ap.add_argument("--skip-tesseract", action="store_true", help="leave Tesseract out")
    ap.add_argument("--name", default="othergen", help="results file name")
    args = ap.parse_args()
    images, labels = render(args.n)
    out: dict = {"n": args.n, "generator": "benchmarks.othergen (PIL, held-out fonts, own templates)"}
    for name, read in engines(args.model, args.skip_tesseract).items():
        t = time.perf_counter()
        preds = read(images)
        out[name] = {**score(preds, labels), "ms_per_crop": round((time.perf_counter() - t) * 1000 / args.n, 2)}
        print(f"{name:<10} exact match {out[name]['exact_match']:.3f}  CER {out[name]['cer']:.3f}", flush=True)
    print(f"saved {save(args.name, out)}")


if __name__ == "__main__":
    main()
