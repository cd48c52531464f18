"""Neighbouring content a user's crop catches: other lines, barcodes, edge slivers, label edges."""
from __future__ import annotations

import random
from typing import Callable

import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h of the main text in scene pixels
LayerFn = Callable[[str, str, int], "np.ndarray | None"]

_SIZES = ["US {a}", "UK {b}", "EUR {c}", "US {a} UK {b} EUR {c}", "CM {d}", "JP {e}", "MADE IN {m}",
          "{mm}/{yy}", "{mm}/{yy} {batch}", "SIZE {a}", "ART. {batch}", "COLOR {col}", "STYLE",
          "{batch}", "UPC {upc}", "PO# {batch}", "{col}/{col2}"]
_COUNTRIES = ["VIETNAM", "CHINA", "INDONESIA", "INDIA", "CAMBODIA", "ITALY", "USA", "THAILAND"]
_COLOURS = ["BLACK", "WHITE", "RED", "NAVY", "GREY", "BLK", "WHT", "GUM", "SAIL", "VOLT"]


def neighbour_text(rng: random.Random) -> str:
    tpl = rng.choice(_SIZES)
    return tpl.format(
        a=rng.choice(["7", "8", "8.5", "9", "9.5", "10", "11", "12"]),
        b=rng.choice(["6", "7", "7.5", "8", "9", "10"]),
        c=rng.choice(["40", "41", "42", "42.5", "43", "44", "45"]),
        d=rng.choice(["25", "26", "27", "27.5", "28", "29"]),
        e=rng.choice(["250", "265", "270", "280"]),
        m=rng.choice(_COUNTRIES), mm=f"{rng.randint(1, 12):02d}", yy=f"{rng.randint(15, 26)}",
        batch="".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(rng.randint(4, 9))),
        upc="".join(rng.choice("0123456789") for _ in range(12)),
        col=rng.choice(_COLOURS), col2=rng.choice(_COLOURS))


def barcode(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Alpha mask of EAN-like bars."""
    bars = np.zeros(w, np.float32)
    x = 0
    while x < w:
        bw = int(rng.integers(1, 4))
        bars[x:x + bw] = 1.0
        x += bw + int(rng.integers(1, 4))
    return np.repeat(bars[None, :], h, axis=0)


def add_lines(mask: np.ndarray, rng: np.random.Generator, pyrng: random.Random, font: str,
              size: int, box: Box, layer: LayerFn) -> bool:
    """Put a line of text or a barcode above and/or below the code, partly in frame."""
    from synth.render import _paste

    tx, ty, tw, th = box
    added = False
    for side in (-1, 1):
        if rng.random() < 0.45:
            continue
        gap = int(th * rng.uniform(0.08, 0.6))
        if rng.random() < 0.2:
            bh = int(th * rng.uniform(0.8, 2.0))
            alpha = barcode(rng, bh, int(tw * rng.uniform(0.5, 1.1)))
        else:
            nsize = max(8, int(size * rng.uniform(0.55, 1.1)))
            alpha = layer(neighbour_text(pyrng), font, nsize)
            if alpha is None:
                continue
        ah, aw = alpha.shape
        x = tx + int(rng.uniform(-0.3, 0.6) * tw)
        y = ty - gap - ah if side < 0 else ty + th + gap
        _paste(mask, alpha, x, y)
        added = True
    return added


def add_side(mask: np.ndarray, rng: np.random.Generator, pyrng: random.Random, font: str,
             size: int, box: Box, layer: LayerFn) -> None:
    """A word just beyond the left or right end of the code, so a sliver may show at the edge."""
    from synth.render import _paste

    tx, ty, tw, th = box
    alpha = layer(pyrng.choice(["STYLE:", "ART", "SIZE", "REF", "NO.", "CODE", "9.5", "US"]), font, size)
    if alpha is None:
        return
    gap = int(th * rng.uniform(0.9, 1.6))  # beyond the crop margin most of the time
    x = tx - gap - alpha.shape[1] if rng.random() < 0.5 else tx + tw + gap
    _paste(mask, alpha, x, ty)


def label_edge(img: np.ndarray, rng: np.random.Generator, box: Box) -> np.ndarray:
    """Replace the scene beyond one straight edge near the text with another surface."""
    tx, ty, tw, th = box
    h, w = img.shape[:2]
    other = np.full(3, rng.uniform(0, 255)) + rng.uniform(-30, 30, 3)
    side = int(rng.integers(4))
    off = int(th * rng.uniform(0.15, 0.7))
    out = img.copy()
    if side == 0:
        out[:max(0, ty - off)] = other
    elif side == 1:
        out[min(h, ty + th + off):] = other
    elif side == 2:
        out[:, :max(0, tx - off)] = other
    else:
        out[:, min(w, tx + tw + off):] = other
    return out
