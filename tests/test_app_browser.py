"""The app in a real browser: Playwright for Python driving Debian's /usr/bin/chromium (never `playwright install`).

Paints with every tool of the label-map canvas (brush, rectangle, fill, eraser, undo, redo, clear, the
keyboard shortcuts) and checks, pixel by pixel, that the label map the server's model received is the one
on the page; then the live updates during a stroke, the loaders (examples, random layout, upload) and the
seed box; shortcuts from anywhere on the page; photos and bad values, each said once next to its cause;
class outlines; the first screen of a desktop (1280x800, 1440x900) holding the canvas, the facade, the seed
controls and the variations; the busy state; the PNG downloads and the label map's round trip; and the page
on a phone (390x844, touch), painting with a finger with the facade in view.
``PIX2PIX_SCREENSHOT=assets/screenshot.png`` also saves the desktop page there, and
``PIX2PIX_PHONE_SCREENSHOT=path.png`` the phone's screen (the README's pictures are made by
``python -m tests.benchmarks.screenshots``). Timings: ``python -m tests.benchmarks.canvas_benchmark``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import Pix2Pix, UnetGenerator, example_labels, rgb_to_index
from pix2pix.layout import random_layout
from pix2pix.palette import BACKGROUND, PALETTE, class_index
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, WATCH_FACADE_JS, label_of, serve_demo, sync_playwright_or_skip

REPO = Path(__file__).resolve().parent.parent
PHONE = dict(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True, device_scale_factor=2)
DESKTOPS = [(1280, 800), (1440, 900)]
#: How many "Error" badges a block shows: Gradio keeps one in every status tracker, at opacity 0 when idle.
SHOWN_BADGES_JS = """(selector) => Array.from(document.querySelectorAll(selector + ' *'))
  .filter(e => e.childElementCount === 0 && e.textContent.trim() === 'Error')
  .filter(e => { for (let x = e; x; x = x.parentElement) { const cs = getComputedStyle(x);
    if (cs.display === 'none' || cs.visibility === 'hidden' || Number(cs.opacity) === 0) return false; } return true; })
  .length"""
#: Emoji and the symbols that need an emoji font (pictographs, dingbats, variation selector 16).
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F]")
#: Gradio's toasts (where a raised gr.Error would show, far from its cause).
TOASTS = ".toast-body"


@pytest.fixture(scope="module")
def sync_playwright():
    return sync_playwright_or_skip()


class SpyPix2Pix(Pix2Pix):
    """Keeps every label map the model is given (as class indices) and its seed; ``gate``, when set, holds
    each forward until it is opened, and ``delay`` slows each forward (a slow machine)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inputs: list[np.ndarray] = []
        self.seeds: list[int] = []
        self.gate: threading.Event | None = None
        self.delay = 0.0

    def generate_batch(self, labels, seeds, stochastic=True):
        if self.gate is not None:
            self.gate.wait(60)
        if self.delay:
            time.sleep(self.delay)  # the model's own pace on a slow machine, not a wait in the test
        self.inputs += [label_of(x) for x in labels if isinstance(x, torch.Tensor)]
        self.seeds += list(seeds)
        return super().generate_batch(labels, seeds, stochastic=stochastic)


@pytest.fixture(scope="module")
def served(tiny_generator):
    model = SpyPix2Pix(tiny_generator, device="cpu")
    with serve_demo(model) as url:
        yield model, url


@pytest.fixture(scope="module")
def browser(sync_playwright):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """The app's page with the few things the tests do to it (a 1280x800 desktop, another ``size``, or
    ``phone=True``). ``backend`` goes into the address (``?backend=server``: the server draws every facade, as
    these tests of the page's server path expect; "browser": browser mode, tests at the end); ``setup`` runs on
    the Playwright page before it loads (to intercept requests)."""

    def __init__(self, browser, url: str, phone: bool = False, size: tuple[int, int] = (1280, 800),
                 backend: str = "server", setup=None):
        viewport = {"viewport": {"width": size[0], "height": size[1]}}
        self.page = browser.new_page(**(PHONE if phone else viewport), accept_downloads=True)
        self.requests: list = []
        self.page.on("request", lambda request: self.requests.append(request))
        if setup is not None:
            setup(self.page)
        self.page.goto(f"{url}?backend={backend}" if backend and "?" not in url else url)
        self.page.wait_for_function("() => { const c = document.querySelector('#canvas canvas');"
                                    " const i = document.querySelector('#facade img');"
                                    " return c && c.p2p && i && i.complete && i.naturalWidth > 0 && window.p2pSave"
                                    " && window.p2pPage && window.p2pPage.ready; }",
                                    timeout=60_000)
        self.box = self.page.locator("#canvas canvas.p2p-grid").bounding_box()

    def grid(self) -> np.ndarray:
        values = self.page.evaluate("() => Array.from(document.querySelector('#canvas canvas').p2p.grid())")
        return np.array(values, np.uint8).reshape(256, 256)

    def state(self) -> dict:
        return self.page.evaluate("() => document.querySelector('#canvas canvas').p2p.state()")

    def at(self, x: float, y: float) -> tuple[float, float]:
        """Viewport coordinates of the centre of grid cell (x, y), wherever the page has scrolled to."""
        canvas = self.page.locator("#canvas canvas.p2p-grid")
        canvas.scroll_into_view_if_needed()
        self.box = canvas.bounding_box()
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

    def box_of(self, selector: str) -> dict:
        """Where an element is, in the viewport's coordinates (``bottom`` and ``right`` added)."""
        box = self.page.locator(selector).first.bounding_box()
        return {**box, "bottom": box["y"] + box["height"], "right": box["x"] + box["width"]}

    def in_view(self, selector: str) -> bool:
        """Whether every element ``selector`` matches lies whole inside the viewport."""
        size = self.page.viewport_size
        boxes = [self.page.locator(selector).nth(i).bounding_box() for i in range(self.page.locator(selector).count())]
        return bool(boxes) and all(b and b["x"] >= 0 and b["y"] >= 0 and b["x"] + b["width"] <= size["width"]
                                   and b["y"] + b["height"] <= size["height"] for b in boxes)

    def facade_src(self) -> str:
        return self.page.locator("#facade img").get_attribute("src")

    def facade_name(self) -> str:
        """The facade's file name as the page's controller names it (its download is this, .png)."""
        return self.page.locator("#facade img").get_attribute("data-name")

    def wait_facade_change(self, src: str) -> None:
        self.page.wait_for_function(f"() => {{ const i = document.querySelector('#facade img');"
                                    f" return i.src !== {src!r} && i.complete && i.naturalWidth > 0; }}",
                                    timeout=30_000)

    def touch_drag(self, points: list[tuple[int, int]]) -> None:
        """A finger drawn across grid cells (Chrome's touch events, as a phone sends them)."""
        cdp = self.page.context.new_cdp_session(self.page)
        first, *rest = [dict(zip("xy", self.at(*p), strict=True)) for p in points]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [first]})
        for point in rest:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        cdp.detach()

    def upload(self, path: Path) -> None:
        with self.page.expect_file_chooser() as chooser:
            self.page.locator("#upload").click()
        chooser.value.set_files(str(path))

    def message(self, where: str):
        """The message line next to the seed box (``seed``) or the loaders (``load``)."""
        return self.page.locator(f"#{where}-error .p2p-message")


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


