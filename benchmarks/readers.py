"""Who reads what: how much any rule choosing between a model's readers could still gain on a domain.

    python -m benchmarks.readers --model DIR[,DIR...] [--domains dot_matrix,dark_lowres,serif_plus] [--test-n 300]

A served reading is one of its readers' readings: the CRNN (with a night's adapters: the adapted path), the
CRNN's base path, the photo reader. A crop that no reader reads right (nor the served predictor, whose rules may
read another view) is read right by no arbitration between them. So, on each domain's held-out crops
(``benchmarks.domains``, seed 9202 as in ``benchmarks.domain_curve``), this reads with:

- ``served``: the model as it serves (``Predictor(model)``);
- ``crnn``: its CRNN with every rule, photo reader off (with adapters: adapted readings where they win);
- ``crnn_base``: the same with the adapted path off (``adapted_below=0``; the base path, plus the adapted
  reading only where it writes a character the base model lacks);
- ``photo_reader``: the shipped photo reader alone on each crop as given.

and reports per domain: each reader's exact match, the crops some reader reads right ("any"), those only one
reader reads right, and the shipped champion's served exact match on the same crops. ``ceiling_gain_points``
= any - champion served: the most a perfect arbiter between these readers could gain over the champion, to set
against issue 16's target (10 points, or half the champion's remaining error when that is smaller).
Writes ``benchmarks/results/readers.json``.
"""
from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import save
from benchmarks.domains import DOMAINS
from recognizer.checkpoint import base_model_dir
from recognizer.metrics import exact_match
from recognizer.preprocess import decode_image, to_gray

BATCH = 32


def tally(labels: list[str], readings: dict[str, list[str]]) -> dict:
    """Readings of the same crops by several readers -> each one's count right, the crops some / none / only
    one of them reads right."""
    if any(len(v) != len(labels) for v in readings.values()):
        raise ValueError("every reader must read every crop once")
    right = {k: [exact_match(t, lab) for t, lab in zip(v, labels)] for k, v in readings.items()}
    hits = np.array([right[k] for k in readings], bool).reshape(len(readings), len(labels))
    some = hits.any(0)
    only = {k: int((hits[i] & (hits.sum(0) == 1)).sum()) for i, k in enumerate(readings)}
    return {"n": len(labels), "right": {k: int(sum(v)) for k, v in right.items()}, "any_reader_right": int(some.sum()),
            "no_reader_right": int((~some).sum()), "only_this_reader_right": only}


def readings(model_dir: str, images: list[np.ndarray], **kw) -> list[str]:
    """``Predictor(model_dir, **kw)``'s readings of ``images``."""
    from recognizer.predict import Predictor

    p = Predictor(model_dir, **kw)
    return [q.text for i in range(0, len(images), BATCH) for q in p.predict_arrays(images[i:i + BATCH])]


def read_all(model_dir: str, images: list[np.ndarray]) -> dict[str, list[str]]:
    """The readings of each reader of ``model_dir`` (see the module docstring)."""
    from recognizer.photoreader import shipped

    out = {"served": readings(model_dir, images), "crnn": readings(model_dir, images, photo=None),
           "crnn_base": readings(model_dir, images, photo=None, adapted_below=0.0)}
    reader = shipped()
    if reader is not None:
        grays = [to_gray(im) for im in images]
        out["photo_reader"] = [t for i in range(0, len(grays), BATCH) for t, _ in reader.read(grays[i:i + BATCH])]
    return out


def ceiling(model_dir: str, images: list[np.ndarray], labels: list[str], champion: float) -> dict:
    """``tally`` of ``model_dir``'s readers on the crops, with what a perfect arbiter and what serving gain over
    a champion that reads them at ``champion``."""
    t = tally(labels, read_all(model_dir, images))
    t["ceiling_gain_points"] = round(100 * (t["any_reader_right"] / t["n"] - champion), 2)
    t["served_gain_points"] = round(100 * (t["right"]["served"] / t["n"] - champion), 2)
    t["target_points"] = target_points(champion)
    return t


def target_points(champion: float) -> float:
    """Issue 16's bar for one night on a domain the champion reads at ``champion``: 10 points, or half the
    remaining error when that is smaller."""
    return round(min(10.0, 50.0 * (1.0 - champion)), 2)


def one_domain(name: str, models: list[str], test_n: int) -> dict:
    blobs, labels = DOMAINS[name](test_n, 9_202)
    images = [decode_image(b) for b in blobs]
    champ = readings(base_model_dir(), images)
    champion = float(np.mean([exact_match(t, lab) for t, lab in zip(champ, labels)]))
    out = {"domain": name, "n": len(labels), "champion_served": round(champion, 4),
           "target_points": target_points(champion), "models": []}
    for model in models:
        out["models"].append({"model": model, **ceiling(model, images, labels, champion)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="champion",
                    help="models (comma-separated): artifact directories, registry references as `tagloop predict "
                         "--model` takes them (champion, a version), or DOMAIN=DIR pairs to read each domain with its "
                         "own challenger (domain_curve's)")
    ap.add_argument("--domains", default=",".join(DOMAINS), help="comma-separated, from benchmarks.domains")
    ap.add_argument("--test-n", type=int, default=300, help="held-out crops of each domain")
    ap.add_argument("--name", default="readers", help="results file name (benchmarks/results/NAME.json)")
    args = ap.parse_args()
    from flows.settings import Settings
    from loop.modelref import resolve_model

    specs = [s for s in args.model.split(",") if s]
    pairs = dict(s.split("=", 1) for s in specs if "=" in s)
    plain = [s for s in specs if "=" not in s]
    home = Settings.from_env().home
    results = []
    for name in args.domains.split(","):
        models = plain + ([pairs[name]] if name in pairs else [])
        if not models:
            raise SystemExit(f"benchmarks.readers: no model given for {name}")
        try:
            dirs = [resolve_model(m, home) for m in models]
        except FileNotFoundError as e:
            raise SystemExit(f"benchmarks.readers: {e}") from None
        results.append(one_domain(name, dirs, args.test_n))
        for t in results[-1]["models"]:
            print(f"{name}: champion served {results[-1]['champion_served']:.3f} (target +{results[-1]['target_points']}); "
                  f"{t['model']}: {t['right']}, any {t['any_reader_right']}, none {t['no_reader_right']}, "
                  f"only {t['only_this_reader_right']}, served {t['served_gain_points']:+} / ceiling "
                  f"{t['ceiling_gain_points']:+} points", flush=True)
        save(args.name, {"what": "who reads what on each domain's held-out crops (seed 9202)", "config": vars(args),
                         "domains": results})


if __name__ == "__main__":
    main()
