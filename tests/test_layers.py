"""The import contract: layers, bottom to top, arrows only pointing down (DESIGN.md, issue 14).

    bucket, crops                     the bucket layer; crop definitions (import nothing of tagloop)
    recognizer                        torch + onnxruntime; renders nothing, knows no bucket
    synth                             product-code grammar and rendering
    ingest
    loop, monitoring, scoring,        (loop may use monitoring's reports, serve loop's registry, labeling the
    serve, labeling                    labeling queue of scoring; not the reverse)
    tasks
    flows

Every ``import`` in a package (at module level or inside a function) is checked.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYER = {"bucket": 0, "crops": 0, "recognizer": 1, "synth": 2, "ingest": 3, "loop": 4, "monitoring": 4,
         "scoring": 4, "serve": 4, "labeling": 4, "tasks": 5, "flows": 6}
SIDEWAYS = {("loop", "monitoring"),          # same layer, allowed direction: the cycle publishes reports
            ("serve", "loop"),               # serving reads the registry's champion (loop.registry)
            ("labeling", "scoring")}         # a sprint labels the labeling queue batch prediction writes
NEVER_BELOW = {("recognizer", "bucket")}     # lower, and still refused: the recognizer knows no storage
# Known exceptions, each with the reason it is still there. Remove an entry when its import goes.
EXCEPTIONS = {
    # the GPU streaming recipe renders crops in its DataLoader workers (StreamingSynth) and its
    # validation pool; its training logic is being rewritten elsewhere: move the rendering to a
    # driver that hands the recognizer a data source then
    ("recognizer/stream_train.py", "synth.pools"),
    ("recognizer/stream_train.py", "synth.render"),
}


def _imports(path: pathlib.Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def _edges() -> list[tuple[str, str, str]]:
    """(file, importing package, imported module) for every cross-package import."""
    edges = []
    for pkg in LAYER:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for mod in _imports(path):
                top = mod.split(".")[0]
                if top in LAYER and top != pkg:
                    edges.append((path.relative_to(ROOT).as_posix(), pkg, mod))
    return edges


def _allowed(src: str, dst: str) -> bool:
    if (src, dst) in NEVER_BELOW:
        return False
    return LAYER[dst] < LAYER[src] or (src, dst) in SIDEWAYS


def test_every_package_is_in_a_layer():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} - {"tests", "benchmarks"}
    assert packages == set(LAYER)


def test_imports_only_point_down():
    bad = [f"{f}: {mod}" for f, src, mod in _edges()
           if not _allowed(src, mod.split(".")[0]) and (f, mod) not in EXCEPTIONS]
    assert bad == [], "imports against the layering:\n" + "\n".join(bad)


def test_exceptions_are_still_needed():
    """An exception whose import is gone must be removed from the list (the contract only tightens)."""
    present = {(f, mod) for f, _, mod in _edges()}
    assert EXCEPTIONS <= present


@pytest.mark.parametrize("pkg", ["recognizer"])
def test_recognizer_is_torch_and_onnxruntime_only(pkg):
    third_party = {m.split(".")[0] for path in (ROOT / pkg).rglob("*.py") for m in _imports(path)}
    assert not third_party & {"prefect", "mlflow", "google", "evidently", "great_expectations", "trdg", "pandas"}
