"""Self-contained model artifacts: ``model.safetensors`` + ``config.json``. No pickles."""
from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from typing import TYPE_CHECKING, Any

from recognizer.tokenizer import CTCTokenizer

if TYPE_CHECKING:                       # torch is imported where weights are touched, not to read a config
    import torch

    from recognizer.model import CRNN

WEIGHTS, CONFIG = "model.safetensors", "config.json"


def base_model_dir() -> str:
    """The base model shipped inside the ``recognizer`` package (``recognizer/base_model``)."""
    return str(resources.files("recognizer") / "base_model")


def save_model(model: CRNN, tokenizer: CTCTokenizer, path: str, meta: dict[str, Any] | None = None) -> str:
    """Write the artifact directory atomically enough for readers (config written last)."""
    from safetensors.torch import save_file

    os.makedirs(path, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(path, WEIGHTS))
    cfg = {"format": "tagloop-crnn/1", "charset": tokenizer.charset,
           "model": model.cfg.to_dict(), "meta": meta or {}}
    tmp = os.path.join(path, CONFIG + ".tmp")
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent=2)
    os.replace(tmp, os.path.join(path, CONFIG))
    return path


def weights_sha256(path: str) -> str:
    """sha256 (hex) of an artifact's weights file: what makes two artifacts the same model."""
    h = hashlib.sha256()
    with open(os.path.join(path, WEIGHTS), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_config(path: str) -> dict[str, Any]:
    with open(os.path.join(path, CONFIG)) as f:
        cfg = json.load(f)
    if cfg.get("format") != "tagloop-crnn/1":
        raise ValueError(f"{path}: not a tagloop model artifact (format={cfg.get('format')!r})")
    return cfg


def load_model(path: str, device: str = "cpu") -> tuple[CRNN, CTCTokenizer, dict[str, Any]]:
    """Artifact directory -> (model in eval mode, tokenizer, full config)."""
    from safetensors.torch import load_file

    from recognizer.model import CRNN, ModelConfig

    if not os.path.isfile(os.path.join(path, CONFIG)):
        raise FileNotFoundError(f"no model artifact at {path} (missing {CONFIG})")
    cfg = read_config(path)
    tok = CTCTokenizer(cfg["charset"])
    mcfg = ModelConfig.from_dict(cfg["model"])
    if mcfg.num_classes != tok.num_classes:
        raise ValueError(f"{path}: charset has {tok.num_classes} classes, model {mcfg.num_classes}")
    model = CRNN(mcfg)
    model.load_state_dict(load_file(os.path.join(path, WEIGHTS), device="cpu"))
    return model.to(device).eval(), tok, cfg


def save_train_state(path: str, step: int, optimizer: torch.optim.Optimizer, extra: dict) -> None:
    """Optimizer + progress for resuming (tensors and plain types only)."""
    import torch

    torch.save({"step": step, "optimizer": optimizer.state_dict(), "extra": extra},
               os.path.join(path, "train_state.pt.tmp"))
    os.replace(os.path.join(path, "train_state.pt.tmp"), os.path.join(path, "train_state.pt"))


def load_train_state(path: str) -> dict | None:
    import torch

    f = os.path.join(path, "train_state.pt")
    return torch.load(f, weights_only=True) if os.path.isfile(f) else None
