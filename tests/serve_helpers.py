"""Crops for the serving tests, drawn with PIL alone (the serving tests also run where synth is blocked)."""
from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"      # fonts-dejavu-core (scripts/setup.sh)


def crop_bytes(text: str = "DD1391-100", fmt: str = "PNG", turn: int = 0, size: tuple[int, int] = (230, 40)) -> bytes:
    """A clean dark-on-light crop of ``text`` (turned ``turn`` degrees counter-clockwise), encoded as ``fmt``."""
    im = Image.new("L", size, 235)
    ImageDraw.Draw(im).text((8, 6), text, fill=20, font=ImageFont.truetype(FONT, 24))
    if turn:
        im = im.rotate(turn, expand=True)
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def blank_bytes(size: tuple[int, int] = (200, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 128).save(buf, "PNG")
    return buf.getvalue()


def huge_header_bytes() -> bytes:
    """A 48-Mpixel PNG of a few kB: over ``crops.image.MAX_PIXELS``, refused from its header."""
    buf = io.BytesIO()
    Image.new("1", (8000, 6000)).save(buf, "PNG")
    return buf.getvalue()
