"""The photo reader: a second recogniser for crops the CRNN is unsure of, initialised from PP-OCR.

Why: the CRNN (``recognizer/model.py``) learnt this project's renderer; on real phone photos it read
0.764 of ``../shared/real-dev`` where PP-OCR's recogniser reads 0.93. PP-OCR was trained on a large
body of real text; its weights ship inside the ``rapidocr`` wheel on PyPI (Apache-2.0). This module
turns that recogniser into the project's own artifact and fine-tunes it on our renders:

- ``convert``: the ONNX graph of ``PP-OCRv6_rec_small`` -> ``graph.json`` (its nodes) +
  ``model.safetensors`` (its weights), with the output layer cut to our charset (45 of 18,710 rows:
  blank + ``0-9 A-Z space - . / : ( ) #``);
- ``train``: a time-boxed, resumable fine-tune in torch (``recognizer.graphnet.GraphNet``) of the
  sequence neck and output layer on rendered crops with phone-photo effects (``recognizer.photo``),
  the convolutional backbone frozen (it carries what PP-OCR learnt from real text); CPU or GPU;
- ``export``: ``model.onnx`` written from the JSON graph and the weights, which is what reads.

Reading (``PhotoReader``) needs ONNX Runtime, NumPy and OpenCV only (the slim install). Input: the
grey crop (grey read real-dev better than colour: 0.945 vs 0.927 zero-shot) at height 48, right-padded
to at least 320 px as PP-OCR was trained, after a margin of 0.3 x its height of its own edge pixels is
added left and right (``read_margin``: PP-OCR reads detector boxes, which its DB detector draws about a
third of the text height outside the text; shoppers' crops are often tight; measured in the README,
"Real phone photos"). Confidence: the smallest per-character probability.
How the predictor uses it: ``recognizer/predict.py`` (``photo_below``, ``photo_floor``).

    python -m recognizer.photoreader convert OUT_DIR
    python -m recognizer.photoreader train OUT_DIR --pools a.npz b.npz --val v.npz --minutes 60
    python -m recognizer.photoreader export OUT_DIR [--checkpoint OUT_DIR/last.safetensors]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time

import cv2
import numpy as np

from recognizer.checkpoint import ModelError, read_json
from recognizer.engine import _session, _threads
from recognizer.tokenizer import DEFAULT_CHARSET

PHOTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "photo_model")
FORMAT = "tagloop-photo/1"
SOURCE = "PP-OCRv6_rec_small.onnx"      # inside the rapidocr wheel (rapidocr/models/)
FREEZE_UNTIL = "conv2d_67.w_0"          # the first weight after the backbone (the neck's 1x1 conv)


def prepare(grays: list[np.ndarray], height: int, min_width: int, margin: float = 0.0) -> np.ndarray:
    """Grey uint8 crops (already upright) -> N x 3 x height x W float32 in [-1, 1], zero-padded right.

    ``margin``: each crop first gets ``margin`` x its height of its own edge pixels added left and right."""
    if margin > 0:
        grays = [cv2.copyMakeBorder(g, 0, 0, m, m, cv2.BORDER_REPLICATE) if (m := int(round(g.shape[0] * margin)))
                 else g for g in grays]
    ws = [max(16, int(round(g.shape[1] * height / max(1, g.shape[0])))) for g in grays]
    x = np.zeros((len(grays), 3, height, max(max(ws), min_width)), np.float32)
    for i, (g, w) in enumerate(zip(grays, ws)):
        im = cv2.resize(g, (w, height), interpolation=cv2.INTER_AREA if g.shape[0] > height else cv2.INTER_LINEAR)
        x[i, :, :, :w] = im.astype(np.float32) / 127.5 - 1.0
    return x


def decode(probs: np.ndarray, charset: str) -> list[tuple[str, float]]:
    """N x T x C probabilities (class 0 = blank) -> [(text, smallest per-character probability)]."""
    out = []
    best, p = probs.argmax(-1), probs.max(-1)
    for row, pr in zip(best, p):
        keep = np.ones(len(row), bool)
        keep[1:] = row[1:] != row[:-1]
        keep &= row != 0
        text = "".join(charset[k - 1] for k in row[keep])
        out.append((" ".join(text.split()), float(pr[keep].min()) if keep.any() else 0.0))
    return out


class PhotoReader:
    """Reads upright grey crops with the stored ONNX graph: ``read(grays) -> [(text, confidence)]``."""

    def __init__(self, model_dir: str = PHOTO_DIR, threads: int | None = None) -> None:
        cfg = read_json(os.path.join(model_dir, "config.json"), 1 << 20)
        if cfg.get("format") != FORMAT:
            raise ModelError(f"{model_dir}: not a photo reader ({cfg.get('format')!r})")
        self.config, self.charset = cfg, cfg["charset"]
        self.height, self.min_width = int(cfg["height"]), int(cfg["min_width"])
        self.margin = float(cfg.get("read_margin", 0.0))       # reading only; training pads nothing
        path = os.path.join(model_dir, "model.onnx")
        if not os.path.isfile(path):
            raise ModelError(f"{model_dir}: no model.onnx (python -m recognizer.photoreader export {model_dir})")
        self.sess = _session(path, threads or _threads())

    def read(self, grays: list[np.ndarray]) -> list[tuple[str, float]]:
        return [(text, conf) for text, conf, _ in self.read_frames(grays)]

    def read_frames(self, grays: list[np.ndarray]) -> list[tuple[str, float, np.ndarray]]:
        """[(text, confidence, frames x classes log-probabilities)]: what ``recognizer.decode.ctc_log_likelihood``
        scores another reading of the same crop on (class 0 = blank, then ``charset``)."""
        out = []
        for g in grays:     # one at a time: padding a batch to its widest crop costs more than it saves
            probs = self.sess.run(None, {"x": prepare([g], self.height, self.min_width, self.margin)})[0]
            (text, conf), = decode(probs, self.charset)
            out.append((text, conf, np.log(np.maximum(probs[0], 1e-30))))
        return out


def shipped() -> PhotoReader | None:
    """The photo reader shipped with the package, or None when this install has none."""
    return PhotoReader() if os.path.isfile(os.path.join(PHOTO_DIR, "model.onnx")) else None


# -- building the artifact (full install: torch, onnx; rapidocr for ``convert``) -------------------
def _load(model_dir: str, checkpoint: str | None = None):
    from safetensors.numpy import load_file

    from recognizer.graphnet import GraphNet

    graph = read_json(os.path.join(model_dir, "graph.json"), 64 << 20)
    weights = load_file(os.path.join(model_dir, "model.safetensors"))
    net = GraphNet(graph, weights)
    if checkpoint:
        from safetensors.torch import load_file as load_torch

        net.load_state_dict(load_torch(checkpoint))
    return graph, net


def convert(out_dir: str, source: str | None = None) -> None:
    """PP-OCR's recogniser (from the installed rapidocr wheel) -> graph.json + model.safetensors + config."""
    import onnx
    from safetensors.numpy import save_file

    from recognizer.graphnet import graph_from_onnx

    if source is None:
        import rapidocr

        source = os.path.join(os.path.dirname(rapidocr.__file__), "models", SOURCE)
    model = onnx.load(source)
    chars = ["<blank>"] + {p.key: p.value for p in model.metadata_props}["character"].split("\n") + [" "]
    rows = [0] + [chars.index(c) for c in DEFAULT_CHARSET]
    graph, weights = graph_from_onnx(model)
    last = graph["nodes"][-1]
    if last["op"] != "Softmax":
        raise ValueError(f"{source}: expected the graph to end in Softmax, not {last['op']}")
    head = [n for n in graph["nodes"] if n["op"] == "MatMul"][-1]["in"][1]          # T x 120 @ 120 x C
    bias = [n for n in graph["nodes"] if n["op"] == "Add" and head.replace(".w_", ".b_") in n["in"]]
    weights[head] = np.ascontiguousarray(weights[head][:, rows])
    if bias:
        b = head.replace(".w_", ".b_")
        weights[b] = np.ascontiguousarray(weights[b][rows])
    graph["opset"] = int(model.opset_import[0].version)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "graph.json"), "w") as f:
        json.dump(graph, f)
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, os.path.join(out_dir, "model.safetensors"))
    cfg = {"format": FORMAT, "charset": DEFAULT_CHARSET, "height": 48, "min_width": 320, "read_margin": 0.3,
           "input": "grey, 3 channels",
           "init": {"from": f"rapidocr {_version('rapidocr')} models/{SOURCE}", "license": "Apache-2.0",
                    "output_rows": "blank + the charset's 44 of the source's 18,710 classes"},
           "training": []}
    _write_config(out_dir, cfg)


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


