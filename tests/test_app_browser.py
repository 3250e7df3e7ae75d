"""The app in a real browser: Playwright for Python driving Debian's /usr/bin/chromium (never `playwright install`).

Paints with every tool of the label-map canvas (brush, rectangle, fill, eraser, undo, redo, clear, the
keyboard shortcuts) and checks, pixel by pixel, that the label map the server's model received is the one
on the page; then the live updates during a stroke, the loaders (examples, random layout, upload) and the
seed box. ``PIX2PIX_SCREENSHOT=assets/screenshot.png`` also saves the page there (for the README).
Timings: ``tests/canvas_benchmark.py``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix import Pix2Pix, example_labels, rgb_to_index
from pix2pix.layout import random_layout
from pix2pix.palette import BACKGROUND, class_index
from tests.helpers import IN_CI, WATCH_FACADE_JS, free_port, label_of

CHROMIUM = Path(os.environ.get("PIX2PIX_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parent.parent


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser test must run; .ci/run installs chromium with apt-get)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def sync_playwright():
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed (pip install playwright; never `playwright install`)")
    return sync_playwright


class SpyPix2Pix(Pix2Pix):
    """Keeps every label map the model is given, as class indices."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inputs: list[np.ndarray] = []

    def generate_batch(self, labels, seeds, stochastic=True):
        self.inputs += [label_of(x) for x in labels if isinstance(x, torch.Tensor)]
        return super().generate_batch(labels, seeds, stochastic=stochastic)


@pytest.fixture(scope="module")
def served(tiny_generator):
    import app

    model = SpyPix2Pix(tiny_generator, device="cpu")
    demo = app.build_demo(model)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH_KWARGS)
    try:
        yield model, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser(sync_playwright):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """The app's page with the few things the tests do to it."""

    def __init__(self, browser, url: str):
        self.page = browser.new_page(viewport={"width": 1280, "height": 1000})
        self.requests: list = []
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.goto(url)
        self.page.wait_for_function("() => { const c = document.querySelector('#canvas canvas');"
                                    " const i = document.querySelector('#facade img');"
                                    " return c && c.p2p && i && i.complete && i.naturalWidth > 0; }", timeout=60_000)
        self.box = self.page.locator("#canvas canvas").bounding_box()

    def grid(self) -> np.ndarray:
        values = self.page.evaluate("() => Array.from(document.querySelector('#canvas canvas').p2p.grid())")
        return np.array(values, np.uint8).reshape(256, 256)

    def state(self) -> dict:
        return self.page.evaluate("() => document.querySelector('#canvas canvas').p2p.state()")

    def at(self, x: float, y: float) -> tuple[float, float]:
        """Page coordinates of the centre of grid cell (x, y)."""
        return self.box["x"] + (x + 0.5) * self.box["width"] / 256, self.box["y"] + (y + 0.5) * self.box["height"] / 256

    def drag(self, points: list[tuple[int, int]], pause: float = 0.0) -> None:
        mouse = self.page.mouse
        mouse.move(*self.at(*points[0]))
        mouse.down()
        for point in points[1:]:
            mouse.move(*self.at(*point), steps=2)
            if pause:
                self.page.wait_for_timeout(pause * 1000)  # the pace of a hand, not a wait for a result
        mouse.up()

    def key(self, key: str) -> None:
        self.page.locator("#canvas .p2p").focus()
        self.page.keyboard.press(key)


def wait_received(model: SpyPix2Pix, page: Page, timeout: float = 30) -> np.ndarray:
    """Until the model's newest input is the page's grid; returns it."""
    deadline = time.monotonic() + timeout
    expected = page.grid()
    while time.monotonic() < deadline:
        if model.inputs and np.array_equal(model.inputs[-1], expected):
            return model.inputs[-1]
        time.sleep(0.02)  # polling the server's record of what it received
    got = model.inputs[-1] if model.inputs else None
    diff = "nothing" if got is None else f"{int((got != expected).sum())} differing pixels"
    raise AssertionError(f"the server never received the page's label map ({diff})")


