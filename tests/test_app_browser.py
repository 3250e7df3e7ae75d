"""The app in a real browser: Playwright for Python driving Debian's /usr/bin/chromium (never `playwright install`).

Paints with every tool of the label-map canvas (brush, rectangle, fill, eraser, undo, redo, clear, the
keyboard shortcuts) and checks, pixel by pixel, that the label map the server's model received is the one
on the page; then the live updates during a stroke, the loaders (examples, random layout, upload) and the
seed box; shortcuts from anywhere on the page; a photo uploaded as a label map; class outlines; and the
page on a phone (390x844, touch), painting with a finger with the facade in view.
``PIX2PIX_SCREENSHOT=assets/screenshot.png`` also saves the desktop page there (for the README), and
``PIX2PIX_PHONE_SCREENSHOT=path.png`` the phone's screen. Timings: ``python -m tests.benchmarks.canvas_benchmark``.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix import Pix2Pix, example_labels, example_photo, rgb_to_index
from pix2pix.layout import random_layout
from pix2pix.palette import BACKGROUND, class_index
from tests.helpers import IN_CI, WATCH_FACADE_JS, free_port, label_of

CHROMIUM = Path(os.environ.get("PIX2PIX_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parent.parent
PHONE = dict(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True, device_scale_factor=2)
#: How many "Error" badges a block shows: Gradio keeps one in every status tracker, at opacity 0 when idle.
SHOWN_BADGES_JS = """(selector) => Array.from(document.querySelectorAll(selector + ' *'))
  .filter(e => e.childElementCount === 0 && e.textContent.trim() === 'Error')
  .filter(e => { for (let x = e; x; x = x.parentElement) { const cs = getComputedStyle(x);
    if (cs.display === 'none' || cs.visibility === 'hidden' || Number(cs.opacity) === 0) return false; } return true; })
  .length"""
#: Emoji and the symbols that need an emoji font (pictographs, dingbats, variation selector 16).
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F]")


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
        _unavailable("the playwright Python package is not installed "
                     "(pip install playwright; never `playwright install`)")
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
    """The app's page with the few things the tests do to it (a 1280x1000 desktop, or ``phone=True``)."""

    def __init__(self, browser, url: str, phone: bool = False):
        self.page = browser.new_page(**(PHONE if phone else {"viewport": {"width": 1280, "height": 1000}}))
        self.requests: list = []
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.goto(url)
        self.page.wait_for_function("() => { const c = document.querySelector('#canvas canvas');"
                                    " const i = document.querySelector('#facade img');"
                                    " return c && c.p2p && i && i.complete && i.naturalWidth > 0; }", timeout=60_000)
        self.box = self.page.locator("#canvas canvas.p2p-grid").bounding_box()

    def grid(self) -> np.ndarray:
        values = self.page.evaluate("() => Array.from(document.querySelector('#canvas canvas').p2p.grid())")
        return np.array(values, np.uint8).reshape(256, 256)

    def state(self) -> dict:
        return self.page.evaluate("() => document.querySelector('#canvas canvas').p2p.state()")

    def at(self, x: float, y: float) -> tuple[float, float]:
        """Viewport coordinates of the centre of grid cell (x, y), wherever the page has scrolled to (clicking a
        button below the canvas scrolls it away; it is brought back into view first)."""
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

    def facade_src(self) -> str:
        return self.page.locator("#facade img").get_attribute("src")

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
        page.upload(bad)
        expect(page.page.get_by_text("not an image").first).to_be_visible(timeout=30_000)
        assert np.array_equal(page.grid(), kept)

        # A bad seed is replaced by the last good one, and the next action works.
        page.page.locator("#seed input").fill("-5")
        page.page.locator("#seed input").press("Enter")
        expect(page.page.locator("#status")).to_contain_text("using", timeout=30_000)
        expect(page.page.locator("#seed input")).to_have_value("0")
        page.drag([(10, 10), (20, 20)])
        wait_received(model, page)
        expect(page.page.locator("#status")).not_to_contain_text("note:", timeout=30_000)
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
        assert page.page.locator("#layout-seed input").get_attribute("placeholder") == "none"
        assert page.state()["undo"] == 0
        page.page.keyboard.press("Control+z")
        assert np.array_equal(page.grid(), label_of(example_labels()[0]))  # still the example
    finally:
        page.page.close()


