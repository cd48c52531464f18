"""Shared fixtures: small rendered data sets, built once per session."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("DO_NOT_TRACK", "true")


@pytest.fixture(scope="session")
def crops_dir(tmp_path_factory) -> str:
    """24 upright crops with labels.csv (training fonts)."""
    from synth.dataset import write_dataset
    from synth.render import RenderConfig

    out = str(tmp_path_factory.mktemp("crops"))
    write_dataset(out, 24, seed=11, cfg=RenderConfig(), workers=1, chunk=12)
    return out


@pytest.fixture(scope="session")
def tiny_pool():
    """240 preprocessed crops (in memory) for training tests."""
    from recognizer.synthdata import render_pool

    return render_pool(240, seed=5, workers=1, chunk=120)


@pytest.fixture(scope="session")
def base_model_dir() -> str:
    from flows.settings import base_model_dir

    return base_model_dir()


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
