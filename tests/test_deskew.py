import cv2
import numpy as np
import pytest

from recognizer.deskew import line_height, straighten


@pytest.mark.parametrize("angle", [8.0, 16.0, 24.0, -20.0])
def test_line_height_inverts_the_bounding_box_geometry(angle):
    length, h = 300.0, 40.0
    a = np.deg2rad(abs(angle))
    w_box = length * np.cos(a) + h * np.sin(a)
    h_box = length * np.sin(a) + h * np.cos(a)
    assert line_height(int(round(w_box)), int(round(h_box)), angle) == pytest.approx(h, abs=2.5)


def _tilted_bar(angle: float) -> np.ndarray:
    """A dark 240x30 bar on white, tilted by ``angle`` (counter-clockwise), cropped to its box."""
    canvas = np.full((400, 400), 255, np.uint8)
    canvas[185:215, 80:320] = 0
    m = cv2.getRotationMatrix2D((200, 200), angle, 1.0)
    rot = cv2.warpAffine(canvas, m, (400, 400), borderValue=255)
    ys, xs = np.where(rot < 128)
    return rot[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


@pytest.mark.parametrize("angle", [12.0, -18.0, 25.0])
def test_straighten_levels_the_line_and_keeps_only_its_band(angle):
    crop = _tilted_bar(angle)
    out = straighten(crop, angle)
    assert out is not None
    assert out.shape[1] > 3 * out.shape[0]              # wide again
    dark_rows = np.where((out < 128).mean(axis=1) > 0.5)[0]
    assert len(dark_rows) >= 0.6 * 30                   # the bar spans most columns on its rows
    wrong = straighten(crop, -angle)
    if wrong is not None:                                 # the opposite tilt does not level it
        assert ((wrong < 128).mean(axis=1) > 0.5).sum() < len(dark_rows)


def test_straighten_refuses_impossible_geometry():
    assert straighten(np.zeros((20, 400), np.uint8), 24.0) is None   # too flat for 24 degrees
