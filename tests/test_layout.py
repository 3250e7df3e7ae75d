"""The random facade layout generator: deterministic per seed, palette colours only, facade-like structure."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pix2pix import PALETTE
from pix2pix.layout import random_layout, random_layout_indices
from pix2pix.palette import class_index, rgb_to_index

SEEDS = range(60)
BACKGROUND, FACADE, WINDOW, DOOR, SHOP = (class_index(c) for c in ("background", "facade", "window", "door", "shop"))
SILL, CORNICE = class_index("sill"), class_index("cornice")


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max(), cols.min(), cols.max()


def test_same_seed_same_layout_other_seeds_differ():
    a, b = np.asarray(random_layout(7)), np.asarray(random_layout(7))
    np.testing.assert_array_equal(a, b)
    assert len({random_layout(s).tobytes() for s in range(20)}) == 20


def test_does_not_touch_the_global_rng():
    np.random.seed(0)
    before = np.random.random()
    np.random.seed(0)
    random_layout(3)
    assert np.random.random() == before


def test_rgb_image_of_palette_colours_only():
    image = random_layout(1)
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (256, 256)
    for seed in SEEDS:
        colours = np.unique(np.asarray(random_layout(seed)).reshape(-1, 3), axis=0)
        assert {tuple(c) for c in colours} <= {tuple(c) for c in PALETTE}


def test_indices_and_image_agree():
    m = random_layout_indices(5)
    assert m.dtype == np.uint8 and m.shape == (256, 256)
    np.testing.assert_array_equal(rgb_to_index(random_layout(5)), m)


@pytest.mark.parametrize("seed", SEEDS)
def test_plausible_structure(seed):
    m = random_layout_indices(seed)
    h, w = m.shape
    # A facade block: every non-background pixel lies in one rectangle that is filled, stands on the
    # bottom edge and covers a good part of the image; background lies above or beside it.
    top, bottom, left, right = bbox(m != BACKGROUND)
    assert bottom == h - 1
    assert not (m[top:bottom + 1, left:right + 1] == BACKGROUND).any()
    assert (bottom - top + 1) * (right - left + 1) > 0.5 * h * w
    assert (m == FACADE).mean() > 0.1
    # A cornice along its top.
    assert (m[top, left:right + 1] == CORNICE).all()
    # Windows, with sills, inside the facade and clear of its edges.
    assert (m == WINDOW).sum() > 0.02 * h * w and (m == SILL).any()
    wt, wb, wl, wr = bbox(m == WINDOW)
    assert top < wt and wb < bottom and left <= wl and wr <= right
    # The door (or the shop front) touches the bottom of the facade.
    entrance = (m == DOOR) | (m == SHOP)
    assert entrance[bottom].any()
    if (m == DOOR).any():
        assert bbox(m == DOOR)[1] == bottom
    # Several floors: windows appear in at least two separate horizontal bands.
    rows_with_windows = np.flatnonzero((m == WINDOW).any(axis=1))
    assert (np.diff(rows_with_windows) > 1).sum() >= 1


def test_every_class_shows_up_across_seeds():
    seen = set()
    for seed in range(200):
        seen |= set(np.unique(random_layout_indices(seed)).tolist())
    assert seen == set(range(len(PALETTE)))


@pytest.mark.parametrize("size", [64, 128, 512])
def test_other_sizes(size):
    m = random_layout_indices(11, size)
    assert m.shape == (size, size)
    assert (m == FACADE).any() and (m == WINDOW).any()


def test_rejects_tiny_sizes():
    with pytest.raises(ValueError, match="at least"):
        random_layout(0, size=8)
