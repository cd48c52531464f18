"""Shared helpers: the realistic held-out test set and result files."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time

from synth.dataset import read_rows, write_dataset
from synth.render import RenderConfig

RESULTS = os.path.join(os.path.dirname(__file__), "results")
TEST_SEED = 424_242   # never used for training (training pools use seeds < 10^6 * 100 + k)


def renderer_fingerprint() -> str:
    """What decides the pixels of a render: the rendering code (``synth/*.py``), the installed fonts, Pillow
    and TRDG. A cached test set is only reused while this holds: a set cached before a renderer change read
    0.939 as served where a fresh render of the same seed read 0.915 (2026-12-07)."""
    import PIL

    h = hashlib.sha256()
    synth_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "synth")
    for name in sorted(os.listdir(synth_dir)):
        if name.endswith(".py"):
            with open(os.path.join(synth_dir, name), "rb") as f:
                h.update(name.encode() + f.read())
    from synth.fonts import all_fonts

    h.update("\n".join(os.path.basename(f) for f in all_fonts()).encode())
    try:
        from importlib.metadata import version

        trdg = version("trdg")
    except Exception:                     # noqa: BLE001 - absent TRDG renders differently, which is the point
        trdg = "none"
    h.update(f"pillow {PIL.__version__} trdg {trdg}".encode())
    return h.hexdigest()[:12]


def test_set(n: int = 1000, root: str | None = None) -> tuple[str, list[dict[str, str]]]:
    """Held-out seed + held-out fonts + 7% 90-degree and 3% 180-degree turns; cached on disk, per
    ``renderer_fingerprint`` (a renderer change renders the set anew instead of reusing a stale one)."""
    root = root or os.path.join(os.environ.get("TAGLOOP_HOME", ".tagloop"), "bench",
                                f"testset-{n}-{renderer_fingerprint()}")
    labels = os.path.join(root, "labels.csv")
    if not os.path.exists(labels):
        write_dataset(root, n, TEST_SEED, RenderConfig(fonts="heldout", p_rot90=0.07, p_rot180=0.03), workers=2,
                      ext="png")
    return os.path.join(root, "images"), read_rows(labels)


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores{cpu_model()}, {gpu}, torch {torch.__version__}"


def cpu_model() -> str:
    """`` (Intel(R) Xeon(R) Processor)``: one-crop times differ ~1.5x between the 2-core machines used here."""
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        name = ""
    return f" ({name})" if name else ""


def save(name: str, result: dict) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    result = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), **result}
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    return path
