"""The changes ``benchmarks.real_perturbed`` applies to real photos do what its table says they do."""
import numpy as np

from benchmarks.real_perturbed import CHANGES, far, tight, tilt, turn


def _tag():
    """White tag, a dark line of 'text' (bars) with a margin all round."""
    im = np.full((40, 200, 3), 235, np.uint8)
    for x in range(30, 170, 12):
        im[12:28, x:x + 7] = 20
    return im


def test_tight_cuts_the_crop_to_the_ink():
    out = tight(_tag())
    assert out.shape[:2] == (16, 139)                    # rows 12-27, columns 30-168: text touches every edge
    assert out[0].min() < 100 and out[-1].min() < 100 and out[:, 0].min() < 100 and out[:, -1].min() < 100


def test_tight_leaves_a_crop_without_plausible_ink_alone():
    blank = np.full((40, 200, 3), 200, np.uint8)
    blank[0, 0] = 0                                      # one dark pixel is no line of text
    assert tight(blank) is blank


def test_tilt_grows_the_canvas_and_keeps_the_ink():
    im = _tag()
    out = tilt(im, 6.0)
    assert out.shape[0] > im.shape[0] and out.shape[1] >= im.shape[1]
    assert abs(int((out < 100).any(-1).sum()) - int((im < 100).any(-1).sum())) < 0.15 * (im < 100).any(-1).sum()
    assert out[0, 0].tolist() == [235, 235, 235]         # corners filled with the crop's edge colour


def test_far_keeps_the_size_but_loses_detail_and_turns_compose():
    im = _tag()
    out = far(im, 8)
    assert out.shape == im.shape and np.abs(out.astype(int) - im).max() > 50
    assert np.array_equal(turn(turn(im, 90), 270), im) and np.array_equal(turn(turn(im, 180), 180), im)


def test_every_change_is_deterministic_per_photo_and_returns_rgb_bytes():
    im = _tag()
    for name, change in CHANGES.items():
        a, b = change(im, "T2042_x.jpg"), change(im, "T2042_x.jpg")
        assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3, name
        assert np.array_equal(a, b), name
    light = CHANGES["low light + noise"]
    assert not np.array_equal(light(im, "a.jpg"), light(im, "b.jpg"))    # seeded by the photo's name
