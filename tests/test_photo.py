"""Phone-photo effects on training crops: shapes, label-preserving, reproducible, used by training."""
import random

import numpy as np

from recognizer.data import PoolDataset
from recognizer.photo import EFFECTS, neighbour_lines, photo_augment, tight_box
from recognizer.tokenizer import CTCTokenizer


def test_every_effect_keeps_a_32_px_uint8_crop(tiny_pool):
    rng = random.Random(0)
    for i in range(40):
        g = tiny_pool.image(i)
        for effect, _ in EFFECTS:
            out = effect(g, rng)
            assert out.dtype == np.uint8 and out.shape[0] == 32 and out.shape[1] >= 16
        out = photo_augment(g, rng, tiny_pool.image(i + 1))
        assert out.dtype == np.uint8 and out.shape[0] == 32 and 16 <= out.shape[1] <= 1024


def test_same_seed_same_crop(tiny_pool):
    g, other = tiny_pool.image(3), tiny_pool.image(4)
    a = [photo_augment(g, random.Random(7), other) for _ in range(2)]
    assert np.array_equal(a[0], a[1])


def test_neighbour_lines_keep_the_crop_and_add_ink_at_the_edges(tiny_pool):
    g = np.full((32, 120), 230, np.uint8)
    g[10:22, 10:110] = 20                       # one dark text line in the middle
    other = g.copy()
    out = neighbour_lines(g, other, random.Random(1))
    assert out.shape == g.shape
    edge = np.concatenate([out[:4], out[-4:]])
    assert edge.min() < 150                    # ink of another line at the top or bottom edge
    assert out[14:18, 20:100].mean() < 100     # the line itself still there


def test_a_tight_box_never_cuts_more_than_the_margins():
    g = np.full((32, 200), 255, np.uint8)
    rng = random.Random(0)
    for _ in range(50):
        out = tight_box(g, rng)
        assert out.shape[0] == 32 and out.shape[1] >= 0.7 * 200 * 32 / 32 * 0.8


def test_training_applies_photo_effects_to_the_requested_share(tiny_pool):
    tok = CTCTokenizer()
    plain = PoolDataset(tiny_pool, tok, train=True, seed=0, photo=0.0)
    photo = PoolDataset(tiny_pool, tok, train=True, seed=0, photo=1.0)
    changed = sum(not np.array_equal(plain[i][0], photo[i][0]) for i in range(60))
    assert changed >= 50
    assert all(photo[i][1] == plain[i][1] for i in range(20))   # labels untouched