def loaded(page: Page) -> int:
    """How many label maps the canvas has loaded from the server so far."""
    return int(page.page.locator("#canvas .p2p").get_attribute("data-loaded") or 0)


def wait_loaded(page: Page, before: int) -> None:
    page.page.wait_for_function(f"() => Number(document.querySelector('#canvas .p2p').dataset.loaded) > {before}",
                                timeout=30_000)


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

        # Every update went as one small request: no upload, nothing over a few tens of KB, no other host.
        renders = [r for r in page.requests if r.method == "POST" and "/p2p/render" in r.url]
        assert renders and max(len(r.post_data_buffer or b"") for r in renders) < 60_000
        assert not [r for r in page.requests if "/upload" in r.url]
        assert not [r.url for r in page.requests if not r.url.startswith(("http://127.0.0.1", "data:", "blob:"))]
        page.page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
    finally:
        page.page.close()


def test_the_facade_follows_during_a_stroke_without_flickering(served, browser):
    model, url = served
    page = Page(browser, url)
    try:
        page.page.evaluate(WATCH_FACADE_JS)
        # While painting, sample every frame: the facade is never dimmed and shows no spinner, though live
        # requests come and go (each takes a while on this slow "machine").
        page.page.evaluate("""() => { window.__looks = []; const img = () => document.querySelector('#facade img');
          const spin = () => { const s = getComputedStyle(document.querySelector('#facade'), '::after');
            return s.content !== 'none' && s.display !== 'none'; };
          const tick = () => { const p = document.querySelector('#canvas .p2p').dataset.painting;
            if (p) window.__looks.push([Number(getComputedStyle(img()).opacity), spin()]);
            window.__sampling = requestAnimationFrame(tick); }; tick(); }""")
        model.delay = 0.05
        start = page.page.evaluate("() => performance.now()")
        points = [(30 + 4 * i, 100 + (i % 7)) for i in range(50)]
        page.drag(points, pause=0.04)  # about two seconds of painting
        up = page.page.evaluate("() => performance.now()")
        shown = page.page.evaluate("() => window.__shown")
        during = [t for t in shown if start < t < up]
        assert len(during) >= 3, f"{len(during)} facade updates during a {up - start:.0f} ms stroke"
        looks = page.page.evaluate("() => { cancelAnimationFrame(window.__sampling); return window.__looks; }")
        assert len(looks) > 10 and all(opacity == 1 and not spinner for opacity, spinner in looks), looks
        wait_received(model, page)  # and the final canvas was sent after the stroke
    finally:
        model.delay = 0.0
        page.page.close()


def test_loaders_seed_box_and_variations(served, browser, tmp_path):
    from playwright.sync_api import expect

    model, url = served
    page = Page(browser, url)
    try:
        # Random layout: its seed appears, and the canvas holds exactly that layout; its facade comes with it.
        before, src = loaded(page), page.facade_src()
        page.page.locator("#random-layout").click()
        wait_loaded(page, before)
        page.wait_facade_change(src)
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
        before = loaded(page)
        page.page.locator("#examples button.thumbnail-item").nth(2).click()
        wait_loaded(page, before)
        assert np.array_equal(page.grid(), label_of(example_labels()[2]))
        wait_received(model, page)

        # A layout seed from the box (Enter): that layout.
        box = page.page.locator("#layout-seed input")
        before = loaded(page)
        box.fill("12")
        box.press("Enter")
        wait_loaded(page, before)
        assert np.array_equal(page.grid(), rgb_to_index(random_layout(12, 256)))
        expect(box).to_have_value("12")
    finally:
        page.page.close()


def test_the_seed_box_applies_as_you_type_and_a_bad_value_never_stays(served, browser):
    from playwright.sync_api import expect

    model, url = served
    page = Page(browser, url)
    try:
        box, status = page.page.locator("#seed input"), page.page.locator("#status")
        # Typing applies: no Enter, no button.
        src = page.facade_src()
        box.click()
        box.press("Control+a")
        box.type("5")
        expect(status).to_contain_text("Seed 5", timeout=30_000)
        page.wait_facade_change(src)
        assert model.seeds[-1] == 5 and page.facade_name() == "facade-seed5"
        # So does an arrow key.
        src = page.facade_src()
        box.press("ArrowUp")
        expect(status).to_contain_text("Seed 6", timeout=30_000)
        page.wait_facade_change(src)
        assert model.seeds[-1] == 6 and box.input_value() == "6"
        # A half-typed value is no error while typing; leaving the box with a bad one: the box gets the last
        # good seed back, and the message says why, next to the box, once.
        box.fill("-1")
        page.page.locator("#intro").click()  # leaves the box
        expect(page.message("seed")).to_contain_text("the seed is back to 6", timeout=30_000)
        expect(box).to_have_value("6")
        assert page.page.get_by_text("the seed is back to").count() == 1
        assert page.page.locator(TOASTS).count() == 0
        near, seed_box = page.box_of("#seed-error"), page.box_of("#seed")
        assert 0 <= near["y"] - seed_box["bottom"] < 40 and abs(near["x"] - page.box_of("#seed-row")["x"]) < 5
        # The next good action clears it.
        page.page.locator("#generate").click()
        expect(page.message("seed")).to_have_count(0, timeout=30_000)
        # Generate on an unchanged layout and seed: the same facade, and the status line says why.
        expect(status).to_contain_text("same layout and seed always give this same facade")
        # Enter with a bad value: the same.
        box.fill("99999999999")
        box.press("Enter")
        expect(page.message("seed")).to_contain_text("must lie in", timeout=30_000)
        expect(box).to_have_value("6")
        # New seed: a seed that is new, and its facade.
        src = page.facade_src()
        page.page.locator("#new-seed").click()
        page.wait_facade_change(src)
        expect(page.message("seed")).to_have_count(0)
        assert box.input_value() != "6" and f"Seed {box.input_value()}" in status.inner_text()
    finally:
        page.page.close()


