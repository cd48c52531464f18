"""Realistic product-code crops: TRDG text on procedural labels, then a phone camera.

``Renderer.render(rng)`` returns one ``Crop`` (RGB uint8 array + label + slice
metadata). Everything random comes from the generator passed in, so a seed
reproduces a crop exactly.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import cv2
import numpy as np

from crops.features import BLANK_CONTRAST
from synth import clutter
from synth.fonts import font_pool
from synth.grammar import CodeSampler
from synth.textures import TextureBank, highlight, lighting
from synth.trdg_compat import text_layer


@dataclass
class RenderConfig:
    """Probabilities and ranges of every condition; defaults follow DESIGN.md's 'in the wild'."""

    fonts: str = "train"            # font split: train | heldout | all
    text_px: tuple[int, int] = (15, 60)  # final text height in the crop
    p_inverted: float = 0.14        # light text on dark label
    p_colored: float = 0.10         # saturated label colour
    p_low_contrast: float = 0.12
    p_faded: float = 0.10
    p_texture: float = 0.55
    p_clutter: float = 0.45         # neighbouring text partly in frame
    p_side_clutter: float = 0.15    # a sliver of text at the left/right edge
    p_label_edge: float = 0.2       # label boundary visible in the crop
    p_tilt: float = 0.35            # tilt beyond a few degrees
    max_tilt: float = 30.0
    p_perspective: float = 0.35
    p_curve: float = 0.15           # label bent over a curved tongue or heel
    p_blur: float = 0.35
    p_motion: float = 0.1
    p_low_res: float = 0.12
    p_jpeg: float = 0.6
    p_shadow: float = 0.35
    p_glare: float = 0.12
    p_rot90: float = 0.0            # 90/270 rotation of the whole crop (eval sets)
    p_rot180: float = 0.0
    brand_mix: dict[str, float] | None = None
    p_dot_matrix: float = 0.0       # ink-jet dot-matrix print (box codes); 0 draws no random number


@dataclass
class Crop:
    image: np.ndarray               # H x W x 3 uint8 RGB
    label: str
    brand: str
    font: str
    tags: list[str] = field(default_factory=list)
    angle: float = 0.0
    rotation: int = 0               # 0/90/180/270 applied after cropping

    @property
    def condition(self) -> str:
        for t in ("dot_matrix", "rotated", "inverted", "low_contrast", "colored", "low_res", "blurred",
                  "textured", "tilted", "clutter"):
            if t in self.tags:
                return t
        return "clean"


_COLORED = [(200, 30, 40), (30, 60, 160), (20, 120, 60), (240, 140, 20), (240, 210, 40),
            (230, 120, 160), (120, 120, 130), (90, 50, 30), (0, 140, 160)]


