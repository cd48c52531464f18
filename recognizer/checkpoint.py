"""Self-contained model artifacts: ``model.safetensors`` + ``config.json``. No pickles.

Loading validates before it allocates: ``config.json`` (at most ``MAX_CONFIG_BYTES``) must be a
JSON object of the ``tagloop-crnn/1`` format whose model sizes lie within ``LIMITS``, and the
weights file's header must name exactly the tensors, shapes and dtypes that config implies
(read from the header alone, the model built on torch's ``meta`` device), before any weight is
read or any module allocated. Every failure is a ``ModelError`` (a ``ValueError``) whose message is
one line naming the file and the problem; the CLI prints it and exits 2.
"""
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
MAX_CONFIG_BYTES = 1 << 20     # the shipped base model's config.json is 4.3 kB (its recipe in ``meta``)
# Upper bounds on a model's sizes, stated once: 8x the shipped base model's (hidden 128, channels up to
# 128, a 44-character charset, no adapters; fine-tunes add 16-channel adapters and a few characters).
# The largest model they admit has ~10 M parameters per 1,024 channels: it allocates, it cannot exhaust memory.
LIMITS = {"hidden": 1024, "channels": 1024, "adapter": 1024, "charset": 1024}
IMG_HEIGHT = 32                # the one input height the backbone reads (``recognizer.model.CRNN``)


class ModelError(ValueError):
    """A model directory that cannot be loaded; the message is one line: the file and the problem."""


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


def read_json(file: str, max_bytes: int) -> Any:
    """A small JSON file -> its value; ``ModelError`` when missing, larger than ``max_bytes``, not UTF-8,
    not JSON, nested too deeply or holding numbers too long to parse."""
    try:
        with open(file, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ModelError(f"{file}: missing (a model directory holds {CONFIG} + {WEIGHTS})") from None
    except OSError as e:
        raise ModelError(f"{file}: cannot read ({e.strerror})") from None
    if len(data) > max_bytes:
        raise ModelError(f"{file}: larger than {max_bytes} bytes")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ModelError(f"{file}: JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:       # JSONDecodeError; an integer of > 4300 digits
        raise ModelError(f"{file}: not valid JSON ({str(e).splitlines()[0][:120]})") from None


def _int(d: dict, key: str, lo: int, hi: int, where: str) -> int:
    v = d.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise ModelError(f"{where}: {key} must be an integer in [{lo}, {hi}], not {_short(v)}")
    return v


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def check_config(cfg: Any, where: str) -> dict[str, Any]:
    """The checks ``read_config`` makes, on a parsed config (``where``: the file, for messages)."""
    if not isinstance(cfg, dict):
        raise ModelError(f"{where}: not a JSON object")
    if cfg.get("format") != "tagloop-crnn/1":
        raise ModelError(f"{where}: not a tagloop model artifact (format={_short(cfg.get('format'))})")
    for key, kind in (("charset", str), ("model", dict)):
        if key not in cfg:
            raise ModelError(f"{where}: missing key {key!r}")
        if not isinstance(cfg[key], kind):
            raise ModelError(f"{where}: {key} must be a JSON {'string' if kind is str else 'object'}")
    if not 0 < len(cfg["charset"]) <= LIMITS["charset"]:
        raise ModelError(f"{where}: charset must hold 1 to {LIMITS['charset']} characters, "
                         f"not {len(cfg['charset'])}")
    if len(set(cfg["charset"])) != len(cfg["charset"]):
        raise ModelError(f"{where}: charset has duplicate characters")
    m, at = cfg["model"], f"{where}: model"
    missing = [k for k in ("num_classes", "img_height", "channels", "hidden") if k not in m]
    if missing:
        raise ModelError(f"{at} is missing {', '.join(missing)}")
    unknown = sorted(set(m) - {"num_classes", "img_height", "channels", "hidden", "dropout", "adapter"})
    if unknown:
        raise ModelError(f"{at} has unknown keys {', '.join(map(_short, unknown))}")
    _int(m, "num_classes", len(cfg["charset"]) + 1, len(cfg["charset"]) + 1, at)   # charset + blank
    _int(m, "img_height", IMG_HEIGHT, IMG_HEIGHT, at)
    _int(m, "hidden", 1, LIMITS["hidden"], at)
    if "adapter" in m:
        _int(m, "adapter", 0, LIMITS["adapter"], at)
    ch = m["channels"]
    if (not isinstance(ch, list) or len(ch) != 4
            or not all(type(c) is int and 1 <= c <= LIMITS["channels"] for c in ch)):
        raise ModelError(f"{at}: channels must be 4 integers in [1, {LIMITS['channels']}], not {_short(ch)}")
    if "dropout" in m and (type(m["dropout"]) not in (int, float) or not 0 <= m["dropout"] < 1):
        raise ModelError(f"{at}: dropout must be a number in [0, 1), not {_short(m['dropout'])}")
    return cfg


def read_config(path: str) -> dict[str, Any]:
    """An artifact's ``config.json``, validated (``check_config``); ``ModelError`` otherwise."""
    file = os.path.join(path, CONFIG)
    return check_config(read_json(file, MAX_CONFIG_BYTES), file)


_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64", "I64": "int64",
           "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def _check_weights(file: str, expected: dict[str, Any]) -> None:
    """The weights file's header against ``expected`` (name -> meta tensor): names, shapes, dtypes.
    The header alone is read (safetensors checks it against the file's length: a truncated file fails)."""
    from safetensors import safe_open

    try:
        with safe_open(file, framework="pt") as f:
            found = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except FileNotFoundError:
        raise ModelError(f"{file}: missing") from None
    except Exception as e:          # SafetensorsError (header too large, bad offsets, truncated), OSError
        raise ModelError(f"{file}: not a readable safetensors file ({str(e).splitlines()[0][:120]})") from None
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or extra:
        parts = ([f"missing {len(missing)} tensors (e.g. {missing[0]})"] if missing else []) + \
                ([f"{len(extra)} unexpected (e.g. {_short(extra[0])})"] if extra else [])
        raise ModelError(f"{file}: tensors do not match {CONFIG}: {'; '.join(parts)}")
    for k, t in expected.items():
        shape, dtype = found[k]
        if shape != tuple(t.shape):
            raise ModelError(f"{file}: tensor {k} has shape {list(shape)}, {CONFIG} implies {list(t.shape)}")
        if _DTYPES.get(dtype) != str(t.dtype).removeprefix("torch."):
            raise ModelError(f"{file}: tensor {k} has dtype {dtype}, expected {t.dtype}")


def load_model(path: str, device: str = "cpu") -> tuple[CRNN, CTCTokenizer, dict[str, Any]]:
    """Artifact directory -> (model in eval mode, tokenizer, full config)."""
    if not os.path.isdir(path):
        raise ModelError(f"{path}: model directory not found")
    cfg = read_config(path)                     # before torch is even imported

    import torch
    from safetensors.torch import load_file

    from recognizer.model import CRNN, ModelConfig

    tok = CTCTokenizer(cfg["charset"])
    mcfg = ModelConfig.from_dict(cfg["model"])
    with torch.device("meta"):                  # shapes only: nothing is allocated before the weights check
        expected = CRNN(mcfg).state_dict()
    file = os.path.join(path, WEIGHTS)
    _check_weights(file, expected)
    model = CRNN(mcfg)
    try:
        model.load_state_dict(load_file(file, device="cpu"))
    except Exception as e:          # the header was checked; this is the file changing under us, or bad data
        raise ModelError(f"{file}: cannot load weights ({str(e).splitlines()[0][:120]})") from None
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