def test_the_page_shows_it_is_busy_and_stops_when_the_facade_arrives(served, browser):
    model, url = served
    page = Page(browser, url)
    try:
        page.page.evaluate("""() => { window.__events = []; const f = document.querySelector('#facade');
          const img = () => f.querySelector('img');
          document.addEventListener('click', (e) => window.__events.push(['click', e.timeStamp]), true);
          new MutationObserver(() => window.__events.push([f.dataset.busy ? 'busy' : 'idle', performance.now(),
                                                           img() && img().src])).observe(f,
            {attributes: true, attributeFilter: ['data-busy']}); }""")
        src = page.facade_src()
        model.gate = threading.Event()
        page.page.locator("#new-seed").click()
        page.page.wait_for_function("() => window.__events.some(e => e[0] === 'busy')", timeout=30_000)
        # While the model is held: dimmed, with a spinner.
        page.page.wait_for_function("() => Number(getComputedStyle(document.querySelector('#facade img')).opacity)"
                                    " < 0.7 && getComputedStyle(document.querySelector('#facade'), '::after')"
                                    ".visibility === 'visible'", timeout=30_000)
        model.gate.set()
        page.wait_facade_change(src)
        page.page.wait_for_function("() => !document.querySelector('#facade').dataset.busy", timeout=30_000)
        events = page.page.evaluate("() => window.__events")
        click = next(t for kind, t, *_ in events if kind == "click")
        busy = next(t for kind, t, *_ in events if kind == "busy")
        idle = next(e for e in events if e[0] == "idle")
        assert busy - click < 100, f"busy {busy - click:.0f} ms after the click"
        assert idle[2] != src  # the busy state ended with the new facade on the page, not before
        page.page.wait_for_function("() => Number(getComputedStyle(document.querySelector('#facade img')).opacity)"
                                    " === 1", timeout=30_000)  # undimmed (after its short transition)
        # The variations show theirs too.
        model.gate = threading.Event()
        page.page.locator("#variations-btn").click()
        page.page.wait_for_function("() => document.querySelector('#variations').dataset.busy", timeout=30_000)
        model.gate.set()
        page.page.wait_for_function("() => document.querySelectorAll('#variations img').length === 4 &&"
                                    " !document.querySelector('#variations').dataset.busy", timeout=30_000)
    finally:
        if model.gate is not None:
            model.gate.set()
        model.gate = None
        page.page.close()


@pytest.mark.parametrize("size", DESKTOPS, ids=[f"{w}x{h}" for w, h in DESKTOPS])
def test_a_desktop_first_screen_holds_canvas_facade_seed_and_variations(served, browser, size, tmp_path):
    from playwright.sync_api import expect

    _, url = served
    page = Page(browser, url, size=size)
    p = page.page
    try:
        wanted = ["#canvas canvas.p2p-grid", "#canvas .p2p-swatch", "#canvas .p2p-tools", "#facade img", "#seed input",
                  "#new-seed", "#generate", "#stochastic", "#variations-btn", "#variations", "#random-layout",
                  "#layout-seed", "#upload", "#examples img", "#save-facade", "#save-variations"]
        for selector in wanted:
            assert page.in_view(selector), f"{selector} is not on the first screen at {size}"
        # The loaders are next to the canvas they fill: under it, in its column.
        board, loaders = page.box_of("#canvas canvas.p2p-grid"), page.box_of("#loaders")
        assert 0 <= loaders["y"] - board["bottom"] < 80 and loaders["x"] < board["right"]
        assert page.box_of("#facade img")["width"] >= 380 and board["width"] >= 380  # both large enough to paint/see
        # "4 variations": the four appear on the first screen, at a size one can judge, with no scroll.
        p.locator("#variations-btn").click()
        expect(p.locator("#variations img")).to_have_count(4, timeout=30_000)
        p.wait_for_function("() => Array.from(document.querySelectorAll('#variations img'))"
                            ".every(i => i.complete && i.naturalWidth > 0)")
        assert page.in_view("#variations img") and page.in_view("#facade img") and page.in_view("#seed input")
        assert min(p.locator("#variations img").nth(i).bounding_box()["width"] for i in range(4)) >= 110
        assert p.evaluate("() => window.scrollY") == 0
        # An example: the canvas and the facade change in view; "4 variations" again, still in view.
        before, src = loaded(page), page.facade_src()
        p.locator("#examples button.thumbnail-item").nth(3).click()
        wait_loaded(page, before)
        page.wait_facade_change(src)
        assert page.in_view("#facade img") and page.in_view("#seed input") and page.in_view("#variations")
        p.locator("#variations-btn").click()
        expect(p.locator("#variations img")).to_have_count(4, timeout=30_000)
        assert page.in_view("#variations img") and page.in_view("#facade img") and page.in_view("#seed input")
        assert p.evaluate("() => window.scrollY") == 0
        p.mouse.move(0, 0)
        p.screenshot(path=str(tmp_path / f"desktop-{size[0]}.png"))
        shot = os.environ.get("PIX2PIX_SCREENSHOT")
        if shot and size == DESKTOPS[0]:
            path = Path(shot) if Path(shot).is_absolute() else REPO / shot
            p.screenshot(path=str(path))
    finally:
        p.close()


def test_clicking_a_variation_makes_it_the_facade_and_its_seed_the_seed(served, browser):
    from playwright.sync_api import expect

    model, url = served
    page = Page(browser, url)
    try:
        p = page.page
        p.locator("#variations-btn").click()
        thumbs = p.locator("#variations .p2p-var-item img")
        expect(thumbs).to_have_count(4, timeout=30_000)
        expect(p.locator("#variations")).to_contain_text("Seeds 0 to 3")
        assert [p.locator("#variations .p2p-var-item span").nth(i).inner_text() for i in range(4)] == \
            [f"seed {s}" for s in range(4)]  # under each picture, not over it
        caption, picture = page.box_of("#variations .p2p-var-item span"), page.box_of("#variations .p2p-var-item img")
        assert caption["y"] >= picture["bottom"] - 1
        picked = thumbs.nth(2).get_attribute("src")
        runs = len(model.seeds)
        p.locator("#variations .p2p-var-item").nth(2).click()
        expect(p.locator("#seed input")).to_have_value("2", timeout=30_000)
        p.wait_for_function(f"() => document.querySelector('#facade img').src === {picked!r}", timeout=30_000)
        expect(p.locator("#status")).to_contain_text("Seed 2")
        assert len(model.seeds) == runs  # the very picture: no new forward
        assert p.locator("#variations img").count() == 4 and p.locator(".preview, .preview-image").count() == 0
    finally:
        page.page.close()


