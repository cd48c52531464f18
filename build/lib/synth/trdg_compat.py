"""The one place tagloop adapts TRDG 1.8 to current Pillow.

TRDG calls ``FreeTypeFont.getsize``, removed in Pillow 10, and re-opens the font
file on every call. ``text_layer`` installs the shim once and renders through
TRDG's own horizontal text generator with a per-process font cache.
"""
from __future__ import annotations

import functools
from typing import Any

from PIL import Image, ImageFont

_INSTALLED = False


def _getsize(self: ImageFont.FreeTypeFont, text: str, *args: Any, **kwargs: Any) -> tuple[int, int]:
    """Pillow<10 semantics: (right, bottom) of the text drawn at the origin."""
    left, top, right, bottom = self.getbbox(text, *args, **kwargs)
    return int(right), int(bottom)


@functools.lru_cache(maxsize=512)
def _truetype(font: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font=font, size=size)


class _CachedImageFont:
    """Stand-in for the ``ImageFont`` module inside TRDG: caches ``truetype``."""

    FreeTypeFont = ImageFont.FreeTypeFont

    @staticmethod
    def truetype(font: str, size: int, **_: Any) -> ImageFont.FreeTypeFont:
        return _truetype(font, int(size))


def install() -> None:
    """Patch Pillow and TRDG once per process (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    if not hasattr(ImageFont.FreeTypeFont, "getsize"):
        ImageFont.FreeTypeFont.getsize = _getsize  # type: ignore[attr-defined]
    from trdg import computer_text_generator

    computer_text_generator.ImageFont = _CachedImageFont  # type: ignore[assignment]
    _INSTALLED = True


def text_layer(text: str, font: str, size: int, color: str, spacing: int = 0,
               stroke: int = 0, space_width: float = 1.0) -> Image.Image | None:
    """Render ``text`` with TRDG as a tight RGBA layer; ``None`` when TRDG yields nothing."""
    install()
    from trdg import computer_text_generator

    # Without extra letter spacing TRDG draws whole words (natural kerning, 5-10x fewer
    # glyph draws); with spacing it must place characters one by one.
    word_split = spacing == 0
    try:
        img, _mask = computer_text_generator.generate(
            text, font, color, size, 0, space_width, spacing, True, word_split, stroke, color)
    except (OSError, ValueError, SystemError):
        return None
    if img is None or img.width < 2 or img.height < 2:
        return None
    return img
