"""Real phone photos of tags: tagloop vs RapidOCR (PP-OCRv6) vs Tesseract on the same crops.

    python -m benchmarks.real [--dir ../shared/real-dev] [--model champion] [--skip-tesseract]

Reads every crop of a directory of real photos (``images/`` + ``labels.csv`` with at least
``filename,label``) twice: pixels as stored, and with the EXIF orientation tag applied (phones
write tags that do not always match the pixels). Prints exact match, character error rate,
per-crop time and a table of failures by kind, and writes ``benchmarks/results/real.json``.
The photos themselves never enter the repository; only scores and readings are saved.
"""
from __future__ import annotations

import argparse
import os
import time
from collections import Counter

from benchmarks.common import save
from benchmarks.peers import RapidOCRPeer, TesseractPeer
from recognizer.evaluate_files import read_labels
from recognizer.metrics import edit_distance, exact_match, normalize
from recognizer.preprocess import decode_image

DEFAULT_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "real-dev")

# glyph pairs that real tag fonts make look alike (either direction)
CONFUSABLE = {frozenset(p) for p in ("0O", "0D", "1I", "1L", "1T", "2Z", "3B", "38", "5S", "6G", "8B", "B3",
                                     "13", "17", "4A", "VY", "UV", "MN", "KX", "CG", "QO", "0Q", "EF", "HN")}


def failure_kind(pred: str, label: str) -> str:
    """One kind per wrong reading, the first that applies (see the README's failure table)."""
    p, lab = normalize(pred), normalize(label)
    if not p:
        return "empty"
    if p.replace(" ", "") == lab.replace(" ", ""):
        return "space"
    if len(p) <= 0.7 * len(lab):
        return "partial reading"
    if edit_distance(p, lab) / max(len(p), len(lab)) > 0.5:
        return "garbled"
    if len(p) == len(lab):
        diffs = [frozenset((a, b)) for a, b in zip(p, lab) if a != b]
        if all(d in CONFUSABLE for d in diffs):
            return "confusable glyph"
        return "substitution"
    return "extra glyph" if len(p) > len(lab) else "missing glyph"


def score(preds: list[str], labels: list[str]) -> dict:
    ok = [exact_match(p, lab) for p, lab in zip(preds, labels)]
    chars = sum(len(normalize(lab)) for lab in labels)
    errors = sum(edit_distance(normalize(p), normalize(lab)) for p, lab in zip(preds, labels))
    kinds = Counter(failure_kind(p, lab) for p, lab, k in zip(preds, labels, ok) if not k)
    return {"n": len(labels), "exact_match": round(sum(ok) / max(1, len(ok)), 4),
            "cer": round(errors / max(1, chars), 4), "failures": dict(kinds.most_common())}


def load(path: str, exif: bool) -> tuple:
    with open(path, "rb") as f:
        return decode_image(f.read(), apply_exif=exif)


def run_engine(name: str, read, images: list, labels: list[str]) -> dict:
    """One engine over every crop: scores, time per crop (decode excluded) and the readings."""
    t = time.perf_counter()
    preds = read(images)
    ms = (time.perf_counter() - t) * 1000 / max(1, len(images))
    return {**score(preds, labels), "ms_per_crop": round(ms, 2), "predictions": preds}


def engines(model: str, skip_tesseract: bool) -> dict:
    from flows.settings import Settings
    from loop.modelref import resolve_model
    from recognizer.predict import Predictor

    model_dir = resolve_model(model, Settings.from_env().home)
    served = Predictor(model_dir)                     # as served: the CRNN, then the photo reader on unsure crops
    crnn = Predictor(model_dir, photo=None)           # TAGLOOP_PHOTO_READER=off
    out = {"tagloop": lambda ims: [p.text for p in served.predict_arrays(ims)],
           "tagloop-crnn": lambda ims: [p.text for p in crnn.predict_arrays(ims)]}
    rapid = RapidOCRPeer(threads=1)
    out["rapidocr"] = lambda ims: [rapid.read(im) for im in ims]
    if not skip_tesseract:
        tess = TesseractPeer()
        out["tesseract"] = lambda ims: [tess.read(im) for im in ims]
    return out


def set_parser(doc: str, name: str) -> argparse.ArgumentParser:
    """The options every real-photo benchmark takes: the photos' folder, the model, the results file name."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=os.environ.get("TAGLOOP_REAL_DEV", DEFAULT_DIR),
                    help="folder with images/ and labels.csv (default ../shared/real-dev or $TAGLOOP_REAL_DEV)")
    ap.add_argument("--model", default="champion", help="model to read with (default: the shipped base model)")
    ap.add_argument("--name", default=name, help=f"results file name (benchmarks/results/NAME.json, default {name})")
    return ap


def main() -> None:
    ap = set_parser(__doc__, "real")
    ap.add_argument("--skip-tesseract", action="store_true", help="leave Tesseract out")
    args = ap.parse_args()
    rows, _ = read_labels(os.path.join(args.dir, "labels.csv"))
    labels = [r["label"] for r in rows]
    paths = [os.path.join(args.dir, "images", r["filename"]) for r in rows]
    out: dict = {"set": os.path.basename(os.path.normpath(args.dir)), "n": len(rows), "model": args.model}
    readers = engines(args.model, args.skip_tesseract)
    for view, exif in (("as_stored", False), ("exif_applied", True)):
        images = [load(p, exif) for p in paths]
        out[view] = {name: run_engine(name, read, images, labels) for name, read in readers.items()}
    ours = out["as_stored"]["tagloop"]["exact_match"]
    out["ratio_vs"] = {k: round(ours / v["exact_match"], 3) if v["exact_match"] else None
                       for k, v in out["as_stored"].items() if k != "tagloop"}
    out["wrong"] = [{"filename": r["filename"], "label": lab, **{k: v["predictions"][i]
                     for k, v in out["as_stored"].items()}}
                    for i, (r, lab) in enumerate(zip(rows, labels))
                    if not exact_match(out["as_stored"]["tagloop"]["predictions"][i], lab)]
    print(f"saved {save(args.name, out)}")
    print(table(out))


def table(r: dict) -> str:
    """The README's table: exact match, CER and time per engine and view, then failures by kind."""
    names = list(r["as_stored"])
    lines = ["| engine | exact match (as stored) | CER | ms/crop | exact match (EXIF applied) |", "|---|---|---|---|---|"]
    for k in names:
        a, e = r["as_stored"][k], r["exif_applied"][k]
        lines.append(f"| {k} | **{a['exact_match']:.3f}** | {a['cer']:.3f} | {a['ms_per_crop']} | {e['exact_match']:.3f} |")
    kinds = sorted({kind for k in names for kind in r["as_stored"][k]["failures"]})
    lines += ["", "| failures (as stored) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for kind in kinds:
        lines.append(f"| {kind} | " + " | ".join(str(r["as_stored"][k]["failures"].get(kind, 0)) for k in names) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