#: The bytes of a picture on the page as they came (a blob the controller made of the server's answer), base64.
PICTURE_BYTES_JS = """async (selector) => { const r = await fetch(document.querySelector(selector).src);
  const bytes = new Uint8Array(await r.arrayBuffer()); let text = '';
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return btoa(text); }"""


def _served_pixels(page: Page, selector: str) -> np.ndarray:
    """The pixels of a picture on the page as the server sent them (the WebP bytes decoded by the test)."""
    import base64
    import io

    data = base64.b64decode(page.page.evaluate(PICTURE_BYTES_JS, selector))
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "WEBP"
        return np.asarray(image.convert("RGB"))


def test_downloads_are_pngs_named_by_seed_and_the_label_map_loads_back_exactly(served, browser, tmp_path):
    from playwright.sync_api import expect

    model, url = served
    page = Page(browser, url)
    try:
        p = page.page
        # The facade: a PNG named with its seed, the very pixels served.
        with p.expect_download() as download:
            p.locator("#save-facade").click()
        assert download.value.suggested_filename == "facade-seed0.png"
        saved = tmp_path / "facade.png"
        download.value.save_as(saved)
        with Image.open(saved) as image:
            assert image.format == "PNG" and np.array_equal(np.asarray(image.convert("RGB")),
                                                            _served_pixels(page, "#facade img"))
        # The four variations likewise.
        p.locator("#variations-btn").click()
        expect(p.locator("#variations img")).to_have_count(4, timeout=30_000)
        downloads = []
        p.on("download", lambda d: downloads.append(d))
        p.locator("#save-variations").click()
        deadline = time.monotonic() + 30
        while len(downloads) < 4 and time.monotonic() < deadline:
            p.wait_for_timeout(50)  # letting the page's event loop deliver the downloads
        assert [d.suggested_filename for d in downloads] == [f"facade-seed{s}.png" for s in range(4)]
        downloads[3].save_as(tmp_path / "v3.png")
        with Image.open(tmp_path / "v3.png") as image:
            assert np.array_equal(np.asarray(image.convert("RGB")),
                                  _served_pixels(page, "#variations .p2p-var-item:nth-child(4) img"))
        # The label map: a palette PNG of the canvas, which an upload turns back into the very same grid.
        page.key("r")
        page.key("0")  # molding
        page.drag([(10, 200), (90, 240)])
        painted = page.grid()
        with p.expect_download() as download:
            p.locator("#save-label-map").click()
        assert download.value.suggested_filename == "label-map.png"
        label_map = tmp_path / "label-map.png"
        download.value.save_as(label_map)
        with Image.open(label_map) as image:
            assert image.mode == "P" and image.size == (256, 256)
            assert np.array_equal(np.asarray(image), painted)  # one byte a pixel: the class index
            assert np.array_equal(np.asarray(image.convert("RGB")), PALETTE[painted])
        p.locator("#canvas [data-action='clear']").click()
        assert not np.array_equal(page.grid(), painted)
        before = loaded(page)
        page.upload(label_map)
        wait_loaded(page, before)
        assert np.array_equal(page.grid(), painted)
        assert np.array_equal(wait_received(model, page), painted)
    finally:
        page.page.close()


def test_bad_files_and_values_are_said_once_next_to_their_cause(served, browser, tmp_path):
    from playwright.sync_api import expect

    _, url = served
    page = Page(browser, url)
    try:
        p = page.page
        kept = page.grid()
        # A file that is not an image: said next to the Upload button; the canvas is unchanged.
        bad = tmp_path / "not-a-label-map.png"
        bad.write_text("hello")
        page.upload(bad)
        expect(page.message("load")).to_contain_text("not an image", timeout=30_000)
        assert np.array_equal(page.grid(), kept)
        upload, near = page.box_of("#upload"), page.box_of("#load-error")
        assert 0 <= near["y"] - upload["bottom"] < 40 and page.in_view("#load-error")
        # A broken image: said there too, in place of the last message (not merged with it, not in a corner).
        # (A photo is no longer refused: the facade parser reads it into a label map, tests/test_app_photo.py.)
        broken = tmp_path / "broken.png"
        broken.write_bytes(example_labels()[2].read_bytes()[:200])
        page.upload(broken)
        expect(page.message("load")).to_contain_text("corrupt or truncated", timeout=30_000)
        assert broken.name in page.message("load").inner_text()
        assert page.message("load").count() == 1 and p.get_by_text("not an image").count() == 0
        assert p.locator(TOASTS).count() == 0
        # The message never pushes the examples, captions and all, off the first screen.
        for selector in ("#examples img", "#examples .caption-label", "#load-error"):
            assert page.in_view(selector), selector
        assert np.array_equal(page.grid(), kept)  # the canvas is not turned into coloured noise
        for block in ("#canvas", "#layout-seed", "#variations", "#facade", "#seed", "#status", "#examples"):
            assert p.evaluate(SHOWN_BADGES_JS, block) == 0, block
        # A bad layout seed: said there, and the box does not keep it.
        box = p.locator("#layout-seed input")
        box.fill("-3")
        box.press("Enter")
        expect(page.message("load")).to_contain_text("layout seed must lie in", timeout=30_000)
        expect(box).to_have_value("")
        assert page.message("load").count() == 1 and p.get_by_text("corrupt or truncated").count() == 0
        # The next good action clears it.
        before = loaded(page)
        p.locator("#random-layout").click()
        wait_loaded(page, before)
        expect(page.message("load")).to_have_count(0, timeout=30_000)
        assert box.input_value() != ""
    finally:
        page.page.close()


