"""Refit the CRNN's upside-down head on its frozen features: ``python -m recognizer.orient MODEL_DIR --pool P.npz``.

The head (``CRNN.orient``: one linear layer on the time-averaged CNN features) says whether a crop is upside
down; ``recognizer.predict`` uses it to decide which way up to read. The shipped head called an upright crop
turned 180 degrees "upside down" only about a third of the time (renders and real-dev; one in ten on renders
from another generator), while a linear probe on the same features tells the two apart about 19 times in 20:
the features know, the head did not learn it. (One flaw in how it was trained, fixed in
``recognizer.train.turned_180``: whole padded batches were turned, so a turned crop had its padding on the
left, a cue no crop read alone has; whether that is the cause was not measured.)

This refits only that layer: each crop of the pools (with phone-photo effects on a share, as the photo
reader's training had) and the same crop turned 180 degrees, one crop at a time as the predictor reads them;
logistic regression on the frozen features, a fifth of the crops held out to report accuracy before and after.
Every other weight is unchanged, so every reading the model makes is unchanged; only which way up it reads
a crop can change. The artifact's stored ONNX graphs are exported again.
"""
from __future__ import annotations

import argparse
import os
import random
import time

import numpy as np

from recognizer.pool import Pool


def _pooled(model, grays: list[np.ndarray]) -> np.ndarray:
    """The head's input (time-averaged CNN features, base path) for each crop, read alone."""
    import torch

    from recognizer.preprocess import batch_tensor

    out = []
    with torch.no_grad():
        for g in grays:
            x, _ = batch_tensor([g])
            out.append(model.features(torch.from_numpy(x), adapters=False).mean(0)[0].numpy())
    return np.stack(out)


def _accuracy(w: np.ndarray, b: float, up: np.ndarray, turned: np.ndarray) -> dict:
    return {"upright_called_upright": round(float((up @ w + b <= 0).mean()), 4),
            "turned_called_turned": round(float((turned @ w + b > 0).mean()), 4)}


def fit_orient_head(model_dir: str, pools: list[Pool], n: int = 3000, p_photo: float = 0.6, seed: int = 0,
                    steps: int = 300, weight_decay: float = 1e-3, sources: list[str] | None = None,
                    log=print) -> dict:
    """Refit ``model_dir``'s upside-down head on ``n`` crops drawn from ``pools`` (32 px high) and their 180-degree
    turns; writes the weights, the config's record (``meta.orient_head``) and the ONNX graphs. Returns the record."""
    import torch

    from recognizer.checkpoint import load_model, read_config, save_model
    from recognizer.engine import export_onnx, stored_onnx
    from recognizer.photo import photo_augment

    model, tok, _ = load_model(model_dir)
    model.eval()
    if any(p.height != model.cfg.img_height for p in pools):
        raise ValueError(f"pools must be {model.cfg.img_height} px high (got {sorted({p.height for p in pools})})")
    rng = random.Random(seed)
    crops = []
    for _ in range(n):
        pool = rng.choice(pools)
        g = pool.image(rng.randrange(len(pool)))
        if rng.random() < p_photo:
            g = photo_augment(g, rng, pool.image(rng.randrange(len(pool))))
        crops.append(np.ascontiguousarray(g))
    t = time.time()
    up = _pooled(model, crops)
    turned = _pooled(model, [np.ascontiguousarray(np.rot90(g, 2)) for g in crops])
    k = n - n // 5                                            # the last fifth is held out
    w0, b0 = model.orient.weight.detach().numpy()[0].copy(), float(model.orient.bias.detach()[0])
    before = _accuracy(w0, b0, up[k:], turned[k:])
    x = torch.from_numpy(np.concatenate([up[:k], turned[:k]]))
    y = torch.cat([torch.zeros(k), torch.ones(k)])
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)          # standardised for the fit, folded back after
    head = torch.nn.Linear(x.shape[1], 1)
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head((x - mean) / std).squeeze(-1), y)
        loss = loss + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        w = (head.weight[0] / std).numpy()
        b = float(head.bias[0] - (head.weight[0] * mean / std).sum())
    after = _accuracy(w, b, up[k:], turned[k:])
    with torch.no_grad():
        model.orient.weight.copy_(torch.from_numpy(w)[None])
        model.orient.bias.fill_(b)
    record = {"crops": n, "held_out": n - k, "p_photo": p_photo, "seed": seed, "pools": sources or [],
              "held_out_before": before, "held_out_after": after, "fit_s": round(time.time() - t, 1),
              "what": "the upside-down head refit on frozen features (python -m recognizer.orient); "
                      "every other weight unchanged"}
    meta = read_config(model_dir).get("meta", {})
    had_onnx = stored_onnx(model_dir) is not None
    save_model(model, tok, model_dir, meta={**meta, "orient_head": record})
    if had_onnx:
        export_onnx(model_dir)
    log(f"upside-down head, held-out {n - k} crops: before {before}, after {after}")
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", help="artifact whose head is refit in place")
    ap.add_argument("--pool", action="append", required=True, help="32 px pool (.npz from synth.pools); repeatable")
    ap.add_argument("--n", type=int, default=3000, help="crops (each also turned 180 degrees)")
    ap.add_argument("--p-photo", type=float, default=0.6, help="share of crops given phone-photo effects")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    fit_orient_head(args.model_dir, [Pool.load(p) for p in args.pool], args.n, args.p_photo, args.seed,
                    sources=[os.path.basename(p) for p in args.pool])


if __name__ == "__main__":
    main()
