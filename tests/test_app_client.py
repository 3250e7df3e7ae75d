"""The app through its API, as a gradio_client user sees it: launched on 127.0.0.1 around the tiny model."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

import app  # noqa: E402
from pix2pix import PALETTE, Pix2Pix, example_labels  # noqa: E402


class SpyPix2Pix(Pix2Pix):
    """Records the size of every forward; can hold a forward back so concurrent requests pile up."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_sizes: list[int] = []
        self.hold = 0.0

    def generate_batch(self, labels, seeds, stochastic=True):
        self.batch_sizes.append(len(labels))
        if self.hold:
            time.sleep(self.hold)  # simulates a slow model so that requests queue (not a wait for a condition)
        return super().generate_batch(labels, seeds, stochastic=stochastic)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_generator):
    model = SpyPix2Pix(tiny_generator, device="cpu")
    demo = app.build_demo(model, max_batch_size=8)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **app.LAUNCH_KWARGS)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=True)
        yield model, client
    finally:
        demo.close()


@pytest.fixture(scope="module")
def example() -> Path:
    return example_labels()[0]


def assert_close(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to one grey level: a batched forward may round a few pixels differently on the CPU."""
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def generate(client, label, seed=0, stochastic=True) -> np.ndarray:
    path = client.predict(handle_file(str(label)), seed, stochastic, api_name="/generate")
    return np.asarray(Image.open(path).convert("RGB"))


def test_server_binds_localhost_only(served):
    _, client = served
    assert client.src.startswith("http://127.0.0.1:")


def test_api_lists_the_named_endpoints(served):
    _, client = served
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/generate", "/variations", "/random_layout"} <= set(endpoints)
    names = [p["parameter_name"] for p in endpoints["/generate"]["parameters"]]
    assert names == ["label", "seed", "stochastic"]


def test_generate_from_an_example(served, example):
    out = generate(served[1], example, seed=1)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert out.std() > 0


def test_same_seed_same_pixels_other_seed_differs(served, example):
    _, client = served
    a, b, c = generate(client, example, seed=5), generate(client, example, seed=5), generate(client, example, seed=6)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).max() > 0


def test_stochastic_off_ignores_the_seed(served, example):
    _, client = served
    a = generate(client, example, seed=1, stochastic=False)
    b = generate(client, example, seed=2, stochastic=False)
    np.testing.assert_array_equal(a, b)


def test_variations_are_four_and_the_first_matches_generate(served, example):
    _, client = served
    gallery = client.predict(handle_file(str(example)), 11, True, api_name="/variations")
    assert len(gallery) == app.NUM_VARIATIONS
    images = [np.asarray(Image.open(item["image"]).convert("RGB")) for item in gallery]
    assert all(im.shape == (256, 256, 3) for im in images)
    assert len({im.tobytes() for im in images}) == app.NUM_VARIATIONS
    assert_close(images[0], generate(client, example, seed=11))


def test_random_layout_endpoint(served):
    _, client = served
    a = np.asarray(Image.open(client.predict(3, api_name="/random_layout")).convert("RGB"))
    b = np.asarray(Image.open(client.predict(3, api_name="/random_layout")).convert("RGB"))
    np.testing.assert_array_equal(a, b)
    colours = {tuple(c) for c in a.reshape(-1, 3)}
    assert colours <= {tuple(c) for c in PALETTE}


def test_non_image_upload_is_an_error_and_the_server_keeps_serving(served, example, tmp_path):
    _, client = served
    bad = tmp_path / "labels.png"
    bad.write_text("this is not an image")
    with pytest.raises(AppError, match="not an image") as info:
        client.predict(handle_file(str(bad)), 0, True, api_name="/generate")
    assert "labels.png" in str(info.value) and "/tmp/gradio" not in str(info.value)  # no server paths
    assert generate(client, example).shape == (256, 256, 3)


def test_huge_image_is_an_error_and_the_server_keeps_serving(served, example, tmp_path):
    _, client = served
    huge = tmp_path / "huge.png"
    Image.new("1", (9000, 9000)).save(huge)  # 81 Mpx but a small file: rejected from its header
    with pytest.raises(AppError, match="too large"):
        client.predict(handle_file(str(huge)), 0, True, api_name="/generate")
    with pytest.raises(AppError, match="too large"):
        client.predict(handle_file(str(huge)), 0, True, api_name="/variations")
    assert generate(client, example).shape == (256, 256, 3)


def test_truncated_image_is_an_error(served, example, tmp_path):
    _, client = served
    data = example.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AppError, match="corrupt or truncated"):
        client.predict(handle_file(str(cut)), 0, True, api_name="/generate")


def test_bad_seed_is_an_error(served, example):
    _, client = served
    with pytest.raises(AppError, match="seed"):
        client.predict(handle_file(str(example)), -3, True, api_name="/generate")


@pytest.mark.parametrize("mode", ["RGBA", "L", "P"])
def test_rgba_greyscale_and_palette_uploads_give_an_image(served, example, tmp_path, mode):
    _, client = served
    path = tmp_path / f"label_{mode}.png"
    Image.open(example).convert(mode).resize((300, 200)).save(path)
    assert generate(client, path).shape == (256, 256, 3)


def test_all_background_canvas_gives_an_image(served, tmp_path):
    _, client = served
    path = tmp_path / "empty.png"
    Image.new("RGB", (256, 256), tuple(int(c) for c in PALETTE[0])).save(path)
    out = generate(client, path)
    assert out.shape == (256, 256, 3)


def test_concurrent_requests_are_batched_and_a_bad_one_does_not_spoil_the_batch(served, example, tmp_path):
    model, client = served
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    expected = {seed: generate(client, example, seed=seed) for seed in (20, 21, 22)}
    model.batch_sizes.clear()
    model.hold = 0.5
    try:
        # The first request holds the model while the others queue up behind it, then run as one batch.
        first = client.submit(handle_file(str(example)), 19, True, api_name="/generate")
        deadline = time.monotonic() + 10
        while not model.batch_sizes and time.monotonic() < deadline:
            time.sleep(0.01)  # polling for the first forward to start
        jobs = {seed: client.submit(handle_file(str(example)), seed, True, api_name="/generate") for seed in expected}
        bad_job = client.submit(handle_file(str(bad)), 0, True, api_name="/generate")
        first.result(timeout=30)
        for seed, job in jobs.items():
            assert_close(np.asarray(Image.open(job.result(timeout=30)).convert("RGB")), expected[seed])
        try:
            bad_result = bad_job.result(timeout=30)
        except AppError:
            bad_result = None  # alone in its batch: a gr.Error
        assert bad_result is None  # in a batch with others: no image, and the others are unharmed
    finally:
        model.hold = 0.0
    assert max(model.batch_sizes) > 1, model.batch_sizes


def test_many_threads_at_once(served, example):
    _, client = served
    results, errors = {}, []

    def call(seed):
        try:
            results[seed] = generate(Client(client.src, verbose=False), example, seed=seed)
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(e)

    threads = [threading.Thread(target=call, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 6
    assert_close(results[3], generate(client, example, seed=3))


def test_missing_weights_exit_with_the_library_message(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("PIX2PIX_WEIGHTS", raising=False)
    monkeypatch.setattr("pix2pix.predictor.BUNDLED_WEIGHTS", tmp_path / "none")
    assert app.main(["--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "No generator weights found" in err and "Traceback" not in err


def test_bad_weights_path_exits_cleanly(tmp_path, capsys):
    assert app.main(["--weights", str(tmp_path / "nope")]) == 1
    assert "no such weights" in capsys.readouterr().err


def test_cli_defaults_are_private():
    args = app.parse_args([])
    assert args.host in ("127.0.0.1", __import__("os").environ.get("GRADIO_SERVER_NAME"))
    assert args.share is False
    assert app._analytics_enabled() is False


def test_editor_brush_is_the_fixed_palette_and_the_legend_follows_its_order(tiny_generator):
    import gradio as gr

    from pix2pix.palette import CLASS_NAMES, hex_colors

    demo = app.build_demo(Pix2Pix(tiny_generator, device="cpu"))
    editors = [b for b in demo.blocks.values() if isinstance(b, gr.ImageEditor)]
    assert len(editors) == 1
    editor = editors[0]
    assert editor.brush.colors == hex_colors() and editor.brush.color_mode == "fixed"
    assert editor.canvas_size == (256, 256) and editor.eraser is not False
    legend = app.legend_html()
    positions = [legend.index(f"</span>{name}</span>") for name in CLASS_NAMES]
    assert positions == sorted(positions)
    assert all(colour in legend for colour in hex_colors())
    assert demo.analytics_enabled is False


def test_zero_gpu_wraps_the_forward_only_when_asked(monkeypatch, tiny_generator):
    import sys
    import types

    wrapped = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda fn: wrapped.append(fn) or fn
    monkeypatch.setitem(sys.modules, "spaces", fake)
    model = Pix2Pix(tiny_generator, device="cpu")
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    app.Engine(model)
    assert not wrapped
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    app.Engine(model)
    assert len(wrapped) == 1
    monkeypatch.delitem(sys.modules, "spaces")
    monkeypatch.setitem(sys.modules, "spaces", None)  # not installed: no hard dependency
    app.Engine(model)