# ----------------------------------------------------------------------------------------------- the page
def test_shortcuts_work_from_anywhere_on_the_page_but_a_text_box(served, browser):
    model, url = served
    page = Page(browser, url)
    try:
        keys = page.page.keyboard
        keys.press("r")  # a fresh page: nothing has the focus
        assert page.state()["tool"] == "rect"
        page.page.locator("#generate").click()  # the focus is on the Generate button now
        keys.press("f")
        keys.press("3")
        assert page.state()["tool"] == "fill" and page.state()["cls"] == class_index("window")
        page.page.locator("#stochastic input").focus()  # a checkbox is not a text box
        keys.press("b")
        assert page.state()["tool"] == "brush"
        page.drag([(30, 30), (60, 60)])  # one step to undo
        wait_received(model, page)
        painted, undo = page.grid(), page.state()["undo"]
        seed_box = page.page.locator("#seed input")
        seed_box.click()
        keys.press("e")  # typing in a number box: the box's, not a tool
        keys.press("Control+z")  # the box's own undo, not the canvas's
        assert page.state()["tool"] == "brush" and page.state()["undo"] == undo
        assert np.array_equal(page.grid(), painted)
        page.page.locator("#variations-btn").focus()
        keys.press("Control+z")
        assert page.state()["undo"] == undo - 1 and not np.array_equal(page.grid(), painted)
    finally:
        page.page.close()


def test_a_fresh_page_has_no_layout_seed_and_nothing_to_undo(served, browser):
    from playwright.sync_api import expect

    _, url = served
    page = Page(browser, url)
    try:
        expect(page.page.locator("#layout-seed input")).to_have_value("")  # an example, not a random layout
        assert page.page.locator("#layout-seed input").get_attribute("placeholder") == "seed"
        assert page.state()["undo"] == 0
        page.page.keyboard.press("Control+z")
        assert np.array_equal(page.grid(), label_of(example_labels()[0]))  # still the example
    finally:
        page.page.close()


