"""The page's last small flaws, in Chromium (Playwright, Debian's /usr/bin/chromium):

- an upload's message (an error, or the note of a stretched label map; three lines at most) takes its room
  from the board and the facade, never from the examples, at 1280x800 and 1440x900 (docs/app.md);
- on a phone (390x844) the line under the status line, which says who draws, ends inside the screen;
- the model's download progress counts the same bytes as its total (never "13 of 12 MB");
- one example load draws one facade, after a typed seed (then Tab): one forward, in browser mode and in server
  mode, and in browser mode the page's start costs one forward too (the timed first facade is the one shown).
"""

from __future__ import annotations

import json
import re
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import UnetGenerator, example_labels
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, WATCH_FACADE_JS, label_of, serve_demo, sync_playwright_or_skip
from tests.test_app_browser import (
    DECIDED_JS,
    DESKTOPS,
    IDLE_JS,
    Page,
    SpyPix2Pix,
    _facade_pixels,
    _server_facade,
    loaded,
    wait_loaded,
)


@pytest.fixture(scope="module")
def served():
    """The app on a tiny generator with a latent code (nz = 8, as the bundled model)."""
    torch.manual_seed(2)
    model = SpyPix2Pix(UnetGenerator(ngf=8, nz=8).eval(), device="cpu")
    with serve_demo(model) as url:
        yield model, url


@pytest.fixture(scope="module")
def browser():
    sync_playwright = sync_playwright_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _uploads(tmp_path):
    """Files whose upload leaves a message under the loaders: a file that is no image, under a name long enough
    for the message's three lines and more, and a label map that is not square (its note)."""
    bad = tmp_path / ("a-label-map-exported-from-an-image-editor-with-a-very-long-name-" * 3 + "final.png")
    bad.write_text("not a picture at all")
    wide = tmp_path / "wide-label-map.png"
    grid = label_of(example_labels()[1])
    Image.fromarray(np.repeat(np.asarray(Image.open(example_labels()[1]).convert("RGB").resize((256, 256),
                                                                                           Image.NEAREST)),
                              2, axis=1)).save(wide)
    assert grid.shape == (256, 256)
    return [(bad, ".p2p-message", "Cannot use that file"), (wide, ".p2p-note", "stretched to 256x256")]


@pytest.mark.parametrize("size", DESKTOPS, ids=[f"{w}x{h}" for w, h in DESKTOPS])
def test_an_upload_message_never_pushes_the_examples_off_the_first_screen(served, browser, size, tmp_path):
    from playwright.sync_api import expect

    _, url = served
    page = Page(browser, url, size=size)
    p = page.page
    try:
        plain = page.box_of("#canvas canvas.p2p-grid")["width"]
        for path, kind, words in _uploads(tmp_path):
            page.upload(path)
            expect(p.locator(f"#load-error {kind}")).to_contain_text(words, timeout=30_000)
            p.wait_for_function("() => window.p2pPage.idle()", timeout=30_000)
            for selector in ("#examples", "#examples img", "#examples .caption-label", "#load-error", "#upload",
                             "#facade img", "#seed input", "#variations-btn", "#photo-examples"):
                assert page.in_view(selector), f"{selector} is off the first screen at {size} with {path.name[:20]}"
            message = page.box_of("#load-error")
            assert message["height"] < 100  # three lines at most: a longer one scrolls in its box
            board = page.box_of("#canvas canvas.p2p-grid")["width"]
            assert 340 <= board <= plain, (board, plain)  # the room came from the board, which stays large
            assert p.evaluate("() => window.scrollY") == 0
    finally:
        p.close()


def test_on_a_phone_the_line_that_says_who_draws_ends_inside_the_screen(served, browser):
    _, url = served
    page = Page(browser, url, phone=True, backend="browser")
    try:
        p = page.page
        p.wait_for_function(DECIDED_JS, timeout=60_000)
        p.wait_for_function(IDLE_JS, timeout=30_000)
        assert p.locator("#backend").inner_text().startswith("Facades are drawn in your browser")
        line, height = page.box_of("#backend"), p.viewport_size["height"]
        assert line["y"] >= 0 and line["bottom"] <= height, (line, height)
        assert p.evaluate("() => { const e = document.querySelector('#backend');"
                          " return e.scrollHeight <= e.clientHeight; }")  # its words whole, not cut off
        for selector in ("#canvas canvas.p2p-grid", "#facade img", "#status"):
            assert page.in_view(selector), selector
    finally:
        page.page.close()


