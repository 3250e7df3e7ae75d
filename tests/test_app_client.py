"""The app through its API, as a gradio_client user sees it (launched on 127.0.0.1 around the tiny model), and
its event handlers called directly, as plain methods."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import app
from pix2pix import MAX_SEED, PALETTE, Pix2Pix, example_labels, example_photo
from pix2pix.palette import CLASS_NAMES, hex_colors
from tests.helpers import free_port, label_of
from webapp.handlers import Reply


class SlowPix2Pix(Pix2Pix):
    """Can hold a forward back until a test opens ``gate``, so that concurrent requests pile up behind it."""

    gate: threading.Event | None = None

    def generate_batch(self, labels, seeds, stochastic=True):
        if self.gate is not None:
            self.gate.wait(60)
        return super().generate_batch(labels, seeds, stochastic=stochastic)


def wait_until(condition, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds (a wait for a state, not a guess at a duration)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def served(tiny_generator):
    model = SlowPix2Pix(tiny_generator, device="cpu")
    demo = app.build_demo(model, max_batch_size=8)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                **app.launch_kwargs())
    try:
        client = Client(demo.local_url, verbose=False, download_files=True)
        yield model, client, demo
    finally:
        demo.close()


@pytest.fixture(scope="module")
def handlers(tiny_generator, tmp_path_factory) -> app.FacadeApp:
    return app.FacadeApp(Pix2Pix(tiny_generator, device="cpu"), cache_dir=tmp_path_factory.mktemp("cache"))


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


# ----------------------------------------------------------------------------------------------- the API
def test_server_listens_on_loopback_only(served):
    _, _, demo = served
    bound = {s.getsockname()[0] for server in demo.server.servers for s in server.sockets}
    assert bound == {"127.0.0.1"}


def test_api_lists_the_named_endpoints(served):
    client = served[1]
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    # the page's own events stay private
    assert set(endpoints) == {"/generate", "/variations", "/random_layout", "/parse_photo"}
    names = [p["parameter_name"] for p in endpoints["/generate"]["parameters"]]
    assert names == ["label", "seed", "stochastic"]


def test_generate_from_an_example(served, example):
    out = generate(served[1], example, seed=1)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8 and out.std() > 0


def test_same_seed_same_pixels_other_seed_differs(served, example):
    client = served[1]
    a, b, c = generate(client, example, seed=5), generate(client, example, seed=5), generate(client, example, seed=6)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).max() > 0


def test_stochastic_off_ignores_the_seed(served, example):
    client = served[1]
    np.testing.assert_array_equal(generate(client, example, seed=1, stochastic=False),
                                  generate(client, example, seed=2, stochastic=False))


def test_variations_are_four_and_the_first_matches_generate(served, example):
    client = served[1]
    gallery = client.predict(handle_file(str(example)), 11, True, api_name="/variations")
    images = [np.asarray(Image.open(item["image"]).convert("RGB")) for item in gallery]
    assert len(images) == app.NUM_VARIATIONS and len({im.tobytes() for im in images}) == app.NUM_VARIATIONS
    assert [item["caption"] for item in gallery] == [f"seed {s}" for s in range(11, 15)]
    assert_close(images[0], generate(client, example, seed=11))


def test_random_layout_endpoint(served):
    client = served[1]
    a = np.asarray(Image.open(client.predict(3, api_name="/random_layout")).convert("RGB"))
    b = np.asarray(Image.open(client.predict(3, api_name="/random_layout")).convert("RGB"))
    np.testing.assert_array_equal(a, b)
    assert {tuple(c) for c in a.reshape(-1, 3)} <= {tuple(c) for c in PALETTE}


def test_non_image_upload_is_an_error_and_the_server_keeps_serving(served, example, tmp_path):
    client = served[1]
    bad = tmp_path / "labels.png"
    bad.write_text("this is not an image")
    with pytest.raises(AppError, match="not an image") as info:
        client.predict(handle_file(str(bad)), 0, True, api_name="/generate")
    assert "labels.png" in str(info.value) and "/tmp/gradio" not in str(info.value)  # no server paths
    assert generate(client, example).shape == (256, 256, 3)


def test_a_photo_is_refused_as_a_label_map(served, example):
    photo = example_photo(example)
    with pytest.raises(AppError, match="this looks like a photo, not a label map") as info:
        served[1].predict(handle_file(str(photo)), 0, True, api_name="/generate")
    assert photo.name in str(info.value) and "/tmp/gradio" not in str(info.value)


def test_the_api_serves_the_models_pixels_as_lossless_webp(served, example):
    model, client, demo = served
    path = client.predict(handle_file(str(example)), 8, True, api_name="/generate")
    with Image.open(path) as served_image:
        assert Path(path).name == "facade-seed8.webp" and served_image.format == "WEBP"
        pixels = np.asarray(served_image.convert("RGB"))
    [direct] = model.generate(example, seed=8)
    np.testing.assert_array_equal(pixels, np.asarray(direct))  # not one grey level lost on the way


def test_huge_image_is_an_error_and_the_server_keeps_serving(served, example, tmp_path):
    client = served[1]
    huge = tmp_path / "huge.png"
    Image.new("1", (5000, 5000)).save(huge)  # 25 Mpx in a small file: refused from its header
    for endpoint in ("/generate", "/variations"):
        with pytest.raises(AppError, match="too large"):
            client.predict(handle_file(str(huge)), 0, True, api_name=endpoint)
    assert generate(client, example).shape == (256, 256, 3)


def test_truncated_image_is_an_error(served, example, tmp_path):
    cut = tmp_path / "cut.png"
    cut.write_bytes(example.read_bytes()[: example.stat().st_size // 2])
    with pytest.raises(AppError, match="corrupt or truncated"):
        served[1].predict(handle_file(str(cut)), 0, True, api_name="/generate")


@pytest.mark.parametrize("seed", [-3, MAX_SEED + 1, 2.5])
def test_bad_seeds_are_errors_not_wrapped(served, example, seed):
    with pytest.raises(AppError, match="seed"):
        served[1].predict(handle_file(str(example)), seed, True, api_name="/generate")


def test_variations_refuse_seeds_that_would_pass_the_maximum(served, example):
    with pytest.raises(AppError, match="at most"):
        served[1].predict(handle_file(str(example)), MAX_SEED - 1, True, api_name="/variations")


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "I;16"])
def test_other_modes_and_sizes_give_an_image(served, example, tmp_path, mode):
    path = tmp_path / f"label_{mode.replace(';', '')}.png"
    image = Image.open(example).convert("L" if mode == "I;16" else mode).resize((300, 200))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    image.save(path)
    assert generate(served[1], path).shape == (256, 256, 3)


def test_concurrent_requests_are_batched_and_a_bad_one_gets_its_own_error(served, example, tmp_path):
    model, client, demo = served
    batcher = demo.app_state.batcher
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    expected = {seed: generate(client, example, seed=seed) for seed in (20, 21, 22)}
    batcher.batch_sizes.clear()
    model.gate = threading.Event()
    try:
        # The first request holds the model until the three good ones wait behind it; they then run as one batch.
        first = client.submit(handle_file(str(example)), 19, True, api_name="/generate")
        wait_until(lambda: batcher.batch_sizes, what="the first forward to start")
        jobs = {seed: client.submit(handle_file(str(example)), seed, True, api_name="/generate") for seed in expected}
        bad_job = client.submit(handle_file(str(bad)), 0, True, api_name="/generate")
        wait_until(lambda: batcher.pending == 3, what="three requests queued behind the first")
        model.gate.set()
        first.result(timeout=30)
        for seed, job in jobs.items():
            assert_close(np.asarray(Image.open(job.result(timeout=30)).convert("RGB")), expected[seed])
        with pytest.raises(AppError, match=r"bad\.png: .*(not an image|corrupt)"):
            bad_job.result(timeout=30)
    finally:
        model.gate.set()
        model.gate = None
    assert max(batcher.batch_sizes) == 3, batcher.batch_sizes  # the three good ones, in one forward


def test_many_threads_at_once(served, example):
    client = served[1]
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


def test_the_cache_is_cleaned(served):
    assert served[2].delete_cache == (60, 900)  # every minute, files older than the default 15 minutes
    assert app.delete_cache(2) == (30, 120) and app.delete_cache(0.01) == (1, 1)
    assert app.parse_args(["--cache-max-age", "5"]).cache_max_age == 5


def _cached_files(tmp_path: Path, n: int) -> tuple[gr.Blocks, gr.Image, list[str]]:
    """A page with one image, and ``n`` files it served, each in its own folder as Gradio stores them."""
    with gr.Blocks() as demo:
        image = gr.Image(value=np.zeros((8, 8, 3), np.uint8))  # the page's own value: never deleted
    files = []
    for i in range(n):
        (tmp_path / f"hash{i}").mkdir()
        files.append(str(tmp_path / f"hash{i}" / "image.png"))
        Path(files[-1]).write_bytes(b"png")
    image.temp_files.update(files)
    return demo, image, files


def test_clean_cache_survives_requests_adding_files_meanwhile(tmp_path, monkeypatch):
    # Gradio's own schedule dies here ("Set changed size during iteration"), and the cache grows forever.
    demo, image, files = _cached_files(tmp_path, 3)
    [kept] = image.keep_in_cache
    lstat, landed = app.os.lstat, []

    def lstat_as_a_request_lands(path, *args, **kwargs):
        landed.append(str(tmp_path / f"new{len(landed)}.png"))
        image.temp_files.add(landed[-1])  # what a request thread does while the cleaner runs
        return lstat(path, *args, **kwargs)

    monkeypatch.setattr(app.os, "lstat", lstat_as_a_request_lands)
    assert app.clean_cache(demo, max_age_s=-1) == 3  # every file counts as old
    assert not any(Path(f).exists() or Path(f).parent.exists() for f in files)  # emptied folders go too
    assert Path(kept).exists() and landed and set(landed) <= image.temp_files  # nothing new is lost


def test_clean_cache_keeps_young_files(tmp_path):
    demo, image, files = _cached_files(tmp_path, 2)
    assert app.clean_cache(demo, max_age_s=3600) == 0
    assert all(Path(f).exists() for f in files) and set(files) <= image.temp_files


def test_the_cache_cleaner_runs_on_its_schedule(tmp_path):
    demo, image, [file] = _cached_files(tmp_path, 1)
    stop = app.start_cache_cleaner(demo, max_age_minutes=0.01)  # every second, files older than a second
    cleaned = lambda: not Path(file).exists() and file not in image.temp_files  # noqa: E731
    try:
        deadline = time.monotonic() + 30
        while not cleaned() and time.monotonic() < deadline:
            stop.wait(0.05)  # polling for the whole condition: off the disk *and* out of the set
        assert cleaned()
    finally:
        stop.set()


def test_a_file_leaves_the_set_before_it_leaves_the_disk(tmp_path, monkeypatch):
    # The race a full suite once hit: the file was gone while still listed. Look at the set at the very moment
    # the file is deleted.
    demo, image, [file] = _cached_files(tmp_path, 1)
    remove, listed_when_removed = app.os.remove, []

    def remove_and_look(path):
        listed_when_removed.append(path in image.temp_files)
        return remove(path)

    monkeypatch.setattr(app.os, "remove", remove_and_look)
    assert app.clean_cache(demo, max_age_s=-1) == 1
    assert listed_when_removed == [False] and not Path(file).exists() and file not in image.temp_files


def test_a_file_that_cannot_be_deleted_stays_listed(tmp_path, monkeypatch):
    demo, image, [file] = _cached_files(tmp_path, 1)

    def refuse(path):
        raise PermissionError(path)

    monkeypatch.setattr(app.os, "remove", refuse)
    assert app.clean_cache(demo, max_age_s=-1) == 0
    assert Path(file).exists() and file in image.temp_files


# ----------------------------------------------------------------------------------------------- handlers
def open_rgb(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


SKIP = {"__type__": "update"}  # gr.skip(): the page leaves that output as it is


def test_a_reply_names_every_output_and_leaves_the_rest_as_it_is():
    reply = Reply(layout_seed=3, load_error="")
    assert len(reply) == len(Reply.FIELDS) and reply.layout_seed == 3 and reply.load_error == ""
    assert reply.canvas == SKIP and reply[Reply.FIELDS.index("layout")] == SKIP
    with pytest.raises(TypeError, match="no such output"):
        Reply(facade=1)


def test_a_served_facade_is_the_models_pixels_in_a_lossless_webp_named_by_its_seed(handlers):
    path = handlers.render(handlers.label(app.from_data_url(handlers.start_canvas)), 3, True).paths[0]
    [direct] = handlers.model.generate(app.from_data_url(handlers.start_canvas), seed=3)
    data = Path(path).read_bytes()
    assert Path(path).parent.parent == handlers.cache_dir and Path(path).parent.name == hashlib.sha256(data).hexdigest()
    assert Path(path).name == "facade-seed3.webp" == app.facade_name(3)
    assert data[:4] == b"RIFF" and data[8:16] == b"WEBPVP8L"  # VP8L: lossless
    np.testing.assert_array_equal(open_rgb(path), np.asarray(direct))
    assert not [p for p in Path(path).parent.iterdir() if p.name.startswith(".")]  # no half-written leftovers


def test_encode_facade_keeps_every_pixel_of_a_noisy_image():
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    back = Image.open(io.BytesIO(app.encode_facade(Image.fromarray(noise))))
    assert back.format == "WEBP" and np.array_equal(np.asarray(back.convert("RGB")), noise)


def test_serving_threads_leave_one_core_to_python(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(app.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
        assert app.serving_threads() == 3 == torch.get_num_threads()
        monkeypatch.setattr(app.os, "sched_getaffinity", lambda pid: {0}, raising=False)
        assert app.serving_threads() == 1
        assert app.serving_threads(2) == 2
    finally:
        torch.set_num_threads(before)
    assert app.parse_args(["--threads", "1"]).threads == 1 and app.parse_args([]).threads is None
    with pytest.raises(SystemExit):
        app.parse_args(["--threads", "0"])


def test_canvas_values_in_and_out(handlers):
    url = app.to_data_url(Image.fromarray(PALETTE[np.zeros((256, 256), np.uint8)]))
    assert url.startswith("data:image/png;base64,") and len(url) < 2000
    assert np.array_equal(label_of(app.from_data_url(url)), np.zeros((256, 256)))
    for bad, message in [(None, "empty"), ("hello", "empty"), ("data:image/png;base64,!!!", "base64"),
                         ("data:image/png;base64," + "A" * (app.MAX_CANVAS_CHARS + 4), "too large")]:
        with pytest.raises(ValueError, match=message):
            app.from_data_url(bad)


def test_loaders_put_snapped_label_maps_on_the_canvas_and_nothing_else(handlers, example, tmp_path, monkeypatch):
    # The page's controller draws the facade of what a loader put on the canvas: a loader answers the canvas,
    # the layout seed (box and state) and the loaders' message line only.
    assert Reply.FIELDS == ("canvas", "layout_seed", "layout", "load_error")
    monkeypatch.setattr(handlers, "draw", lambda *a, **k: pytest.fail("a loader ran the model"))
    reply = handlers.load_example(gr.SelectData(None, {"index": 0, "value": None}))
    assert np.array_equal(label_of(app.from_data_url(reply.canvas)), label_of(example))
    assert reply.layout_seed is None and reply.layout is None and reply.load_error == ""
    random = handlers.random_layout()
    assert 0 <= random.layout_seed <= MAX_SEED and random.layout == random.layout_seed
    again = handlers.layout_from_seed(random.layout_seed, reply.canvas, None)
    assert again.canvas == random.canvas and again.layout == random.layout_seed
    bad = handlers.layout_from_seed(-2, random.canvas, random.layout)
    assert "layout seed must lie in" in bad.load_error and bad.canvas == SKIP and bad.layout == SKIP
    assert bad.layout_seed == random.layout_seed  # the canvas still holds it: the box shows its seed again
    painted = handlers.layout_from_seed("x", reply.canvas, random.layout)
    assert painted.layout_seed is None and "whole number" in painted.load_error  # the canvas holds something else
    wide = tmp_path / "wide.jpg"
    Image.open(example).convert("RGB").resize((512, 256)).save(wide, quality=80)
    uploaded = handlers.load_upload(str(wide))
    colours = np.unique(np.asarray(Image.open(io.BytesIO(app.from_data_url(uploaded.canvas))).convert("RGB"))
                        .reshape(-1, 3), axis=0)
    assert {tuple(c) for c in colours} <= {tuple(c) for c in PALETTE}  # JPEG noise snapped away
    assert "wide.jpg is 512x256: it was stretched to 256x256" in uploaded.load_error  # a note, not an error
    assert "p2p-note" in uploaded.load_error and "p2p-message" not in uploaded.load_error
    missing = handlers.load_upload(str(tmp_path / "missing.png"))
    assert "Cannot use that file as a label map" in missing.load_error and missing.canvas == SKIP
    assert "No file was uploaded" in handlers.load_upload(None).load_error


def test_a_photo_upload_becomes_a_label_map_or_says_what_to_upload_instead(handlers, tmp_path):
    example = next(p for p in example_labels() if p.stem.endswith("balconies"))  # the parser reads 0.73 of it
    photo = example_photo(example)
    reply = handlers.load_upload(str(photo))  # read by the facade parser into a map on the canvas, with a note
    labels = Image.open(io.BytesIO(app.from_data_url(reply.canvas))).convert("RGB")
    assert labels.size == (256, 256) and (label_of(labels) == label_of(example)).mean() >= 0.6
    assert f"{photo.name} looks like a photo: it was read into a label map" in reply.load_error
    assert "p2p-note" in reply.load_error and "p2p-message" not in reply.load_error
    assert "squeezed" not in reply.load_error
    wide = tmp_path / "wide.jpg"
    Image.open(photo).resize((400, 256)).save(wide)
    assert "The photo is 400x256: it was squeezed to 256x256" in handlers.load_upload(str(wide)).load_error
    parser, handlers.parser = handlers.parser, None  # an app without the parser refuses a photo, as before
    try:
        reply = handlers.load_upload(str(photo))
    finally:
        handlers.parser = parser
    assert f"{photo.name}: this looks like a photo, not a label map" in reply.load_error
    assert "upload a label map instead" in reply.load_error and "paint one on the canvas" in reply.load_error
    assert reply.canvas == SKIP  # the canvas stays as it was


def test_parse_photo_endpoint_returns_the_label_map(served, tmp_path):
    client = served[1]
    example = next(p for p in example_labels() if p.stem.endswith("balconies"))
    photo = example_photo(example)
    labels = Image.open(client.predict(handle_file(str(photo)), api_name="/parse_photo")).convert("RGB")
    assert labels.size == (256, 256) and {tuple(c) for c in np.asarray(labels).reshape(-1, 3)} <= {
        tuple(c) for c in PALETTE}
    assert (label_of(labels) == label_of(example)).mean() >= 0.6
    path = tmp_path / "parsed.png"
    labels.save(path)
    assert generate(client, path).shape == (256, 256, 3)  # a map to draw from, like any other
    bad = tmp_path / "photo.jpg"
    bad.write_text("not an image")
    with pytest.raises(AppError, match="not an image") as info:
        client.predict(handle_file(str(bad)), api_name="/parse_photo")
    assert "photo.jpg" in str(info.value) and "/tmp/gradio" not in str(info.value)


def test_page_events_answer_with_messages_not_errors_and_hide_gradios_progress(served):
    # A failing page event (a photo upload, a bad layout seed) says why in a message line next to its cause; no
    # page event shows Gradio's progress overlay or its "Error" badges (the page has its own busy state).
    demo = served[2]
    page_events = [fn for fn in demo.fns.values() if fn.api_visibility == "private"]
    assert len(page_events) >= 8
    assert {fn.show_progress for fn in page_events} == {"hidden"}, [(fn.name, fn.show_progress) for fn in page_events]
    model_events = [fn for fn in page_events if fn.fn is not None]
    outputs = {tuple(block._id for block in fn.outputs) for fn in model_events if fn.name != "<lambda>"}
    assert len(outputs) == 1 and len(next(iter(outputs))) == len(Reply.FIELDS)  # one set of outputs for all
    busy = [fn for fn in model_events if fn.js and "p2pBusy" in fn.js]
    done = [fn for fn in page_events if fn.fn is None and fn.js and "p2pDone" in fn.js]
    assert len(busy) == len(done) >= 4 and {fn.trigger_after for fn in done} == {fn._id for fn in busy}
    assert all(not fn.trigger_only_on_success for fn in done)  # the busy state ends on failure too


def _render(base: str, grid: np.ndarray | bytes, query: str):
    import urllib.error
    import urllib.request
    import zlib

    body = grid if isinstance(grid, bytes) else zlib.compress(grid.astype(np.uint8).tobytes())
    request = urllib.request.Request(f"{base}p2p/render?{query}", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_the_pages_renderer_route_draws_the_models_facades_and_refuses_bad_requests(served, example):
    import json
    import zlib

    model, _, demo = served
    base = demo.local_url
    grid = label_of(example)
    status, headers, body = _render(base, grid, "seed=3&count=1&stochastic=1")
    assert status == 200 and headers["Cache-Control"] == "no-store" and headers["X-P2P-Lengths"] == str(len(body))
    assert float(headers["X-P2P-Seconds"]) >= 0 and int(headers["X-P2P-Batch"]) >= 1
    [direct] = model.generate(Image.fromarray(PALETTE[grid]), seed=3)
    assert_close(np.asarray(Image.open(io.BytesIO(body)).convert("RGB")), np.asarray(direct))
    # Four seeds from the seed on, back to back; the variation off: the same facade for every seed.
    status, headers, body = _render(base, grid, f"seed={MAX_SEED - 3}&count=4&stochastic=0")
    lengths = [int(n) for n in headers["X-P2P-Lengths"].split(",")]
    assert status == 200 and len(lengths) == 4 and sum(lengths) == len(body)
    pictures = [body[sum(lengths[:i]):sum(lengths[:i + 1])] for i in range(4)]
    assert len(set(pictures)) == 1 and pictures[0][:4] == b"RIFF"
    for bad_query, body_, words in [("seed=-1", grid, "the seed must lie in"),
                                    (f"seed={MAX_SEED}&count=4", grid, "the seed must lie in"),
                                    ("seed=x", grid, "whole numbers"), ("count=9", grid, "count must lie in"),
                                    ("seed=0", b"hello", "not deflated"),
                                    ("seed=0", zlib.compress(bytes(100)), "256 x 256 class indices"),
                                    ("seed=0", zlib.compress(bytes([12]) * 65536), "class indices must lie in")]:
        status, _, text = _render(base, body_, bad_query)
        assert status == 400 and words in text.decode(), (bad_query, text)
    status, headers, body = _get(f"{base}p2p/page.json")
    page = json.loads(body)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert page["variations"] == app.NUM_VARIATIONS == 4 and page["start"]["seed"] == 0
    assert page["names"] == {"seed": "facade-seed{seed}", "any": "facade-any-seed"}  # webapp.serving's
    assert page["model"]["url"].endswith("-int8.onnx") and page["model"]["download"] > 0


def test_canvas_is_the_palette_with_class_names_and_shortcuts(handlers):
    canvas = app.canvas_component(handlers)
    assert [c["name"] for c in canvas.props["classes"]] == list(CLASS_NAMES)
    assert [c["color"] for c in canvas.props["classes"]] == hex_colors()
    assert len({c["key"] for c in canvas.props["classes"]}) == len(CLASS_NAMES)
    assert canvas.props["size"] == 256 and canvas.elem_id == "canvas"
    assert "<canvas" in canvas.html_template
    assert "window.p2pPage.canvasChanged" in canvas.js_on_load  # every change goes to the page's controller


# ----------------------------------------------------------------------------------------------- command line
def test_missing_weights_exit_with_the_library_message(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("PIX2PIX_WEIGHTS", raising=False)
    monkeypatch.setattr("pix2pix.weights.BUNDLED_WEIGHTS", tmp_path / "none")
    assert app.main(["--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "No generator weights found" in err and "Traceback" not in err


def test_bad_weights_path_exits_cleanly(tmp_path, capsys):
    assert app.main(["--weights", str(tmp_path / "nope")]) == 1
    assert "no such weights" in capsys.readouterr().err


def test_cli_defaults_are_private(monkeypatch):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    args = app.parse_args([])
    assert args.host == "127.0.0.1" and args.share is False
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    assert app._analytics_enabled() is False  # off unless asked for
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")
    assert app._analytics_enabled() is True


def test_zero_gpu_wraps_the_forward_only_when_asked(monkeypatch, tiny_generator):
    import sys
    import types

    wrapped = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda fn: wrapped.append(fn) or fn
    monkeypatch.setitem(sys.modules, "spaces", fake)
    model = Pix2Pix(tiny_generator, device="cpu")
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    app.FacadeApp(model)
    assert not wrapped
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    wrapped_app = app.FacadeApp(model)
    assert len(wrapped) == 1 and open_rgb(wrapped_app.start_facade).shape == (256, 256, 3)
    monkeypatch.setitem(sys.modules, "spaces", None)  # not installed: no hard dependency, no wrapping
    plain = app.FacadeApp(model)
    assert len(wrapped) == 1 and open_rgb(plain.start_facade).shape == (256, 256, 3)


def _get(url: str, **headers: str):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_the_app_serves_what_the_browser_needs_from_itself_cached_and_cross_origin_isolated(served):
    import gzip
    import json

    import onnxruntime as ort

    from webapp.browser import ORT_DIR, ORT_VERSION

    model, _, demo = served
    base = demo.local_url
    status, headers, body = _get(base)
    assert status == 200 and headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"  # so WebAssembly may use threads

    status, headers, body = _get(f"{base}p2p/page.json")
    info = json.loads(body)["model"]  # what the page's worker needs to load and feed the model
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert info["shapes"] == [[64, 4, 4], [64, 8, 8], [64, 16, 16]] and info["nz"] == 0 and info["size"] == 256
    assert info["ort"] == f"p2p/ort/{ORT_VERSION}/"
    status, headers, onnx_bytes = _get(base + info["url"])
    assert status == 200 and "immutable" in headers["Cache-Control"] and len(onnx_bytes) == info["bytes"]
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["labels", "mask0", "mask1", "mask2"]
    assert _get(f"{base}p2p/model/0000000000000000.onnx")[0] == 404  # only the served model's name

    wasm = f"{base}p2p/ort/{ORT_VERSION}/ort-wasm-simd-threaded.wasm"
    status, headers, body = _get(wasm, **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip" and "immutable" in headers["Cache-Control"]
    assert headers["Content-Type"] == "application/wasm"
    raw = (ORT_DIR / "ort-wasm-simd-threaded.wasm").read_bytes()
    assert gzip.decompress(body) == raw and len(body) < len(raw) / 2
    assert _get(wasm)[2] == raw  # as it is, to a client that takes no gzip
    assert _get(f"{base}p2p/ort/0.0.1/ort-wasm-simd-threaded.wasm")[0] == 404  # another version: not here
    assert _get(f"{base}p2p/ort/{ORT_VERSION}/..%2Fweights%2Fmodel.safetensors")[0] == 404
    status, headers, body = _get(f"{base}p2p/js/controller.js")
    assert status == 200 and headers["Cache-Control"] == "no-cache" and b"export async function start" in body
    assert _get(f"{base}p2p/js/nothing.js")[0] == 404