def test_outlines_are_on_from_the_start_and_the_class_under_the_pointer(served, browser, tmp_path):
    _, url = served
    page = Page(browser, url)
    try:
        grid, joins = page.grid(), len([r for r in page.requests if "queue/join" in r.url])
        window, facade = class_index("window"), class_index("facade")
        # A window pixel with a facade pixel on its right (two close blues), and a pixel deep inside a flat area.
        ys, xs = np.nonzero((grid[:, :-1] == window) & (grid[:, 1:] == facade))
        border = (int(xs[0]), int(ys[0]))
        flat = np.ones_like(grid, bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                flat[1:-1, 1:-1] &= grid[1 + dy:255 + dy, 1 + dx:255 + dx] == grid[1:-1, 1:-1]
        fy, fx = (int(v[0]) for v in np.nonzero(flat[1:-1, 1:-1]))
        inside = (fx + 1, fy + 1)
        assert page.state()["outlines"]  # on from the start: the close classes are told apart
        alpha = page.page.evaluate("""([bx, by, ix, iy]) => {
            const ctx = document.querySelector('#canvas canvas.p2p-outline').getContext('2d');
            const at = (x, y) => ctx.getImageData(x, y, 1, 1).data[3];
            return [at(3 * (bx + 1), 3 * by + 1), at(3 * (bx + 1) - 1, 3 * by + 1), at(3 * ix + 1, 3 * iy + 1)];
        }""", [*border, *inside])
        assert alpha[0] > 200 and alpha[1] > 200 and alpha[2] == 0, alpha  # on the border, 2 pixels; none inside
        assert page.page.locator("#canvas canvas.p2p-outline").is_visible()
        assert page.page.locator("#canvas [data-action='outline']").get_attribute("aria-pressed") == "true"
        assert np.array_equal(page.grid(), grid)  # the label map itself is untouched, and nothing was sent
        assert len([r for r in page.requests if "queue/join" in r.url]) == joins
        page.page.locator("#canvas .p2p-board").screenshot(path=str(tmp_path / "outlines.png"))
        # With a mouse, the line under the board names the class under the pointer.
        page.page.mouse.move(*page.at(*border))
        assert "under the pointer: window" in page.page.locator("#canvas .p2p-now").inner_text()
        page.page.mouse.move(*page.at(border[0] + 1, border[1]))
        assert "under the pointer: facade" in page.page.locator("#canvas .p2p-now").inner_text()
        page.page.keyboard.press("o")
        assert not page.state()["outlines"] and not page.page.locator("#canvas canvas.p2p-outline").is_visible()
        page.page.locator("#canvas [data-action='outline']").click()
        assert page.state()["outlines"]
    finally:
        page.page.close()


def test_the_page_reads_in_plain_words_without_an_emoji_font(served, browser):
    _, url = served
    page = Page(browser, url)
    try:
        text = page.page.locator("body").inner_text()
        assert not EMOJI.findall(text), sorted(set(EMOJI.findall(text)))
        assert page.page.locator("h1").inner_text() == "facade-pix2pix"
        for name in ("brush", "rect", "fill", "eraser"):  # every tool: a drawn icon and its name
            button = page.page.locator(f"#canvas button[data-tool='{name}']")
            assert button.locator("svg path, svg rect").count() >= 1 and button.inner_text().strip()
        for action in ("undo", "redo", "clear", "outline", "save"):
            button = page.page.locator(f"#canvas [data-action='{action}']")
            assert button.locator("svg").count() == 1 and button.get_attribute("aria-label")
        for selector, words in (("#random-layout", "Random layout"), ("#new-seed", "New seed"),
                                ("#upload", "Upload a label map"), ("#generate", "Generate"),
                                ("#variations-btn", "4 variations"), ("#save-facade", "Save facade (PNG)")):
            assert page.page.locator(selector).inner_text().strip() == words
        assert page.page.locator("#canvas .p2p-keys").is_visible()  # a desktop: the key list is one click away
        # The status line and the switches in a visitor's words: what a seed and the switch do, no jargon.
        status = page.page.locator("#status").inner_text()
        assert re.fullmatch(r"Seed 0 · drawn on the server in \d+\.\d\d s", status), status
        assert page.page.locator("#stochastic").inner_text().strip() == "Vary with the seed"
        help_text = page.page.locator("#seed-help").inner_text()
        assert "same layout and seed always give the same facade" in help_text and "Vary with the seed" in help_text
        for jargon in ("stochastic", "dropout", " ms", "alone", "batch"):
            assert jargon not in text, jargon
    finally:
        page.page.close()


def test_on_a_phone_the_facade_is_in_view_while_painting_with_a_finger(served, browser, tmp_path):
    model, url = served
    page = Page(browser, url, phone=True)
    try:
        p = page.page
        assert p.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        assert p.evaluate("() => matchMedia('(pointer: coarse)').matches")  # the phone is emulated as one
        # The board and the facade, each whole, on the first screen; the toolbar in one row on the screen.
        board, facade = page.box_of("#canvas canvas.p2p-grid"), page.box_of("#facade img")
        for box in (board, facade):
            assert box["y"] >= 0 and box["bottom"] <= 844 and box["x"] >= 0 and box["right"] <= 390, (board, facade)
        assert facade["width"] >= 250 and board["width"] >= 250 and facade["y"] > board["bottom"]
        assert abs(facade["width"] - board["width"]) < 2
        tools = [page.box_of(f"#canvas .p2p-tools button >> nth={i}") for i in range(12)]
        assert len({round(b["y"]) for b in tools}) == 1 and max(b["right"] for b in tools) <= 390
        intro = p.locator("#intro").inner_text()
        assert "left" not in intro and "hover" not in intro.lower()  # a phone has neither
        assert not p.locator("#canvas .p2p-keys").is_visible()  # nor a keyboard
        # Then the rest, in this order: the seed controls, the variations, the loaders.
        order = [page.box_of(s)["y"] for s in ("#facade", "#seed", "#variations-btn", "#random-layout", "#examples")]
        assert order == sorted(order), order
        # The examples: all four columns on the screen, no hidden scrolling.
        thumbs = p.locator("#examples img")
        assert thumbs.count() == 8
        assert all(thumbs.nth(i).bounding_box()["x"] + thumbs.nth(i).bounding_box()["width"] <= 390 for i in range(8))
        assert p.evaluate("() => { const g = document.querySelector('#examples .grid-container');"
                          " return g.scrollWidth <= g.clientWidth; }")
        # A finger paints (and the page does not scroll); the new facade arrives where it can be seen.
        p.locator("#canvas .p2p-swatch", has_text="pillar").tap()
        before, src = page.grid(), page.facade_src()
        page.touch_drag([(40 + 10 * i, 120) for i in range(12)])
        after = page.grid()
        changed = after != before
        assert changed.any() and (after[changed] == class_index("pillar")).all()
        assert p.evaluate("() => window.scrollY") == 0
        wait_received(model, page)
        page.wait_facade_change(src)
        facade = page.box_of("#facade img")
        assert facade["y"] >= 0 and facade["bottom"] <= 844
        p.screenshot(path=str(tmp_path / "phone.png"))
        shot = os.environ.get("PIX2PIX_PHONE_SCREENSHOT")
        if shot:
            p.screenshot(path=shot)
    finally:
        page.page.close()


# ------------------------------------------------------------------------------------------- browser mode
#: A picture on the page (whatever drew it), once decoded: its <img> drawn on a canvas, read back as PNG.
FACADE_PNG_JS = """async (selector) => { const img = document.querySelector(selector); await img.decode();
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  c.getContext('2d').drawImage(img, 0, 0); return c.toDataURL('image/png'); }"""
#: The page's controller has drawn everything asked of it (the facade on the page is the newest canvas's).
IDLE_JS = "() => window.p2pPage.idle()"
#: Until the controller has decided: the browser draws, or the server does and #backend says why.
DECIDED_JS = ("() => window.p2pPage && window.p2pPage.ready && (window.p2pPage.active() ||"
              " document.querySelector('#backend').textContent.startsWith('Facades are drawn on the server'))")


class Sent:
    """ASGI middleware for the tests: the bytes of every response body the server sends, by path."""

    bytes: dict[str, int] = {}

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def counted(message):
            if message["type"] == "http.response.body":
                Sent.bytes[scope["path"]] = Sent.bytes.get(scope["path"], 0) + len(message.get("body", b""))
            await send(message)

        return await self.app(scope, receive, counted)

    @classmethod
    def total(cls, part: str = "") -> int:
        return sum(n for path, n in cls.bytes.items() if part in path)


@pytest.fixture(scope="module")
def served_coded():
    """The app on a tiny generator with a latent code (nz = 8, as the bundled model): browser mode feeds the
    ONNX graph its masks and its code, both from the seed rule's JavaScript. ``Sent`` counts what it sends."""
    from starlette.middleware import Middleware

    torch.manual_seed(2)
    model = SpyPix2Pix(UnetGenerator(ngf=8, nz=8).eval(), device="cpu")
    with serve_demo(model, (Middleware(Sent),)) as url:
        yield model, url


def _facade_pixels(page: Page, selector: str = "#facade img") -> np.ndarray:
    import base64
    import io

    url = page.page.evaluate(FACADE_PNG_JS, selector)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"), np.float32)


def _server_facade(model: Pix2Pix, grid: np.ndarray, seed: int) -> np.ndarray:
    picture = Image.fromarray(PALETTE[grid])
    return np.asarray(model.generate(picture, seed=seed)[0], np.float32)


def _joins(page: Page) -> int:
    """Requests that make the server draw: the page's renderer's, and any Gradio event's."""
    return len([r for r in page.requests if r.method == "POST" and ("queue/join" in r.url or "/p2p/render" in r.url)])


def test_browser_mode_draws_strokes_seeds_and_variations_without_the_server_and_as_it_would(served_coded, browser):
    model, url = served_coded
    page = Page(browser, url, backend="browser")
    try:
        p = page.page
        p.wait_for_function(DECIDED_JS, timeout=60_000)
        assert p.evaluate("() => window.p2pPage.active()"), p.locator("#backend").inner_text()
        assert re.fullmatch(r"Facades are drawn in your browser \(WebAssembly, \d threads?\): .*",
                            p.locator("#backend").inner_text())
        assert p.evaluate("() => crossOriginIsolated")  # the app's headers: WebAssembly may use threads
        joins, forwards = _joins(page), len(model.seeds)

        # A stroke: a new facade, drawn in the page, no request to the queue, equal to the server's.
        p.locator("#canvas .p2p-swatch", has_text="pillar").click()
        src = page.facade_src()
        page.drag([(40, 128), (90, 128), (140, 128)])
        page.wait_facade_change(src)
        p.wait_for_function(IDLE_JS, timeout=30_000)
        assert page.facade_src().startswith("blob:")
        status = p.locator("#status").inner_text().strip()
        assert re.fullmatch(r"Seed 0 · drawn in your browser in \d+\.\d\d s", status), status
        local = _facade_pixels(page)
        assert _joins(page) == joins and len(model.seeds) == forwards
        server = _server_facade(model, page.grid(), 0)
        assert np.abs(local - server).mean() <= 1.0 and np.abs(local - server).max() <= 8

        # New seed: another facade, the seed box shows its seed; the seed box as typed; the variation switch.
        src = page.facade_src()
        p.locator("#new-seed").click()
        page.wait_facade_change(src)
        p.wait_for_function(IDLE_JS, timeout=30_000)
        seed = int(p.locator("#seed input").input_value())
        p.wait_for_function(f"() => document.querySelector('#status').textContent.includes('Seed {seed} ')")
        assert np.abs(_facade_pixels(page) - _server_facade(model, page.grid(), seed)).mean() <= 1.0
        src = page.facade_src()
        p.locator("#seed input").fill("7")
        page.wait_facade_change(src)
        p.wait_for_function(IDLE_JS, timeout=30_000)
        p.wait_for_function("() => document.querySelector('#status').textContent.includes('Seed 7 ')")
        assert np.abs(_facade_pixels(page) - _server_facade(model, page.grid(), 7)).mean() <= 1.0
        p.locator("#seed input").fill("-3")
        p.locator("#seed input").press("Enter")
        assert "the seed is back to 7" in page.message("seed").inner_text()
        assert p.locator("#seed input").input_value() == "7"

        # The four variations, seeds 7..10, in the page; a click makes one the facade and its seed the seed.
        p.locator("#variations-btn").click()
        items = p.locator("#variations .p2p-var-item")
        items.nth(3).wait_for()
        p.wait_for_function(IDLE_JS, timeout=30_000)
        assert [items.nth(i).inner_text() for i in range(4)] == [f"seed {s}" for s in range(7, 11)]
        assert p.locator("#variations .p2p-var-item img").first.is_visible()
        third = _facade_pixels(page, "#variations .p2p-var-item:nth-of-type(3) img")
        assert np.abs(third - _server_facade(model, page.grid(), 9)).mean() <= 1.0
        items.nth(2).click()
        assert p.locator("#seed input").input_value() == "9"
        assert np.array_equal(_facade_pixels(page), third)
        with p.expect_download() as download:
            p.locator("#save-facade").click()
        assert download.value.suggested_filename == "facade-seed9.png"

        assert _joins(page) == joins and len(model.seeds) == forwards + 4  # the server's: this test's own
        assert not [r.url for r in page.requests if not r.url.startswith((url, "data:", "blob:"))]
        wasm = [r for r in page.requests if r.url.endswith(".wasm")]
        assert len(wasm) == 1 and wasm[0].url.startswith(f"{url}p2p/ort/")
    finally:
        page.page.close()


def test_a_model_that_fails_to_load_falls_back_to_the_server_with_a_note(served_coded, browser):
    model, url = served_coded

    def broken(page):
        page.route("**/p2p/model/*.onnx", lambda route: route.fulfill(status=200, body=b"not a model"))

    page = Page(browser, url, backend="browser", setup=broken)
    try:
        p = page.page
        p.wait_for_function(DECIDED_JS, timeout=60_000)
        assert not p.evaluate("() => window.p2pPage.active()")
        assert p.locator("#backend").inner_text().startswith(
            "Facades are drawn on the server: your browser could not run the model")
        joins, src = _joins(page), page.facade_src()
        page.drag([(40, 60), (120, 60)])
        wait_received(model, page)  # the stroke went to the server, which drew its facade
        page.wait_facade_change(src)
        assert _joins(page) > joins and "drawn on the server in" in p.locator("#status").inner_text()
    finally:
        page.page.close()


def test_backend_server_in_the_address_keeps_the_server_path_and_says_so(served, browser):
    _, url = served
    page = Page(browser, url, backend="server")
    try:
        page.page.wait_for_function(DECIDED_JS, timeout=30_000)
        assert page.page.locator("#backend").inner_text() == (
            "Facades are drawn on the server: the page's address asks for it.")
        assert not [r for r in page.requests if "/p2p/model" in r.url or r.url.endswith(".wasm")]
    finally:
        page.page.close()


#: The page's thread from now on: its tasks over 50 ms (Long Tasks API: wall-clock, so on a busy machine also
#: the time the thread waited for a core) and, frame by frame (Long Animation Frames), the scripts that ran over
#: 5 ms in a frame over 50 ms, with their own durations: what a model on this thread would show.
WATCH_LONG_TASKS_JS = """() => { window.__long = []; window.__scripts = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries())
    window.__long.push([e.startTime, e.duration]); }).observe({type: 'longtask'});
  new PerformanceObserver((list) => { for (const e of list.getEntries()) for (const s of e.scripts)
    window.__scripts.push([s.startTime, s.duration, s.sourceURL, s.invoker]); })
    .observe({type: 'long-animation-frame'}); }"""
#: What the page's own thread fetched: its resource timeline (a worker's fetches are on the worker's own).
MAIN_THREAD_FILES_JS = "() => performance.getEntriesByType('resource').map(e => e.name)"


def test_browser_mode_paints_with_the_model_off_the_main_thread(served_coded, browser):
    """The model runs in a worker: the page's thread never loads ONNX Runtime nor the model, and while a stroke
    is painted and its live facades are drawn, no script runs on it for over 50 ms (a forward of the bundled
    model on one WebAssembly thread takes 150 ms or more: docs/browser.md). What the Long Tasks API reports is
    wall-clock time, which on this busy two-core machine includes waits for a core with no script running (up
    to 150 ms measured); those are printed by `python -m tests.benchmarks.canvas_benchmark`, not asserted."""
    _, url = served_coded
    page = Page(browser, url, backend="browser")
    try:
        p = page.page
        p.wait_for_function(DECIDED_JS, timeout=60_000)
        assert p.evaluate("() => window.p2pPage.active()"), p.locator("#backend").inner_text()
        files = p.evaluate(MAIN_THREAD_FILES_JS)
        assert not [f for f in files if "/p2p/ort/" in f or "/p2p/model/" in f], files  # not on this thread
        assert any(f.endswith("/p2p/js/controller.js") for f in files)
        assert p.evaluate("() => typeof window.ort") == "undefined"
        p.wait_for_function(IDLE_JS, timeout=30_000)
        p.evaluate(WATCH_FACADE_JS)
        p.evaluate(WATCH_LONG_TASKS_JS)
        start = p.evaluate("() => performance.now()")
        page.drag([(30 + 5 * i, 90 + (i % 5)) for i in range(36)], pause=0.04)  # about 1.5 s of painting
        p.wait_for_function(IDLE_JS, timeout=30_000)
        end = p.evaluate("() => performance.now()")
        shown = [t for t in p.evaluate("() => window.__shown") if start < t < end + 1]
        assert len(shown) >= 2, f"{len(shown)} facades drawn during and after a {end - start:.0f} ms stroke"
        scripts = [(round(t - start), round(d), src, what) for t, d, src, what in p.evaluate("() => window.__scripts")
                   if t >= start]
        assert not [x for x in scripts if x[1] > 50], f"scripts over 50 ms on the page's thread: {scripts}"
        assert p.evaluate("() => window.p2pPage.state.drawn.browser") >= len(shown)  # drawn by the worker
    finally:
        page.page.close()


@pytest.mark.parametrize("backend, phone", [("browser", False), ("server", True)])
def test_a_typed_seed_then_an_example_draws_one_facade_of_that_seed(served_coded, browser, backend, phone):
    """The loaders hand back a label map only; the page's controller then draws its facade once, with the seed
    in the box, by the renderer in use: never the server's facade of another seed first."""
    model, url = served_coded
    page = Page(browser, url, backend=backend, phone=phone)
    try:
        p = page.page
        p.wait_for_function(DECIDED_JS, timeout=60_000)
        assert p.evaluate("() => window.p2pPage.active()") == (backend == "browser")
        p.locator("#seed input").fill("5")
        p.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Seed 5 ')",
                            timeout=30_000)
        p.wait_for_function(IDLE_JS, timeout=30_000)
        p.evaluate(WATCH_FACADE_JS)
        forwards, draws = len(model.seeds), _joins(page)
        before, src = loaded(page), page.facade_src()
        p.locator("#examples button.thumbnail-item").nth(2).click()
        wait_loaded(page, before)
        page.wait_facade_change(src)
        p.wait_for_function(IDLE_JS, timeout=30_000)
        p.wait_for_function("() => !document.querySelector('#facade').dataset.busy", timeout=30_000)
        assert p.evaluate("() => window.__shown.length") == 1  # one new facade, nothing before it
        where = "in your browser" if backend == "browser" else "on the server"
        assert p.locator("#status").inner_text().startswith(f"Seed 5 · drawn {where} in ")
        assert page.facade_name() == "facade-seed5"
        grid = page.grid()
        assert np.array_equal(grid, label_of(example_labels()[2]))
        if backend == "browser":
            assert len(model.seeds) == forwards and _joins(page) == draws + 1  # the loader's event, no forward
        else:
            assert model.seeds[forwards:] == [5]  # one forward, of seed 5
        assert np.abs(_facade_pixels(page) - _server_facade(model, grid, 5)).mean() <= 1.0
    finally:
        page.page.close()


