"""Every kind of bad input gets a ValueError/FileNotFoundError naming the file and the problem."""

import struct
import zlib

import numpy as np
import pytest

from pix2pix import MAX_PIXELS, Pix2Pix, example_labels, example_photo, load_image


@pytest.fixture(scope="module")
def model(tiny_weights):
    return Pix2Pix.load(tiny_weights, device="cpu")


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size: decoding it would take gigabytes, checking it takes nothing."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_not_an_image(tmp_path, model):
    path = tmp_path / "notes.png"
    path.write_text("this is text")
    with pytest.raises(ValueError, match=r"notes\.png: not an image"):
        model.generate(path)


def test_truncated_image(tmp_path, model):
    data = example_labels()[0].read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.png: .*(corrupt|truncated)"):
        model.generate(path)


def test_empty_file_and_missing_file(tmp_path, model):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png: the file is empty"):
        model.generate(tmp_path / "empty.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        model.generate(tmp_path / "missing.png")


def test_a_photo_is_not_a_label_map(tmp_path, model):
    path = tmp_path / "holiday.jpg"
    path.write_bytes(example_photo(example_labels()[0]).read_bytes())
    with pytest.raises(ValueError, match=r"holiday\.jpg: this looks like a photo, not a label map .*CMP class colours"):
        model.generate(path)


def test_huge_image_is_refused_before_decoding(tmp_path, model):
    path = tmp_path / "huge.png"
    path.write_bytes(huge_png_header(100_000, 100_000))
    with pytest.raises(ValueError, match=r"huge\.png: the image is too large .*downscale"):
        model.generate(path)
    with pytest.raises(ValueError, match="too large"):
        load_image(np.zeros((1, MAX_PIXELS + 1), np.uint8))


def test_zero_size_and_bad_arrays(model):
    with pytest.raises(ValueError, match="empty"):
        model.generate(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        model.generate(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(TypeError, match="expected a path"):
        load_image(42)


def test_corrupt_weights_file(tmp_path, tiny_weights):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "config.json").write_bytes((tiny_weights / "config.json").read_bytes())
    (folder / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match=r"model\.safetensors: corrupt or mismatched weights"):
        Pix2Pix.load(folder)


def test_mismatched_weights(tmp_path, tiny_weights):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "config.json").write_text('{"ngf": 16}')
    (folder / "model.safetensors").write_bytes((tiny_weights / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="corrupt or mismatched"):
        Pix2Pix.load(folder)


def test_corrupt_official_pth(tmp_path):
    bad = tmp_path / "latest_net_G.pth"
    bad.write_bytes(b"\x80\x02not really a checkpoint")
    with pytest.raises(ValueError, match=r"latest_net_G\.pth: not a readable PyTorch checkpoint"):
        Pix2Pix.load(bad)


def test_missing_weights_and_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such weights"):
        Pix2Pix.load(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="not a weights folder"):
        Pix2Pix.load(tmp_path)
