"""The app in a real browser: Playwright for Python driving Debian's /usr/bin/chromium (never `playwright install`).

Paints a stroke with a palette colour and checks that the facade appears, changes, and that the
painted class reached the model. Saves a screenshot under the test's tmp dir; with
``PIX2PIX_SCREENSHOT=assets/screenshot.png`` also there (for the README).

Measuring the stroke-to-image time at full size (prints the figures; run with -s):
    PIX2PIX_BROWSER_NGF=64 pytest tests/test_app_browser.py -s        # random ngf=64 weights
    PIX2PIX_BROWSER_WEIGHTS=runs/x/export pytest tests/test_app_browser.py -s
"""

from __future__ import annotations

import os
import socket
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix import PALETTE, Pix2Pix, UnetGenerator
from pix2pix.palette import class_index, rgb_to_index

CHROMIUM = Path(os.environ.get("PIX2PIX_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parent.parent
PAINT = "pillar"  # a class absent from the first example layout, so its pixels can only come from the stroke
STROKES = int(os.environ.get("PIX2PIX_BROWSER_STROKES", "3"))


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser test must run; .ci/run installs chromium with apt-get)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def sync_playwright():
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright  # noqa: F401
    except ImportError:
        _unavailable("the playwright Python package is not installed (pip install playwright; never `playwright install`)")
    return sync_playwright


class SpyPix2Pix(Pix2Pix):
    """Keeps the label maps of the last forward (as class indices) to check what the model was given."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inputs: list[np.ndarray] = []

    def generate_batch(self, labels, seeds, stochastic=True):
        for x in labels:
            if isinstance(x, torch.Tensor):
                rgb = x.add(1).mul(127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
                self.inputs.append(rgb_to_index(rgb))
        return super().generate_batch(labels, seeds, stochastic=stochastic)


def _model(tiny_generator) -> SpyPix2Pix:
    if os.environ.get("PIX2PIX_BROWSER_WEIGHTS"):
        from pix2pix import load_generator

        return SpyPix2Pix(load_generator(os.environ["PIX2PIX_BROWSER_WEIGHTS"]), device="cpu")
    ngf = int(os.environ.get("PIX2PIX_BROWSER_NGF", "0"))
    if ngf:
        torch.manual_seed(0)
        return SpyPix2Pix(UnetGenerator(ngf=ngf), device="cpu")
    return SpyPix2Pix(tiny_generator, device="cpu")


@pytest.fixture(scope="module")
def served(tiny_generator):
    import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = _model(tiny_generator)
    demo = app.build_demo(model)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH_KWARGS)
    try:
        yield model, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


# Records when the facade on the page was last replaced (after its new image has decoded) and when the last
# pointer was released: their difference is the stroke-to-image time as the user sees it.
WATCH_JS = """() => {
  window.__shown = []; window.__up = null;
  document.addEventListener('pointerup', () => { window.__up = performance.now(); }, true);
  const root = document.querySelector('#facade');
  let last = root.querySelector('img') && root.querySelector('img').src;
  new MutationObserver(() => {
    const img = root.querySelector('img');
    if (img && img.src && img.src !== last) {
      last = img.src;
      img.decode().then(() => window.__shown.push(performance.now())).catch(() => {});
    }
  }).observe(root, {attributes: true, childList: true, subtree: true});
}"""


def test_paint_a_stroke_and_the_facade_follows(sync_playwright, served, tmp_path):
    from playwright.sync_api import expect

    model, url = served
    external: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("request", lambda r: external.append(r.url)
                    if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
            page.goto(url)

            # The facade for the starting layout appears on page load.
            facade = page.locator("#facade img")
            facade.wait_for(state="visible", timeout=30_000)
            page.wait_for_function("() => { const i = document.querySelector('#facade img');"
                                   " return i && i.complete && i.naturalWidth > 0; }", timeout=30_000)
            before_src = facade.get_attribute("src")
            before_pixels = facade.screenshot()
            page.evaluate(WATCH_JS)

            # The brush offers exactly the 12 palette colours; pick one by its place in the palette.
            page.get_by_label("Color", exact=True).click()
            swatches = page.locator("#canvas menu.swatch button.color")
            assert swatches.count() == len(PALETTE)
            target = class_index(PAINT)
            r, g, b = (int(c) for c in PALETTE[target])
            swatch = swatches.nth(target)
            assert swatch.evaluate("e => getComputedStyle(e).backgroundColor") == f"rgb({r}, {g}, {b})"
            swatch.click()
            # Close the swatch popup by clicking outside it (a pointer-down on the canvas would only close it).
            page.locator("#legend").click()
            expect(swatches.first).to_be_hidden()
            expect(page.get_by_label("Color", exact=True)).to_have_css("color", f"rgb({r}, {g}, {b})")

            # Draw horizontal strokes across the middle of the canvas, one after the other.
            canvas = page.locator("#canvas .pixi-target canvas").first
            box = canvas.bounding_box()
            assert box is not None
            timings = []
            model.inputs.clear()
            for k in range(STROKES):
                y = box["y"] + box["height"] * (0.45 + 0.04 * k)
                shown = page.evaluate("() => window.__shown.length")
                page.mouse.move(box["x"] + box["width"] * 0.3, y)
                page.mouse.down()
                for step in range(1, 11):
                    page.mouse.move(box["x"] + box["width"] * (0.3 + 0.04 * step), y)
                page.mouse.up()
                page.wait_for_function(f"() => window.__shown.length > {shown}", timeout=30_000)
                timings.append(page.evaluate("() => window.__shown[window.__shown.length - 1] - window.__up"))

            # The facade changed ...
            assert facade.get_attribute("src") != before_src
            assert facade.screenshot() != before_pixels
            # ... and the model was given the painted class, where it was painted, at 256x256.
            assert model.inputs, "no forward after the strokes"
            label = model.inputs[-1]
            assert label.shape == (model.image_size, model.image_size)
            rows, cols = np.nonzero(label == target)
            assert rows.size > 50, f"only {rows.size} {PAINT} pixels reached the model"
            assert 0.35 < rows.mean() / label.shape[0] < 0.65
            assert cols.min() / label.shape[1] < 0.4 and cols.max() / label.shape[1] > 0.6

            shot = tmp_path / "app.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("PIX2PIX_SCREENSHOT"):
                out = Path(os.environ["PIX2PIX_SCREENSHOT"])
                out = out if out.is_absolute() else REPO / out
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=True)
            assert shot.stat().st_size > 0
        finally:
            browser.close()

    ngf = model.generator.encoder[0].out_channels
    print(f"\nstroke-to-image (pointer up -> new facade decoded), ngf={ngf}, CPU threads={torch.get_num_threads()}: "
          + ", ".join(f"{t:.0f} ms" for t in timings) + f"; median {statistics.median(timings):.0f} ms")
    assert not external, f"the page reached outside 127.0.0.1: {external}"


def test_random_layout_examples_variations_and_a_bad_upload(sync_playwright, served, tmp_path):
    from playwright.sync_api import expect

    model, url = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url)
            facade = page.locator("#facade img")
            facade.wait_for(state="visible", timeout=30_000)
            page.evaluate(WATCH_JS)

            # Random layout: a layout seed appears, and a new facade follows.
            page.locator("#random-layout").click()
            page.wait_for_function("() => window.__shown.length > 0", timeout=30_000)
            seed = page.locator("#layout-seed input").input_value()
            assert seed.isdigit()

            # An example from the gallery loads onto the canvas, and a new facade follows.
            shown = page.evaluate("() => window.__shown.length")
            page.locator("#examples button.thumbnail-item").nth(2).click()
            page.wait_for_function(f"() => window.__shown.length > {shown}", timeout=30_000)

            # Four variations.
            page.locator("#variations-btn").click()
            expect(page.locator("#variations img")).to_have_count(4, timeout=30_000)

            # A file that is not an image: a clear error, and the app keeps working.
            bad = tmp_path / "not-a-label-map.png"
            bad.write_text("hello")
            with page.expect_file_chooser() as chooser:
                page.locator("#upload").click()
            chooser.value.set_files(str(bad))
            expect(page.get_by_text("not an image").first).to_be_visible(timeout=30_000)
            shown = page.evaluate("() => window.__shown.length")
            page.locator("#seed input").fill("12345")
            page.locator("#generate").click()
            page.wait_for_function(f"() => window.__shown.length > {shown}", timeout=30_000)
            page.screenshot(path=str(tmp_path / "flows.png"), full_page=True)
        finally:
            browser.close()