CACHED_KEYS_JS = """async () => (await (await caches.open('facade-pix2pix')).keys())
  .map(r => new URL(r.url).pathname)"""


def test_the_model_is_kept_a_reload_and_a_new_tab_fetch_under_a_megabyte(served_coded, browser):
    """A fresh profile (a new browser context, as a private window): the first visit fetches the model and the
    runtime; a reload and a new tab take them from the page's Cache Storage, and fetch under 1 MB in all."""
    _, url = served_coded
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        first = context.new_page()
        Sent.bytes.clear()
        first.goto(f"{url}?backend=browser")
        first.wait_for_function(DECIDED_JS, timeout=60_000)
        assert first.evaluate("() => window.p2pPage.active()")
        assert Sent.total("/p2p/model/") > 0 and Sent.total(".wasm") > 1_000_000  # the first visit's download
        keys = first.evaluate(CACHED_KEYS_JS)
        assert len([k for k in keys if "/p2p/model/" in k]) == 1 and any(k.endswith(".wasm") for k in keys), keys
        for visit in ("reload", "new tab"):
            Sent.bytes.clear()
            if visit == "reload":
                first.reload()
                again = first
            else:
                again = context.new_page()
                again.goto(f"{url}?backend=browser")
            again.wait_for_function(DECIDED_JS, timeout=60_000)
            assert again.evaluate("() => window.p2pPage.active()")
            assert Sent.total("/p2p/model/") == 0 and Sent.total(".wasm") == 0, (visit, Sent.bytes)
            assert Sent.total() < 1_000_000, (visit, Sent.total(), sorted(Sent.bytes.items(), key=lambda x: -x[1])[:5])
            assert again.evaluate("() => window.p2pPage.state.fetched") == 0
        # A new model (a new hash): fetched, and the old entry replaced.
        model_key = next(k for k in keys if "/p2p/model/" in k)
        first.evaluate("""async (key) => { const c = await caches.open('facade-pix2pix'); await c.delete(key);
            await c.put('/p2p/model/0000000000000000-int8.onnx', new Response('an older model')); }""", model_key)
        first.reload()
        first.wait_for_function(DECIDED_JS, timeout=60_000)
        assert [k for k in first.evaluate(CACHED_KEYS_JS) if "/p2p/model/" in k] == [model_key]
    finally:
        context.close()


