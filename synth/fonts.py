"""Font discovery: TRDG's bundled Latin fonts plus Debian fonts when installed.

Fonts are split into a training pool and a held-out pool (used only by the
benchmark test set) so that accuracy is measured on typefaces never trained on.
"""
from __future__ import annotations

import glob
import os
from functools import lru_cache

# Decorative / script faces that never appear on shoe tags.
_EXCLUDE = ("Amatic", "Pacifico", "FFF_Tusj", "Capture_it", "SEASRN", "Hairline", "Thin",
            "Walkway", "BEBAS", "Raleway", "CaviarDreams", "Caviar_Dreams", "Z003",
            "StandardSymbols", "D050000L", "MathTeX", "Bookman", "C059", "P052",
            "NimbusRoman", "Tinos", "ExtraLight")

_DEBIAN_GLOBS = (
    "/usr/share/fonts/opentype/urw-base35/*.otf",
    "/usr/share/fonts/truetype/liberation2/*.ttf",
    "/usr/share/fonts/truetype/liberation/*.ttf",
    "/usr/share/fonts/opentype/ocr-b/*.otf",
    "/usr/share/fonts/truetype/croscore/*.ttf",
    "/usr/share/fonts/truetype/dejavu/*.ttf",
)

# Whole families kept out of training; the benchmark renders its test set with them.
HELD_OUT = ("Arimo", "LiberationSansNarrow", "Cousine", "Lato-Bold", "Lato-Regular",
            "Lato-Medium", "OCRBE", "DejaVuSansCondensed-Bold")


def _trdg_fonts() -> list[str]:
    try:
        import trdg
    except ImportError:
        return []
    return glob.glob(os.path.join(os.path.dirname(trdg.__file__), "fonts", "latin", "*.ttf"))


@lru_cache(maxsize=1)
def all_fonts() -> tuple[str, ...]:
    files = _trdg_fonts()
    for pattern in _DEBIAN_GLOBS:
        files.extend(glob.glob(pattern))
    keep = [f for f in files if not any(x in os.path.basename(f) for x in _EXCLUDE)]
    # ordered by file name, not path: the same seed picks the same font wherever the venv lives
    # (a checkout under /check sorts TRDG's fonts before /usr/share, one under /work after them)
    return tuple(sorted(set(keep), key=lambda f: (os.path.basename(f), f)))


def is_held_out(path: str) -> bool:
    name = os.path.basename(path)
    return any(name.startswith(h) for h in HELD_OUT)


def font_pool(split: str = "train") -> tuple[str, ...]:
    """Fonts for ``split`` in {"train", "heldout", "all"}; raises when none is installed."""
    fonts = all_fonts()
    if split == "train":
        fonts = tuple(f for f in fonts if not is_held_out(f))
    elif split == "heldout":
        fonts = tuple(f for f in fonts if is_held_out(f))
    elif split != "all":
        raise ValueError(f"unknown font split {split!r}")
    if not fonts:
        raise RuntimeError(f"no fonts found for split {split!r}: install trdg or Debian fonts")
    return fonts
