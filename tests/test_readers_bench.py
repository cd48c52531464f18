"""The arithmetic behind ``benchmarks.readers``: what a perfect arbiter between a model's readers could reach."""
import pytest

from benchmarks.readers import tally, target_points


def test_the_ceiling_counts_a_crop_when_any_reader_reads_it_right():
    labels = ["AB12", "CD 34", "EF56", "GH78"]
    t = tally(labels, {"served": ["AB12", "CD3", "EF56", "X"],
                       "crnn": ["AB12", "CD 34", "E", "Y"],
                       "photo_reader": ["AB1", "CD3", "EF56", "Z"]})
    assert t["right"] == {"served": 2, "crnn": 2, "photo_reader": 1}
    assert (t["any_reader_right"], t["no_reader_right"]) == (3, 1)
    assert t["only_this_reader_right"] == {"served": 0, "crnn": 1, "photo_reader": 0}


def test_a_reader_that_skipped_a_crop_is_refused():
    with pytest.raises(ValueError, match="every reader"):
        tally(["AB12", "CD34"], {"served": ["AB12", "CD34"], "crnn": ["AB12"]})


def test_the_target_is_ten_points_or_half_the_remaining_error():
    assert target_points(0.647) == 10.0
    assert target_points(0.893) == 5.35
