"""Faithful decoding and bounded cost: EXIF orientation, 16-bit and float images, NaN, non-square maps, the
palette snapper's fast path, the size limit, photos refused as label maps, and one seed rule everywhere in
the library and the CLI."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import pix2pix.images
from pix2pix import (
    MAX_PIXELS,
    MAX_SEED,
    PALETTE,
    Pix2Pix,
    check_seed,
    example_labels,
    example_photo,
    load_image,
    rgb_to_index,
)
from pix2pix.images import NotALabelMapError, label_grid
from pix2pix.palette import nearest_class


@pytest.fixture(scope="module")
def model(tiny_weights):
    return Pix2Pix.load(tiny_weights, device="cpu")


def _classes(image) -> set[int]:
    return set(np.unique(rgb_to_index(image)).tolist())


# ----------------------------------------------------------------------------------------------- decoding
def test_exif_orientation_is_applied():
    labels = np.empty((20, 40, 3), np.uint8)
    labels[:] = PALETTE[1]
    labels[:, :10] = PALETTE[2]  # windows on the left, as the camera saw it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    buf = io.BytesIO()
    Image.fromarray(labels).save(buf, "PNG", exif=exif)
    image = load_image(buf.getvalue())
    assert image.size == (20, 40)  # upright: portrait
    top = rgb_to_index(np.asarray(image.convert("RGB"))[:10])
    assert (top == 2).all()  # the left band is now on top


def test_16_bit_greyscale_png_is_scaled_not_clipped():
    grey = np.zeros((32, 64), np.uint16)
    grey[:, 32:] = 65535
    grey[:16, :32] = 32896  # 128 * 257: mid grey
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I")
    image = load_image(buf.getvalue())
    assert image.mode == "L" and sorted(np.unique(np.asarray(image)).tolist()) == [0, 128, 255]
    assert len(_classes(image)) >= 2  # was one class: everything clipped to white


def test_float_tiff_and_float_arrays_are_scaled():
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (16, 1))
    buf = io.BytesIO()
    Image.fromarray(ramp, mode="F").save(buf, "TIFF")
    image = load_image(buf.getvalue())
    assert image.mode == "L" and np.asarray(image)[0, 0] == 0 and np.asarray(image)[0, -1] == 255
    assert len(_classes(image)) > 1
    assert load_image(ramp).dtype == np.uint8 and load_image(ramp).max() == 255
    assert load_image(np.full((4, 4), 65535, np.uint16)).max() == 255


def test_nan_and_infinity_are_refused(model):
    bad = np.zeros((8, 8, 3), np.float32)
    bad[2, 2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.generate(bad)
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_image(np.full((4, 4), np.inf))


def test_non_square_is_stretched_and_keep_size_restores_it(model):
    labels = np.empty((100, 300, 3), np.uint8)
    labels[:] = PALETTE[1]
    labels[:, :150] = PALETTE[2]
    grid, size = label_grid(labels)
    assert size == (300, 100) and grid.size == (256, 256)
    assert (rgb_to_index(grid)[:, :128] == 2).all() and (rgb_to_index(grid)[:, 128:] == 1).all()  # stretched
    [image] = model.generate(labels, seed=0, keep_size=True)
    assert image.size == (300, 100)


def test_label_to_tensor_is_the_grid_as_a_tensor(tmp_path):
    from pix2pix.images import image_to_tensor, label_to_tensor

    noisy = tmp_path / "noisy.jpg"
    Image.open(example_labels()[1]).convert("RGB").resize((300, 200)).save(noisy, quality=70)
    for source in (*example_labels()[:2], noisy):
        tensor, size = label_to_tensor(source)
        grid, grid_size = label_grid(source)
        assert size == grid_size and tensor.shape == (3, 256, 256)
        assert torch.equal(tensor, image_to_tensor(grid))  # the same numbers, straight from the class indices


# ----------------------------------------------------------------------------------------------- cost
def test_snapping_works_on_the_256_grid_whatever_the_upload(monkeypatch):
    seen = []
    real = pix2pix.images.match_palette
    monkeypatch.setattr(pix2pix.images, "match_palette", lambda im: seen.append(im.size) or real(im))
    big = np.empty((2048, 2048, 3), np.uint8)
    big[:] = PALETTE[0]
    big[::2, ::2] = np.clip(PALETTE[5].astype(int) + 3, 0, 255)  # JPEG-like noise near "sill"
    grid, size = label_grid(big)
    assert seen == [(256, 256)] and size == (2048, 2048)
    # Shrinking first gives exactly what snapping first would.
    full = Image.fromarray(PALETTE[rgb_to_index(big)]).resize((256, 256), Image.NEAREST)
    assert np.array_equal(np.asarray(grid), np.asarray(full))


def test_the_size_limit_is_4096_squared():
    assert MAX_PIXELS == 4096 * 4096
    with pytest.raises(ValueError, match="too large"):
        load_image(Image.new("RGB", (4097, 4096)))
    assert load_image(Image.new("RGB", (4096, 4096))).size == (4096, 4096)


def test_fast_snapper_equals_the_nearest_colour_everywhere():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    pixels[:50] = PALETTE[rng.integers(0, 12, (50, 300))]  # exact palette pixels take the lookup path
    brute = ((pixels.astype(np.int32)[:, :, None, :] - PALETTE.astype(np.int32)) ** 2).sum(-1).argmin(-1)
    assert np.array_equal(rgb_to_index(pixels), brute)
    # Ties go to the lower class index, as before.
    tie = np.array([[(PALETTE[0].astype(int) + PALETTE[1].astype(int)) // 2]], np.uint8)
    assert rgb_to_index(tie)[0, 0] == nearest_class(tie.reshape(1, 3))[0]


# ----------------------------------------------------------------------------------------------- photos
def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.mark.parametrize("label", example_labels(), ids=lambda p: p.stem)
def test_a_photo_is_refused_and_a_label_map_in_any_state_is_not(model, label):
    photo = example_photo(label)
    with pytest.raises(NotALabelMapError, match=rf"{photo.name}: this looks like a photo, not a label map"):
        label_grid(photo)
    with pytest.raises(ValueError, match="like the label maps in assets/examples"):  # the library says what instead
        model.generate(photo, seed=0)
    with pytest.raises(NotALabelMapError):
        label_grid(Image.open(photo).convert("L"))  # a greyscale photo too
    clean = Image.open(label)
    for version in (clean, _jpeg(clean, 50), clean.convert("RGB").resize((128, 128), Image.BILINEAR).resize((700, 700)),
                    clean.convert("L")):  # JPEG noise, blur, or a greyscale map of flat levels: still label maps
        assert label_grid(version)[0].size == (256, 256)


def test_flat_images_and_a_label_map_beside_a_photo_are_label_maps():
    rng = np.random.default_rng(0)
    labels = np.empty((64, 64, 3), np.uint8)
    labels[:] = PALETTE[1]
    labels[10:30, 20:40] = PALETTE[2]
    photo = np.clip(labels.astype(int) // 2 + rng.integers(0, 96, (64, 64, 3)), 0, 255).astype(np.uint8)
    with pytest.raises(NotALabelMapError):
        label_grid(photo)  # noise of a photo alone
    for image in (np.concatenate([photo, labels], axis=1),  # photo | labels, as the facades pairs are stored
                  # one colour: nothing to call a photo
                  np.zeros((50, 70, 3), np.uint8), Image.new("L", (300, 120), 40)):
        assert label_grid(image)[0].size == (256, 256)


def test_the_cli_refuses_a_photo_and_goes_on(tmp_path, tiny_weights, capsys):
    from pix2pix.__main__ import main

    photo, label = example_photo(example_labels()[2]), example_labels()[2]
    assert main([str(photo), str(label), "-o", str(tmp_path), "--weights", str(tiny_weights), "--seed", "0"]) == 1
    err = capsys.readouterr().err
    assert f"{photo.name}: this looks like a photo, not a label map" in err and "Traceback" not in err
    assert [p.name for p in tmp_path.iterdir()] == [f"{label.stem}_seed0.png"]


# ----------------------------------------------------------------------------------------------- seeds
@pytest.mark.parametrize("bad", [-1, -5, MAX_SEED + 1, 99999999999, 1.5, "12a", None, True, float("nan")])
def test_bad_seeds_are_refused_never_wrapped(model, bad):
    with pytest.raises(ValueError, match="seed"):
        check_seed(bad)
    if bad is not None:
        with pytest.raises(ValueError, match="seed"):
            model.generate(example_labels()[0], seed=bad)


def test_seed_range_must_fit(model):
    assert check_seed(MAX_SEED) == MAX_SEED and check_seed(7.0) == 7 and check_seed("42") == 42
    with pytest.raises(ValueError, match=r"would pass"):
        model.generate(example_labels()[0], seed=MAX_SEED, num_samples=2)
    with pytest.raises(ValueError, match="seed"):
        model.generate_batch([example_labels()[0]], [-1])
    assert len(model.generate(example_labels()[0], seed=MAX_SEED - 1, num_samples=2)) == 2


@pytest.mark.parametrize("args, message", [
    (["--seed", "-5", "--samples", "2"], "must lie in 0..2147483647, got -5"),
    (["--seed", "99999999999"], "must lie in 0..2147483647"),
    (["--seed", str(MAX_SEED), "--samples", "2"], "would pass"),
])
def test_cli_refuses_bad_seeds(tmp_path, tiny_weights, capsys, args, message):
    from pix2pix.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main([str(example_labels()[0]), "-o", str(tmp_path / "out"), "--weights", str(tiny_weights), *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_out_is_a_file(tmp_path, tiny_weights, capsys):
    from pix2pix.__main__ import main

    (tmp_path / "taken").write_text("x")
    with pytest.raises(SystemExit) as exit_:
        main([str(example_labels()[0]), "-o", str(tmp_path / "taken"), "--weights", str(tiny_weights)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "is a file, not a folder" in err and "Traceback" not in err