def test_every_tool_paints_exactly_what_the_server_receives(served, browser, tmp_path):
    model, url = served
    page = Page(browser, url)
    try:
        start = page.grid()
        assert np.array_equal(start, label_of(example_labels()[0]))  # the first example, on the grid
        pillar, deco = class_index("pillar"), class_index("deco")

        # Brush: click the swatch named "pillar", small size, one stroke.
        swatch = page.page.locator("#canvas .p2p-swatch", has_text="pillar")
        assert "(" in swatch.get_attribute("title")  # its shortcut is shown on hover
        swatch.click()
        page.page.locator("#canvas [data-size='3']").click()
        page.drag([(40, 128), (90, 128), (140, 128)])
        after_brush = page.grid()
        changed = after_brush != start
        assert changed.any() and (after_brush[changed] == pillar).all()
        rows, cols = np.nonzero(changed)
        assert rows.min() >= 126 and rows.max() <= 130 and cols.min() >= 38 and cols.max() <= 142
        wait_received(model, page)

        # Rectangle (shortcut R), class by key ("9" is deco): exactly the dragged box.
        page.key("r")
        page.key("9")
        assert page.state()["tool"] == "rect" and page.state()["cls"] == deco
        page.drag([(20, 30), (60, 50), (80, 70)])
        grid = page.grid()
        assert (grid[30:71, 20:81] == deco).all()
        assert np.array_equal(grid[:30], after_brush[:30]) and np.array_equal(grid[71:], after_brush[71:])
        wait_received(model, page)

        # Fill (F): the connected deco box becomes pillar, nothing else changes.
        page.key("f")
        page.page.locator("#canvas .p2p-swatch", has_text="pillar").click()
        page.page.mouse.click(*page.at(50, 60))
        filled = page.grid()
        assert (filled[30:71, 20:81] == pillar).all() and (filled == deco).sum() == (grid == deco).sum() - 41 * 61
        wait_received(model, page)

        # Eraser (E) paints background.
        page.key("e")
        page.drag([(200, 200), (220, 220)])
        erased = page.grid()
        assert (erased[(erased != filled)] == BACKGROUND).all() and (erased != filled).any()
        received = wait_received(model, page)
        assert np.array_equal(received, erased)

        # Undo (Ctrl+Z) and redo (Ctrl+Shift+Z), then Clear: a plain facade.
        page.key("Control+z")
        assert np.array_equal(page.grid(), filled)
        wait_received(model, page)
        page.key("Control+Shift+z")
        assert np.array_equal(page.grid(), erased)
        page.page.locator("#canvas [data-action='clear']").click()
        assert (page.grid() == class_index("facade")).all()
        wait_received(model, page)
        page.key("Control+z")
        assert np.array_equal(page.grid(), erased)

        # Every update went as one small request: no upload, nothing over a few tens of KB.
        joins = [r for r in page.requests if r.method == "POST" and "queue/join" in r.url]
        assert joins and max(len(r.post_data or "") for r in joins) < 60_000
        assert not [r for r in page.requests if "/upload" in r.url]
        assert not [r.url for r in page.requests if not r.url.startswith(("http://127.0.0.1", "data:", "blob:"))]
        shot = os.environ.get("PIX2PIX_SCREENSHOT")
        page.page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        if shot:
            path = Path(shot) if Path(shot).is_absolute() else REPO / shot
            page.page.screenshot(path=str(path), full_page=True)
    finally:
        page.page.close()


def test_the_facade_follows_during_a_stroke(served, browser):
    model, url = served
    page = Page(browser, url)
    try:
        page.page.evaluate(WATCH_FACADE_JS)
        start = page.page.evaluate("() => performance.now()")
        points = [(30 + 4 * i, 100 + (i % 7)) for i in range(50)]
        page.drag(points, pause=0.04)  # about two seconds of painting
        up = page.page.evaluate("() => performance.now()")
        shown = page.page.evaluate("() => window.__shown")
        during = [t for t in shown if start < t < up]
        assert len(during) >= 3, f"{len(during)} facade updates during a {up - start:.0f} ms stroke"
        wait_received(model, page)  # and the final canvas was sent after the stroke
    finally:
        page.page.close()


def test_loaders_seed_box_and_variations(served, browser, tmp_path):
    from playwright.sync_api import expect

    model, url = served
    page = Page(browser, url)
    try:
        loaded = lambda: int(page.page.locator("#canvas .p2p").get_attribute("data-loaded") or 0)  # noqa: E731
        # Random layout: its seed appears, and the canvas holds exactly that layout.
        before = loaded()
        page.page.locator("#random-layout").click()
        page.page.wait_for_function(f"() => Number(document.querySelector('#canvas .p2p').dataset.loaded) > {before}")
        seed = int(page.page.locator("#layout-seed input").input_value())
        assert np.array_equal(page.grid(), rgb_to_index(random_layout(seed, 256)))
        wait_received(model, page)

        # Variations, then a stroke: the layout seed and the variations no longer describe the canvas.
        page.page.locator("#variations-btn").click()
        expect(page.page.locator("#variations img")).to_have_count(4, timeout=30_000)
        page.drag([(100, 100), (120, 120)])
        expect(page.page.locator("#variations img")).to_have_count(0, timeout=30_000)
        expect(page.page.locator("#layout-seed input")).to_have_value("", timeout=30_000)

        # An example: the canvas holds it, snapped to the grid.
        before = loaded()
        page.page.locator("#examples button.thumbnail-item").nth(2).click()
        page.page.wait_for_function(f"() => Number(document.querySelector('#canvas .p2p').dataset.loaded) > {before}")
        assert np.array_equal(page.grid(), label_of(example_labels()[2]))
        wait_received(model, page)

        # A file that is not an image: a clear error; the canvas is unchanged.
        bad = tmp_path / "not-a-label-map.png"
        bad.write_text("hello")
        kept = page.grid()
        with page.page.expect_file_chooser() as chooser:
            page.page.locator("#upload").click()
        chooser.value.set_files(str(bad))
        expect(page.page.get_by_text("not an image").first).to_be_visible(timeout=30_000)
        assert np.array_equal(page.grid(), kept)

        # A bad seed is replaced by the last good one, and the next action works.
        page.page.locator("#seed input").fill("-5")
        page.page.locator("#seed input").press("Enter")
        expect(page.page.locator("#status")).to_contain_text("using", timeout=30_000)
        expect(page.page.locator("#seed input")).to_have_value("0")
        page.drag([(10, 10), (20, 20)])
        wait_received(model, page)
        expect(page.page.locator("#status")).not_to_contain_text("⚠️", timeout=30_000)
    finally:
        page.page.close()