def test_webgpu_asked_for_where_there_is_none_fetches_none_of_its_files_and_says_so(served_coded, browser):
    _, url = served_coded
    Sent.bytes.clear()
    page = Page(browser, f"{url}?backend=browser&ep=webgpu")
    try:
        p = page.page
        p.wait_for_function(DECIDED_JS, timeout=60_000)
        assert p.evaluate("() => window.p2pPage.active()")
        note = p.locator("#backend").inner_text()
        assert re.fullmatch(r"Facades are drawn in your browser \(WebAssembly, \d threads?; (this browser offers "
                            r"no WebGPU|WebGPU failed .*)\): .*", note), note
        if "offers no WebGPU" in note:
            assert not [path for path in Sent.bytes if "webgpu" in path or "asyncify" in path]  # none served
    finally:
        page.page.close()


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_nothing_moves_when_the_page_decides_who_draws(served_coded, browser, phone):
    """The line under the status line has its room from the start: nothing under it moves when it is written
    (no layout shift), and on a phone the status line is on the first screen."""
    _, url = served_coded
    page = Page(browser, url, backend="browser", phone=phone)
    try:
        p = page.page
        p.evaluate("""() => { window.__shifts = [];
          new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__shifts.push(e.value); })
            .observe({type: 'layout-shift'}); }""")
        row = page.box_of("#seed-row")
        p.wait_for_function(DECIDED_JS, timeout=60_000)
        p.wait_for_function(IDLE_JS, timeout=30_000)
        assert page.box_of("#seed-row")["y"] == row["y"]
        assert sum(p.evaluate("() => window.__shifts")) < 0.001
        status = page.box_of("#status")
        height = p.viewport_size["height"]
        assert status["y"] >= 0 and status["bottom"] <= height, status
        assert p.locator("#status").inner_text().strip()
        empty = p.evaluate("() => { const v = getComputedStyle(document.querySelector('#variations'));"
                           " return [v.borderTopWidth, v.backgroundColor, v.boxShadow]; }")
        assert not p.locator("#variations img").count() and empty in (["0px", "rgba(0, 0, 0, 0)", "none"],)  # no box
    finally:
        page.page.close()
