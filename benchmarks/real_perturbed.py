"""Real photos under what other phones and shoppers do to them: tagloop vs RapidOCR on perturbed real-dev.

    python -m benchmarks.real_perturbed [--dir ../shared/real-dev] [--model champion] [--name real_perturbed]

Why: real-dev is 55 photos of two photographers; the hidden set is other photographers, other phones,
other ways of holding and cropping. This benchmark keeps the real content (real print, real lighting,
real lenses) and applies, one at a time, the changes another shopper's photo would show: the crop
held upside down or sideways, tilted, cut tight to the text (edge to edge), taken further away (low
resolution), out of focus, re-compressed by a messaging app, under poor light. Each change is
deterministic (seeded per photo), so runs compare. Nothing here trains or chooses a value on it: it is a
check, like real-dev itself.

Prints exact match per change and engine (tagloop as served, tagloop's CRNN alone, RapidOCR 3.10
recognition only, which has no orientation handling beyond turning tall crops: its turned columns say
what a plain line reader does, not a fault in it) and writes ``benchmarks/results/NAME.json`` with
every wrong reading. The photos never enter the repository; only scores and readings are saved.
The changes are this module's own, fixed per photo, and not ``recognizer.photo``'s training effects: a check
built from what training saw would measure the training distribution, not another phone.
"""
from __future__ import annotations

import os
import zlib

import cv2
import numpy as np

from benchmarks.common import save
from benchmarks.real import engines, load, run_engine, set_parser
from recognizer.evaluate_files import read_labels
from recognizer.metrics import exact_match


def _rng(name: str, kind: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{name}:{kind}".encode()))


def _edge_fill(rgb: np.ndarray) -> tuple[int, int, int]:
    """The median colour of the crop's border (what a rotation or a pad fills with)."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    return tuple(int(v) for v in np.median(border, axis=0))


def turn(rgb: np.ndarray, deg: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(rgb, -deg // 90))


def tilt(rgb: np.ndarray, deg: float) -> np.ndarray:
    """Rotate by ``deg`` (counter-clockwise), the canvas grown to hold the whole crop, filled with its edge."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c + 0.5), int(h * c + w * s + 0.5)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(rgb, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=_edge_fill(rgb))


def tight(rgb: np.ndarray) -> np.ndarray:
    """Cut to the ink's bounding box (Otsu; ink is the minority side), so text touches every edge.
    Left as it is when the box would be implausible (under a third of either side)."""
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    _, b = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = b == 0 if (b == 0).mean() < 0.5 else b == 255
    rows = np.where(ink.mean(1) > 0.02)[0]
    cols = np.where(ink.mean(0) > 0.02)[0]
    if len(rows) < 2 or len(cols) < 2:
        return rgb
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if (y1 - y0) < rgb.shape[0] / 3 or (x1 - x0) < rgb.shape[1] / 3:
        return rgb
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


def far(rgb: np.ndarray, height: int = 14) -> np.ndarray:
    """Taken from further away: the crop scaled down to ``height`` px high and back up (as an app would)."""
    h, w = rgb.shape[:2]
    if h <= height:
        return rgb
    small = cv2.resize(rgb, (max(2, round(w * height / h)), height), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def defocus(rgb: np.ndarray, share: float = 0.06) -> np.ndarray:
    """Out of focus: a Gaussian blur of ``share`` x the crop height."""
    return cv2.GaussianBlur(rgb, (0, 0), max(0.8, share * rgb.shape[0]))


def jpeg_twice(rgb: np.ndarray, quality: int = 25) -> np.ndarray:
    """A messaging app's re-compression, twice, the second at a slightly different size."""
    out = rgb
    for q, scale in ((quality, 0.8), (quality + 10, 1.0)):
        h, w = rgb.shape[:2]
        out = cv2.resize(out, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return cv2.resize(out, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)


def low_light(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poor light: contrast cut to 40 % around a darker level, with sensor noise."""
    x = rgb.astype(np.float32) * 0.4 + 20
    x += rng.normal(0, 6, x.shape[:2])[..., None]
    return np.clip(x, 0, 255).astype(np.uint8)


# name -> change(rgb, photo name); the order of the printed table
CHANGES = {
    "as stored": lambda im, n: im,
    "turned 180": lambda im, n: turn(im, 180),
    "turned 90": lambda im, n: turn(im, 90),
    "turned 270": lambda im, n: turn(im, 270),
    "tilted 4-7 deg": lambda im, n: tilt(im, float(_rng(n, "tilt").choice([-1, 1]) * _rng(n, "deg").uniform(4, 7))),
    "cut tight to the ink": lambda im, n: tight(im),
    "far away (14 px high)": lambda im, n: far(im),
    "defocus": lambda im, n: defocus(im),
    "JPEG q25 twice": lambda im, n: jpeg_twice(im),
    "low light + noise": lambda im, n: low_light(im, _rng(n, "light")),
}


def main() -> None:
    ap = set_parser(__doc__, "real_perturbed")
    ap.add_argument("--only", nargs="*", default=None, help="changes to run (default: all)")
    args = ap.parse_args()
    rows, _ = read_labels(os.path.join(args.dir, "labels.csv"))
    labels = [r["label"] for r in rows]
    names = [r["filename"] for r in rows]
    originals = [load(os.path.join(args.dir, "images", n), False) for n in names]
    readers = engines(args.model, skip_tesseract=True)
    out: dict = {"set": os.path.basename(os.path.normpath(args.dir)), "n": len(rows), "model": args.model,
                 "changes": {}}
    for change, fn in CHANGES.items():
        if args.only and change not in args.only:
            continue
        images = [fn(im, n) for im, n in zip(originals, names)]
        res = {k: run_engine(k, read, images, labels) for k, read in readers.items()}
        res["wrong"] = [{"filename": n, "label": lab, **{k: res[k]["predictions"][i] for k in readers}}
                        for i, (n, lab) in enumerate(zip(names, labels))
                        if not exact_match(res["tagloop"]["predictions"][i], lab)]
        out["changes"][change] = res
        print(change, {k: res[k]["exact_match"] for k in readers}, flush=True)
    print(f"saved {save(args.name, out)}")
    print(table(out))


def table(r: dict) -> str:
    changes = r["changes"]
    engines_ = [k for k in next(iter(changes.values())) if k != "wrong"]
    lines = ["| change (55 real-dev photos each) | " + " | ".join(engines_) + " |", "|---|" + "---|" * len(engines_)]
    for change, res in changes.items():
        lines.append(f"| {change} | " + " | ".join(f"{res[k]['exact_match']:.3f}" for k in engines_) + " |")
    means = {k: sum(res[k]["exact_match"] for res in changes.values()) / len(changes) for k in engines_}
    lines.append("| mean over the changes | " + " | ".join(f"**{means[k]:.3f}**" for k in engines_) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
