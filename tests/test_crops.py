"""Crop definitions: one vocabulary of brand families, slices and features for synth, ingest, gate, mix, monitoring."""
from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from crops.codes import FAMILIES, FORMATS, format_family, matches_family
from crops.slices import conditions, image_condition, length_band, real_slices, tilt_band
from synth.grammar import DEFAULT_MIX
from synth.grammar import FAMILIES as GENERATORS


def test_generators_and_layouts_are_one_list_of_families():
    assert tuple(GENERATORS) == FAMILIES == tuple(FORMATS) and set(DEFAULT_MIX) == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_generated_code_has_its_familys_layout(family):
    rng = random.Random(7)
    codes = [" ".join(GENERATORS[family](rng).split()) for _ in range(300)]
    assert [c for c in codes if not matches_family(c, family)] == []


def test_format_family_names_a_real_code_or_unknown():
    assert [format_family(c) for c in ("DD1391-100", "GY7924", "VN0A2XSZW00", "SN 149337 COLOR:WSL")] == \
        ["nike", "adidas", "vans", "skechers"]
    assert format_family("a lower case note!") == "unknown" and format_family(None) == "unknown"


def test_bands():
    assert [length_band("A" * n) for n in (5, 7, 8, 10, 11, 14, 15, 21)] == \
        ["5-7", "5-7", "8-10", "8-10", "11-14", "11-14", "15+", "15+"]
    assert [tilt_band(a) for a in (0, -4.9, 5, 14.9, -15, 30)] == ["0-5", "0-5", "5-15", "5-15", "15-30", "15-30"]


def test_image_condition_and_the_slices_of_real_rows():
    assert image_condition(80, 50, 100, 40) == "inverted"
    assert image_condition(200, 20, 100, 40) == "low_contrast"
    assert image_condition(200, 50, 100, 15) == "low_res"
    assert image_condition(200, 50, 30, 40) == "blurred"
    assert image_condition(200, 50, 100, 40) == "clean"
    assert image_condition(np.nan, 50, 100, 40) == "unknown"
    rows = pd.DataFrame({"brightness": [200, 80], "contrast": [50, 50], "blur": [100, 100], "height": [40, 40]})
    assert real_slices(["DD1391-100", "GY7924"], rows) == {
        "brand": ["nike", "adidas"], "condition": ["clean", "inverted"], "length": ["8-10", "5-7"]}
    assert conditions(rows.iloc[:0]) == []


def test_readings_that_differ_only_in_confusable_glyphs():
    from crops.codes import differ_by_confusables

    assert differ_by_confusables("1SMO1611D", "1SM01611D") and differ_by_confusables("B37846", "837846")
    assert not differ_by_confusables("1SM01611D", "1SM01611D")          # the same reading
    assert not differ_by_confusables("DA8291-311", "DA8291-101")        # 3 for 1: not a glyph confusion
    assert not differ_by_confusables("FUS21G21", "FUS21G2")             # lengths differ