def _write_config(out_dir: str, cfg: dict) -> None:
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def export(model_dir: str, checkpoint: str | None = None) -> str:
    """Write ``model.onnx`` (and, from a checkpoint, the weights) of the artifact; returns its path."""
    from safetensors.numpy import save_file

    from recognizer.graphnet import to_onnx

    graph, net = _load(model_dir, checkpoint)
    weights = {k: v.cpu().numpy() for k, v in net.named_weights().items()}
    if checkpoint:
        save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, os.path.join(model_dir, "model.safetensors"))
    cfg = read_json(os.path.join(model_dir, "config.json"), 1 << 20)
    path = os.path.join(model_dir, "model.onnx")
    with open(path + ".tmp", "wb") as f:
        f.write(to_onnx(graph, weights, len(cfg["charset"]) + 1, graph.get("opset", 11)))
    os.replace(path + ".tmp", path)
    return path


def train(model_dir: str, pools: list[str], val: str | None, minutes: float, lr: float = 3e-4,
          batch: int = 32, p_photo: float = 0.6, seed: int = 0, every: int = 300, max_steps: int | None = None,
          log=print) -> dict:
    """Fine-tune neck + output layer for ``minutes`` (resumes from ``model_dir/last.safetensors``);
    checkpoints every ``every`` steps (and at the end); returns the run's summary (also appended to config.json)."""
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file, save_file

    from recognizer.photo import photo_augment
    from recognizer.pool import Pool

    cfg = read_json(os.path.join(model_dir, "config.json"), 1 << 20)
    graph, net = _load(model_dir)
    graph["nodes"] = graph["nodes"][:-1]             # train on logits (the stored graph ends in Softmax)
    last_node_in = graph["nodes"][-1]["out"][0]
    graph["output"] = last_node_in
    device = "cuda" if torch.cuda.is_available() else "cpu"
    state, step = os.path.join(model_dir, "last.safetensors"), 0
    if os.path.exists(state):
        net.load_state_dict(load_file(state))
        step = read_json(os.path.join(model_dir, "last.json"), 4096)["step"]
    frozen = set()
    for n in graph["nodes"]:
        if FREEZE_UNTIL in n["in"]:
            break
        frozen.update(k for k in n["in"] if k in net.names)
    for k in frozen:
        net.weight(k).requires_grad_(False)
    net.to(device)
    H, minw, charset = int(cfg["height"]), int(cfg["min_width"]), cfg["charset"]
    index = {c: i + 1 for i, c in enumerate(charset)}
    data = [Pool.load(p) for p in pools]
    rng = random.Random(seed + step)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    queue: list = []

    def next_batch():
        if not queue:               # 8 batches at a time, grouped by width (less padding)
            items = []
            for _ in range(batch * 8):
                pool = rng.choice(data)
                i = rng.randrange(len(pool))
                g = pool.image(i)
                if rng.random() < p_photo:
                    g = photo_augment(g, rng, pool.image(rng.randrange(len(pool))))
                items.append((g, pool.labels[i]))
            items.sort(key=lambda t: t[0].shape[1])
            chunks = [items[k:k + batch] for k in range(0, len(items), batch)]
            rng.shuffle(chunks)
            queue.extend(chunks)
        return queue.pop()

    def validate(n: int = 300) -> float | None:
        if not val:
            return None
        v = Pool.load(val)
        net.eval()
        ok = 0
        with torch.no_grad():
            for s in range(0, min(n, len(v)), 50):
                idx = range(s, min(n, len(v), s + 50))
                x = torch.from_numpy(prepare([v.image(i) for i in idx], H, minw)).to(device)
                reads = decode(torch.softmax(net(x), -1).cpu().numpy(), charset)
                ok += sum(t == " ".join(v.labels[i].split()) for (t, _), i in zip(reads, idx))
        net.train()
        return ok / min(n, len(v))

    def checkpoint(at: int) -> None:
        save_file(net.state_dict(), state)
        save_file(net.state_dict(), os.path.join(model_dir, f"step{at}.safetensors"))
        with open(os.path.join(model_dir, "last.json"), "w") as f:
            json.dump({"step": at}, f)

    t0, start, history = time.time(), step, []
    net.train()
    while time.time() - t0 < minutes * 60 and (max_steps is None or step - start < max_steps):
        items = next_batch()
        x = torch.from_numpy(prepare([g for g, _ in items], H, minw)).to(device)
        targets = [torch.tensor([index[c] for c in lab if c in index]) for _, lab in items]
        logp = F.log_softmax(net(x), -1).transpose(0, 1)
        loss = F.ctc_loss(logp, torch.cat(targets).to(device), torch.full((len(items),), logp.shape[0]),
                          torch.tensor([len(t) for t in targets]), blank=0, zero_infinity=True)
        for gp in opt.param_groups:
            gp["lr"] = lr * min(1.0, (step - start + 1) / 100)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        step += 1
        if step % every == 0:
            checkpoint(step)
            history.append({"step": step, "loss": round(loss.item(), 4), "val_exact_match": validate(),
                            "s": round(time.time() - t0)})
            log(f"photo reader step {step}: {history[-1]}")
    if step % every:
        checkpoint(step)
    run = {"steps": [start, step], "minutes": minutes, "lr": lr, "batch": batch, "p_photo": p_photo,
           "pools": [os.path.basename(p) for p in pools], "device": device, "history": history,
           "trainable": f"neck + output layer (backbone frozen up to {FREEZE_UNTIL})"}
    cfg["training"].append(run)
    _write_config(model_dir, cfg)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="PP-OCR's recogniser from the rapidocr wheel -> OUT_DIR")
    c.add_argument("out_dir")
    c.add_argument("--source", help="ONNX file (default: the one inside the installed rapidocr wheel)")
    t = sub.add_parser("train", help="fine-tune (time-boxed, resumes from OUT_DIR/last.safetensors)")
    t.add_argument("out_dir")
    t.add_argument("--pools", nargs="+", required=True, help="training pools (recognizer.pool .npz)")
    t.add_argument("--val", help="validation pool (.npz)")
    t.add_argument("--minutes", type=float, default=60)
    t.add_argument("--lr", type=float, default=3e-4)
    e = sub.add_parser("export", help="write model.onnx (from a checkpoint: its weights too)")
    e.add_argument("out_dir")
    e.add_argument("--checkpoint")
    args = ap.parse_args()
    if args.cmd == "convert":
        convert(args.out_dir, args.source)
    elif args.cmd == "train":
        train(args.out_dir, args.pools, args.val, args.minutes, args.lr)
    else:
        print(export(args.out_dir, args.checkpoint))


if __name__ == "__main__":
    main()
