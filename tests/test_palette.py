import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pix2pix.palette
from pix2pix.palette import (
    CLASS_NAMES,
    NUM_CLASSES,
    PALETTE,
    class_index,
    hex_colors,
    index_to_rgb,
    match_palette,
    rgb_to_index,
    snap_to_palette,
)


def test_palette_is_the_cmp_table():
    assert NUM_CLASSES == 12
    assert CLASS_NAMES[0] == "background" and CLASS_NAMES[-1] == "shop"
    assert tuple(PALETTE[class_index("window")]) == (0, 128, 255)
    assert hex_colors()[0] == "#0000df"
    assert len({tuple(c) for c in PALETTE}) == 12


def test_index_rgb_round_trip():
    index = np.random.default_rng(0).integers(0, NUM_CLASSES, size=(37, 53))
    image = index_to_rgb(index)
    assert image.mode == "RGB" and image.size == (53, 37)
    assert np.array_equal(rgb_to_index(image), index)


def test_snapping_a_jpeg_noisy_real_label_map(data_dir):
    noisy = Image.open(data_dir / "label_jpeg_noisy.jpg")
    raw = np.asarray(noisy.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(raw, axis=0)) > 100  # JPEG noise: far more colours than classes
    snapped = np.asarray(snap_to_palette(noisy)).reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(snapped, axis=0)}
    assert colours <= {tuple(c) for c in PALETTE}
    assert len(colours) >= 4  # background, facade, window, ... survive
    # Snapping is stable: a snapped map snaps to itself.
    again = np.asarray(snap_to_palette(Image.fromarray(snapped.reshape(256, 256, 3)))).reshape(-1, 3)
    assert np.array_equal(again, snapped)


def test_snapping_recovers_classes_through_jpeg(tmp_path):
    from pix2pix import example_labels

    clean = Image.open(example_labels()[0]).convert("RGB")
    clean.save(tmp_path / "noisy.jpg", quality=75)
    recovered = rgb_to_index(Image.open(tmp_path / "noisy.jpg"))
    assert (recovered == rgb_to_index(clean)).mean() > 0.97  # only blurred edges may flip


def test_snap_handles_modes_and_transparency():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (255, 0, 0)
    rgba[:2, ..., 3] = 255  # top half opaque pillar red, bottom half fully transparent
    snapped = np.asarray(snap_to_palette(Image.fromarray(rgba, "RGBA")))
    assert tuple(snapped[0, 0]) == (255, 0, 0)
    assert tuple(snapped[3, 3]) == tuple(PALETTE[0])  # transparent -> background
    assert snap_to_palette(Image.new("L", (5, 5), 0)).mode == "RGB"
    p = Image.new("P", (3, 3))
    p.putpalette([0, 128, 250] * 256)
    assert tuple(np.asarray(snap_to_palette(p))[0, 0]) == (0, 128, 255)
    assert np.asarray(snap_to_palette(np.full((2, 2, 3), 250, np.uint8))).shape == (2, 2, 3)


def test_bad_index_maps_are_rejected():
    with pytest.raises(ValueError, match="class indices"):
        index_to_rgb(np.full((2, 2), 12))
    with pytest.raises(ValueError, match="unknown class"):
        class_index("roof")


def test_the_palette_depends_on_no_other_module_of_the_package():
    # images.py uses the palette; the palette must not use images.py (or anything else of ours) back.
    tree = ast.parse(Path(pix2pix.palette.__file__).read_text())
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {name for name in imported if name.startswith(("pix2pix", "."))} and not any(
        isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree)), imported
    images = Path(pix2pix.palette.__file__).with_name("images.py").read_text()
    assert "from .palette import" in images


def test_match_palette_gives_the_class_and_how_far_it_is():
    rgb = np.array([[PALETTE[2], PALETTE[2] + np.array([0, 3, 0], np.uint8), (128, 128, 128)]], np.uint8)
    index, distance = match_palette(rgb)
    assert index.tolist() == [[2, 2, int(np.argmin(((PALETTE.astype(int) - 128) ** 2).sum(1)))]]
    nearest = ((PALETTE.astype(int) - 128) ** 2).sum(1).min()
    assert distance[0, 0] == 0 and distance[0, 1] == 9 and distance[0, 2] == nearest


def test_the_palette_takes_8_bit_pixels_and_says_where_to_convert_others():
    with pytest.raises(ValueError, match="load_image scales 16-bit and float"):
        rgb_to_index(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        rgb_to_index(np.zeros((4, 4, 5), np.uint8))
    assert rgb_to_index(np.ones((2, 2), bool)).shape == (2, 2)