def _palette(rng: np.random.Generator, cfg: RenderConfig, tags: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Label (background) and ink colours, RGB float."""
    r = rng.random()
    if r < cfg.p_inverted:
        tags.append("inverted")
        bg = np.full(3, rng.uniform(0, 70)) + rng.uniform(-8, 8, 3)
        ink = np.full(3, rng.uniform(180, 255)) + rng.uniform(-10, 10, 3)
    elif r < cfg.p_inverted + cfg.p_colored:
        tags.append("colored")
        bg = np.array(_COLORED[int(rng.integers(len(_COLORED)))], float) + rng.uniform(-25, 25, 3)
        lum = bg @ [0.3, 0.59, 0.11]
        ink = np.full(3, rng.uniform(0, 40) if lum > 140 else rng.uniform(215, 255))
    elif r < cfg.p_inverted + cfg.p_colored + cfg.p_low_contrast:
        tags.append("low_contrast")
        base = rng.uniform(70, 220)
        delta = rng.uniform(35, 70) * rng.choice([-1, 1])
        bg = np.full(3, base) + rng.uniform(-10, 10, 3)
        ink = np.clip(np.full(3, base + delta), 0, 255)
    else:
        bg = np.full(3, rng.uniform(185, 255)) - rng.uniform(0, 25, 3) * (rng.random() < 0.4)
        ink = np.full(3, rng.uniform(0, 70)) + rng.uniform(-10, 10, 3)
        if rng.random() < cfg.p_faded / max(1e-6, 1 - cfg.p_inverted - cfg.p_colored - cfg.p_low_contrast):
            tags.append("low_contrast")
            ink = ink + rng.uniform(60, 110)
    return np.clip(bg, 0, 255), np.clip(ink, 0, 255)


MIN_VISIBLE = 2 * BLANK_CONTRAST   # grey-level std; with room for a JPEG upload to smooth it


def visible(image: np.ndarray) -> bool:
    """Whether a rendered crop shows text at all (a faint palette on thin dots can leave none)."""
    return float(np.asarray(image, np.float32).mean(axis=2).std()) >= MIN_VISIBLE


def _alpha(layer_rgba) -> np.ndarray:
    return np.asarray(layer_rgba, dtype=np.uint8)[:, :, 3].astype(np.float32) / 255.0


def _paste(mask: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Max-composite ``alpha`` into ``mask`` at (x, y), clipped to the mask."""
    h, w = alpha.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, mask.shape[1]), min(y + h, mask.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    sub = alpha[y0 - y:y1 - y, x0 - x:x1 - x]
    np.maximum(mask[y0:y1, x0:x1], sub, out=mask[y0:y1, x0:x1])


class Renderer:
    """Renders crops; holds per-process font list and texture bank."""

    def __init__(self, cfg: RenderConfig | None = None, seed: int = 0) -> None:
        self.cfg = cfg or RenderConfig()
        self.fonts = font_pool(self.cfg.fonts)
        self.sampler = CodeSampler(self.cfg.brand_mix) if self.cfg.brand_mix else CodeSampler()
        self.textures = TextureBank(seed)

    def render(self, rng: np.random.Generator, label: str | None = None,
               brand: str | None = None) -> Crop:
        """One crop; draws again (another font, palette, effects) when TRDG yields nothing or the
        effects left no visible text (grey-level spread under ``MIN_VISIBLE``: ingest would call it blank)."""
        pyrng = random.Random(int(rng.integers(2**63)))
        if label is None:
            label, brand = self.sampler.sample(pyrng)
        for _ in range(8):
            font = self.fonts[int(rng.integers(len(self.fonts)))]
            crop = self._render_once(rng, pyrng, label, brand or "custom", font)
            if crop is not None and visible(crop.image):
                return crop
        raise RuntimeError(f"could not render {label!r} with any font")

    # -- stages ---------------------------------------------------------------------
    def _render_once(self, rng: np.random.Generator, pyrng: random.Random, label: str,
                     brand: str, font: str) -> Crop | None:
        cfg, tags = self.cfg, []
        size = int(rng.integers(26, 46))
        spacing = int(rng.choice([0, 0, 0, 1, 2, 3, 5]))
        stroke = 1 if rng.random() < 0.08 else 0
        space = float(rng.uniform(1.0, 2.2))  # tags often leave a wide gap between code parts
        layer = text_layer(label, font, size, "#FFFFFF", spacing, stroke, space)
        if layer is None:
            return None
        text = _alpha(layer)
        th, tw = text.shape
        bg, ink = _palette(rng, cfg, tags)

        angle = float(rng.uniform(-3, 3))
        if rng.random() < cfg.p_tilt:
            angle = float(rng.uniform(4, cfg.max_tilt) * rng.choice([-1, 1]))
            tags.append("tilted")
        rad = np.deg2rad(abs(angle))
        # scene big enough for the rotated text box plus margins and neighbours
        ext_w = tw * np.cos(rad) + th * np.sin(rad)
        ext_h = tw * np.sin(rad) + th * np.cos(rad)
        pad = int(1.6 * th) + 4
        sw, sh = int(max(ext_w, tw) + 2 * pad), int(max(ext_h, th) + 2 * pad)
        cx, cy = sw // 2, sh // 2
        tx, ty = cx - tw // 2, cy - th // 2

        mask = np.zeros((sh, sw), np.float32)
        _paste(mask, text, tx, ty)
        if rng.random() < cfg.p_clutter:
            if clutter.add_lines(mask, rng, pyrng, font, size, (tx, ty, tw, th), self._layer):
                tags.append("clutter")
        if rng.random() < cfg.p_side_clutter:
            clutter.add_side(mask, rng, pyrng, font, size, (tx, ty, tw, th), self._layer)

        img, tex = self._surface(rng, sh, sw, bg, tags)
        mask = _print_defects(mask, rng)
        if cfg.p_dot_matrix and rng.random() < cfg.p_dot_matrix:
            mask = _dot_matrix(mask, rng, size)
            tags.append("dot_matrix")
        opacity = rng.uniform(0.75, 1.0) if "low_contrast" in tags else 1.0
        a = (mask * opacity)[:, :, None]
        img = img * (1 - a) + ink[None, None, :] * a
        if tex is not None and rng.random() < 0.6:  # printed/woven ink follows the material
            img = img * (0.5 + 0.5 * tex[:, :, None]) / (0.5 + 0.5 * float(tex.mean()))
        if rng.random() < cfg.p_label_edge:
            img = clutter.label_edge(img, rng, (tx, ty, tw, th))

        # rotate the scene, then crop the axis-aligned box of the rotated text + margins
        M = cv2.getRotationMatrix2D((float(cx), float(cy)), angle, 1.0)
        img = cv2.warpAffine(img, M, (sw, sh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        mt = th * rng.uniform(0.12, 0.8, 2)
        ml = th * rng.uniform(0.08, 1.0, 2)
        x0 = int(max(0, cx - ext_w / 2 - ml[0])); x1 = int(min(sw, cx + ext_w / 2 + ml[1]))
        y0 = int(max(0, cy - ext_h / 2 - mt[0])); y1 = int(min(sh, cy + ext_h / 2 + mt[1]))
        img = img[y0:y1, x0:x1]
        if rng.random() < cfg.p_perspective:
            img = _perspective(img, rng)
        if rng.random() < cfg.p_curve:
            img = _curve(img, rng, th)
        img = self._camera(img, rng, th, tags)
        crop = Crop(img, label, brand, font.rsplit("/", 1)[-1], tags, round(angle, 1))
        return _orient(crop, rng, cfg)

    def _layer(self, text: str, font: str, size: int) -> np.ndarray | None:
        layer = text_layer(text, font, size, "#FFFFFF")
        return None if layer is None else _alpha(layer)

    def _surface(self, rng: np.random.Generator, h: int, w: int, bg: np.ndarray,
                 tags: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        img = np.empty((h, w, 3), np.float32)
        img[:] = bg
        tex = None
        if rng.random() < self.cfg.p_texture:
            kind = str(rng.choice(["paper", "fabric", "cardboard", "knit"], p=[0.35, 0.3, 0.15, 0.2]))
            if kind != "paper":
                tags.append("textured")
            tex = self.textures.sample(rng, kind, h, w)
            img *= tex[:, :, None]
        return img, tex

    def _camera(self, img: np.ndarray, rng: np.random.Generator, th: int, tags: list[str]) -> np.ndarray:
        h, w = img.shape[:2]
        if rng.random() < self.cfg.p_shadow:
            img = img * lighting(rng, h, w)[:, :, None]
        if rng.random() < self.cfg.p_glare:
            img = img + 255 * highlight(rng, h, w)[:, :, None]
        img = np.clip(img, 0, 255).astype(np.uint8)
        target = rng.uniform(*self.cfg.text_px)
        scale = target / th
        if rng.random() < self.cfg.p_low_res:
            tags.append("low_res")
            small = rng.uniform(7, 12) / th
            sm = cv2.resize(img, (max(4, int(w * small)), max(4, int(h * small))), interpolation=cv2.INTER_AREA)
            img = cv2.resize(sm, (max(4, int(w * scale)), max(4, int(h * scale))), interpolation=cv2.INTER_LINEAR)
        else:
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            img = cv2.resize(img, (max(4, int(w * scale)), max(4, int(h * scale))), interpolation=interp)
        if rng.random() < self.cfg.p_blur:
            tags.append("blurred")
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 0.9) * max(1.0, target / 20))
        if rng.random() < self.cfg.p_motion:
            tags.append("blurred")
            k = int(rng.integers(3, 8))
            kern = np.zeros((k, k), np.float32)
            kern[k // 2, :] = 1.0 / k
            kern = cv2.warpAffine(kern, cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1), (k, k))
            img = cv2.filter2D(img, -1, kern / max(kern.sum(), 1e-6))
        noise = rng.uniform(0, 9)
        if noise > 2:
            grain = rng.standard_normal(img.shape, dtype=np.float32) * noise
            img = np.clip(img + grain, 0, 255).astype(np.uint8)
        if rng.random() < self.cfg.p_jpeg:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 90))])
            img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        return img