#: Before the page's scripts: every message the model's worker sends is kept (its progress, in particular), and
#: every text of the line that says who draws.
RECORD_JS = """(() => {
  window.__progress = []; window.__notes = [];
  const Original = window.Worker;
  window.Worker = function (...args) {
    const worker = new Original(...args);
    worker.addEventListener('message', ({ data }) => {
      if (data && data.type === 'progress') window.__progress.push(data); });
    return worker;
  };
  window.Worker.prototype = Original.prototype;
  new MutationObserver(() => { const line = document.getElementById('backend');
    if (line && line.textContent !== window.__notes.at(-1)) window.__notes.push(line.textContent); })
    .observe(document, { childList: true, subtree: true, characterData: true });
})();"""


def test_the_model_download_progress_counts_the_same_bytes_as_its_total(served, browser):
    _, url = served
    with urllib.request.urlopen(f"{url}p2p/page.json", timeout=30) as response:
        model = json.loads(response.read())["model"]
    context = browser.new_context(viewport={"width": 1280, "height": 800})  # a fresh profile: nothing kept
    try:
        page = context.new_page()
        page.add_init_script(RECORD_JS)
        page.goto(f"{url}?backend=browser")
        page.wait_for_function(DECIDED_JS, timeout=60_000)
        assert page.evaluate("() => window.p2pPage.active()")
        progress = page.evaluate("() => window.__progress")
        assert progress, "the worker reported no progress"
        # Count and total are both the model's own bytes: the count ends at the total, never beyond it.
        assert {p["total"] for p in progress} == {model["bytes"]}
        assert max(p["got"] for p in progress) == model["bytes"]
        notes = [n for n in page.evaluate("() => window.__notes") if n.startswith("Loading the model")]
        size = f"{model['download'] / 1e6:.1f} MB"
        assert notes and all(f"({size}, once" in n for n in notes), notes
        percents = [int(m) for n in notes for m in re.findall(r"(\d+)%", n)]
        assert percents and all(0 < x <= 100 for x in percents) and percents == sorted(percents), notes
        assert not [n for n in notes if re.search(r"\d+ of \d", n)], notes  # no count against another total
    finally:
        context.close()


def _forwards(page: Page) -> int:
    """The facades the page's worker drew (its forwards)."""
    return page.page.evaluate("() => window.p2pPage.state.worker ? window.p2pPage.state.worker.runs : 0")


def _server_draws(page: Page) -> int:
    return len([r for r in page.requests if r.method == "POST" and "/p2p/render" in r.url])


@pytest.mark.parametrize("backend", ["browser", "server"])
def test_a_typed_seed_then_tab_then_an_example_costs_one_forward(served, browser, backend):
    """Typing seed 5, then Tab, then waiting: a click on another example draws that example's facade, of seed 5,
    and nothing before it (the old layout's seed-5 facade is not drawn again): one forward, by the renderer in
    use. In browser mode the page's start costs one forward too: the timed first facade is the one shown."""
    model, url = served
    page = Page(browser, url, backend=backend)
    try:
        p = page.page
        p.wait_for_function(DECIDED_JS, timeout=60_000)
        p.wait_for_function(IDLE_JS, timeout=30_000)
        assert p.evaluate("() => window.p2pPage.active()") == (backend == "browser")
        if backend == "browser":
            assert _forwards(page) == 1 and p.evaluate("() => window.p2pPage.state.drawn.browser") == 1
            assert p.locator("#status").inner_text().startswith("Seed 0 · drawn in your browser in ")
        box = p.locator("#seed input")
        box.click()
        box.press("Control+a")
        box.type("5")
        box.press("Tab")
        p.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Seed 5 ')",
                            timeout=30_000)
        p.wait_for_function(IDLE_JS, timeout=30_000)
        assert not p.evaluate("() => document.activeElement.closest('#seed')")  # Tab left the box
        p.evaluate(WATCH_FACADE_JS)
        forwards, server, draws = _forwards(page), len(model.seeds), _server_draws(page)
        before, src = loaded(page), page.facade_src()
        p.locator("#examples button.thumbnail-item").nth(3).click()
        wait_loaded(page, before)
        page.wait_facade_change(src)
        p.wait_for_function(IDLE_JS, timeout=30_000)
        p.wait_for_function("() => !document.querySelector('#facade').dataset.busy", timeout=30_000)
        assert p.evaluate("() => window.__shown.length") == 1  # one new facade, nothing before it
        grid = page.grid()
        assert np.array_equal(grid, label_of(example_labels()[3]))
        if backend == "browser":
            assert _forwards(page) - forwards == 1 and len(model.seeds) == server and _server_draws(page) == draws
        else:
            assert model.seeds[server:] == [5] and _server_draws(page) - draws == 1
        assert page.facade_name() == "facade-seed5"
        assert np.abs(_facade_pixels(page) - _server_facade(model, grid, 5)).mean() <= 1.0
    finally:
        page.page.close()