def test_outlines_and_the_class_under_the_pointer(served, browser, tmp_path):
    _, url = served
    page = Page(browser, url)
    try:
        grid, joins = page.grid(), len([r for r in page.requests if "queue/join" in r.url])
        window, facade = class_index("window"), class_index("facade")
        # A window pixel with a facade pixel on its right, and a pixel deep inside a flat area.
        ys, xs = np.nonzero((grid[:, :-1] == window) & (grid[:, 1:] == facade))
        border = (int(xs[0]), int(ys[0]))
        flat = np.ones_like(grid, bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                flat[1:-1, 1:-1] &= grid[1 + dy:255 + dy, 1 + dx:255 + dx] == grid[1:-1, 1:-1]
        fy, fx = (int(v[0]) for v in np.nonzero(flat[1:-1, 1:-1]))
        inside = (fx + 1, fy + 1)
        page.page.keyboard.press("o")
        assert page.state()["outlines"]
        alpha = page.page.evaluate("""([bx, by, ix, iy]) => {
            const ctx = document.querySelector('#canvas canvas.p2p-outline').getContext('2d');
            const at = (x, y) => ctx.getImageData(x, y, 1, 1).data[3];
            return [at(3 * (bx + 1), 3 * by + 1), at(3 * (bx + 1) - 1, 3 * by + 1), at(3 * ix + 1, 3 * iy + 1)];
        }""", [*border, *inside])
        assert alpha[0] > 200 and alpha[1] > 200 and alpha[2] == 0, alpha  # on the border, 2 pixels; none inside
        assert page.page.locator("#canvas canvas.p2p-outline").is_visible()
        assert np.array_equal(page.grid(), grid)  # the label map itself is untouched, and nothing was sent
        assert len([r for r in page.requests if "queue/join" in r.url]) == joins
        page.page.locator("#canvas .p2p-board").screenshot(path=str(tmp_path / "outlines.png"))
        # With a mouse, the line under the board names the class under the pointer.
        page.page.mouse.move(*page.at(*border))
        assert "under the pointer: window" in page.page.locator("#canvas .p2p-now").inner_text()
        page.page.mouse.move(*page.at(border[0] + 1, border[1]))
        assert "under the pointer: facade" in page.page.locator("#canvas .p2p-now").inner_text()
        page.page.locator("#canvas [data-action='outline']").click()
        assert not page.state()["outlines"] and not page.page.locator("#canvas canvas.p2p-outline").is_visible()
    finally:
        page.page.close()


def test_the_page_reads_without_an_emoji_font(served, browser):
    _, url = served
    page = Page(browser, url)
    try:
        text = page.page.locator("body").inner_text()
        assert not EMOJI.findall(text), sorted(set(EMOJI.findall(text)))
        assert page.page.locator("h1").inner_text() == "facade-pix2pix"
        for name in ("brush", "rect", "fill", "eraser"):  # every tool: a drawn icon and its name
            button = page.page.locator(f"#canvas button[data-tool='{name}']")
            assert button.locator("svg path, svg rect").count() >= 1 and button.inner_text().strip()
        for action in ("undo", "redo", "clear", "outline"):
            button = page.page.locator(f"#canvas [data-action='{action}']")
            assert button.locator("svg").count() == 1 and button.get_attribute("aria-label")
        for selector, words in (("#random-layout", "Random layout"), ("#new-seed", "New seed"),
                                ("#upload", "Upload a label map")):
            assert page.page.locator(selector).inner_text().strip() == words
        assert page.page.locator("#canvas .p2p-keys").is_visible()  # a desktop: the key list shows
    finally:
        page.page.close()


def test_a_photo_upload_is_refused_with_a_message_and_no_error_badges(served, browser):
    from playwright.sync_api import expect

    _, url = served
    page = Page(browser, url)
    try:
        kept = page.grid()
        photo = example_photo(example_labels()[2])  # test037_shop_photo.jpg
        page.upload(photo)
        message = page.page.get_by_text("this looks like a photo, not a label map").first
        expect(message).to_be_visible(timeout=30_000)
        assert "upload a label map instead" in message.inner_text() and photo.name in message.inner_text()
        assert np.array_equal(page.grid(), kept)  # the canvas is not turned into coloured noise
        for block in ("#canvas", "#layout-seed", "#variations", "#facade", "#seed", "#status", "#examples"):
            assert page.page.evaluate(SHOWN_BADGES_JS, block) == 0, block
    finally:
        page.page.close()


def test_variations_fit_their_thumbnails_and_name_their_seeds(served, browser, tmp_path):
    from playwright.sync_api import expect

    _, url = served
    page = Page(browser, url)
    try:
        page.page.locator("#variations-btn").click()
        thumbs = page.page.locator("#variations img")
        expect(thumbs).to_have_count(4, timeout=30_000)
        expect(page.page.locator("#variations")).to_contain_text("seeds 0, 1, 2, 3, left to right")
        page.page.wait_for_function("() => Array.from(document.querySelectorAll('#variations img'))"
                                    ".every(i => i.complete && i.naturalWidth > 0)")
        gallery, boxes = page.box_of("#variations"), [thumbs.nth(i).bounding_box() for i in range(4)]
        assert gallery["bottom"] - max(b["y"] + b["height"] for b in boxes) < 40  # no empty band under them
        assert all(b["y"] > gallery["y"] + 20 for b in boxes)  # clear of the gallery's label
        assert page.page.locator("#variations .caption-label").count() == 0  # nothing over the pictures
        page.page.locator("#variations").screenshot(path=str(tmp_path / "variations.png"))
    finally:
        page.page.close()


def test_on_a_phone_the_facade_is_in_view_while_painting_with_a_finger(served, browser, tmp_path):
    model, url = served
    page = Page(browser, url, phone=True)
    try:
        p = page.page
        assert p.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        assert p.evaluate("() => matchMedia('(pointer: coarse)').matches")  # the phone is emulated as one
        # The board and the facade, each whole, on the first screen.
        board, facade = page.box_of("#canvas canvas.p2p-grid"), page.box_of("#facade img")
        for box in (board, facade):
            assert box["y"] >= 0 and box["bottom"] <= 844 and box["x"] >= 0 and box["right"] <= 390, (board, facade)
        assert facade["width"] >= 250 and board["width"] >= 250 and facade["y"] > board["bottom"]
        intro = p.locator("#intro").inner_text()
        assert "left" not in intro and "hover" not in intro.lower()  # a phone has neither
        assert not p.locator("#canvas .p2p-keys").is_visible()  # nor a keyboard
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
        p.wait_for_function(f"() => document.querySelector('#facade img').src !== {src!r} &&"
                            " document.querySelector('#facade img').complete", timeout=30_000)
        facade = page.box_of("#facade img")
        assert facade["y"] >= 0 and facade["bottom"] <= 844
        p.screenshot(path=str(tmp_path / "phone.png"))
        shot = os.environ.get("PIX2PIX_PHONE_SCREENSHOT")
        if shot:
            p.screenshot(path=shot)
    finally:
        page.page.close()