def _print_defects(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ink bleed, thin or bold strokes, and worn print (speckled dropout)."""
    r = rng.random()
    if r < 0.12:
        mask = cv2.GaussianBlur(mask, (3, 3), 0.6)
    elif r < 0.2:
        mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))
    elif r < 0.28:
        mask = cv2.erode(mask, np.ones((2, 2), np.uint8))
    if rng.random() < 0.12:
        keep = cv2.GaussianBlur(rng.random(mask.shape).astype(np.float32), (0, 0), 1.2)
        mask = mask * np.clip((keep - 0.35) * 6, 0.15, 1.0)
    return mask


def _dot_matrix(mask: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Ink-jet dot-matrix print: the glyphs sampled on a grid of round dots (about 7 per cap height)."""
    period = max(2.5, size / rng.uniform(8.5, 11.0))
    radius = period * rng.uniform(0.32, 0.45)
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = (yy % period) - period / 2, (xx % period) - period / 2
    dots = np.clip(radius + 0.5 - np.sqrt(dx * dx + dy * dy), 0, 1)    # anti-aliased discs
    cell = cv2.dilate(mask, np.ones((int(period) | 1, int(period) | 1), np.uint8))
    centres = cv2.resize(cv2.resize(mask, (max(1, int(w / period)), max(1, int(h / period))),
                                    interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_NEAREST)
    return (dots * np.minimum(cell, (centres > 0.3).astype(np.float32))).astype(np.float32)


def _perspective(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    d = rng.uniform(-0.07, 0.07, (4, 2)) * [w, h]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = (src + d).astype(np.float32)
    M = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(img, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _curve(img: np.ndarray, rng: np.random.Generator, th: int) -> np.ndarray:
    """Bend rows along a gentle arc (text on a curved surface)."""
    h, w = img.shape[:2]
    amp = rng.uniform(0.05, 0.25) * th
    freq, phase = rng.uniform(0.3, 0.9), rng.uniform(0, 2 * np.pi)
    xs = np.arange(w, dtype=np.float32)
    shift = (amp * np.sin(2 * np.pi * freq * xs / max(w, 1) + phase)).astype(np.float32)
    map_x = np.broadcast_to(xs[None, :], (h, w)).copy()
    map_y = np.arange(h, dtype=np.float32)[:, None] + shift[None, :]
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _orient(crop: Crop, rng: np.random.Generator, cfg: RenderConfig) -> Crop:
    r = rng.random()
    if r < cfg.p_rot90:
        k = int(rng.choice([1, 3]))
    elif r < cfg.p_rot90 + cfg.p_rot180:
        k = 2
    else:
        return crop
    crop.image = np.ascontiguousarray(np.rot90(crop.image, k))
    crop.rotation = 90 * k
    crop.tags.append("rotated")
    return crop
