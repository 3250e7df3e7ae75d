"""The page's WebGPU path, in Chromium's software WebGPU (SwiftShader: `--enable-unsafe-webgpu
--use-webgpu-adapter=swiftshader`, on 127.0.0.1, a secure context), so it runs on any machine, CI included.

`?ep=webgpu` forces ONNX Runtime Web's WebGPU provider on whatever adapter the browser offers (the automatic
choice still wants a hardware one): the #backend line says WebGPU, the facade is as close to the server's as
WebAssembly's, and a WebGPU failure during a run (the GPU queue made to throw, inside the model's worker) falls
back to WebAssembly and says so. A forward on software WebGPU is slow (the first one compiles every shader:
20-30 s here for the tiny model), so this test runs as few as it can: one at load (the timed first facade,
shown as it is) and the one that fails.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from pix2pix import UnetGenerator
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, browser_unavailable, serve_demo, sync_playwright_or_skip
from tests.test_app_browser import DECIDED_JS, IDLE_JS, Page, SpyPix2Pix, _facade_pixels, _server_facade

WEBGPU_ARGS = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"]
#: Generous: the first forward on software WebGPU compiles every shader.
SLOW_MS = 240_000
ADAPTER_JS = """async () => { if (!navigator.gpu) return null; const a = await navigator.gpu.requestAdapter();
  return a ? `${a.info.vendor} ${a.info.architecture}` : null; }"""
#: Inside the model's worker: every later submission to the GPU's queue throws, as a lost device would.
BREAK_THE_GPU_JS = """() => { GPUQueue.prototype.submit = function () {
  throw new Error('injected: the GPU device was lost'); }; }"""


@pytest.fixture(scope="module")
def served_webgpu():
    """The app on a tiny generator with a latent code (nz = 8, as the bundled model)."""
    torch.manual_seed(2)
    model = SpyPix2Pix(UnetGenerator(ngf=8, nz=8).eval(), device="cpu")
    with serve_demo(model) as url:
        yield model, url


@pytest.fixture(scope="module")
def gpu_browser():
    sync_playwright = sync_playwright_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + WEBGPU_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _open(browser, url: str, ep: str) -> Page:
    page = Page(browser, f"{url}?backend=browser&ep={ep}")
    page.page.wait_for_function(DECIDED_JS, timeout=SLOW_MS)
    page.page.wait_for_function(IDLE_JS, timeout=SLOW_MS)
    return page


def test_webgpu_forced_draws_as_close_as_webassembly_and_falls_back_when_it_fails(served_webgpu, gpu_browser):
    model, url = served_webgpu
    probe = gpu_browser.new_page()
    try:
        probe.goto(f"{url}p2p/page.json")  # a page of the app: a secure context (127.0.0.1)
        adapter = probe.evaluate(ADAPTER_JS)
    finally:
        probe.close()
    if not adapter:  # skipped on a laptop without it; a failure in CI, as a missing browser is
        browser_unavailable(f"this Chromium offers no WebGPU adapter with {' '.join(WEBGPU_ARGS)}")

    # WebAssembly first (fast): its facade against the server's, for the start canvas and seed 0.
    wasm = _open(gpu_browser, url, "wasm")
    try:
        assert "(WebAssembly" in wasm.page.locator("#backend").inner_text()
        grid = wasm.grid()
        server = _server_facade(model, grid, 0)
        wasm_pixels = _facade_pixels(wasm)
    finally:
        wasm.page.close()

    page = _open(gpu_browser, url, "webgpu")
    try:
        p = page.page
        note = p.locator("#backend").inner_text()
        assert note.startswith("Facades are drawn in your browser (WebGPU):"), note  # on the software adapter
        assert re.fullmatch(r"Seed 0 · drawn in your browser in \d+\.\d\d s", p.locator("#status").inner_text())
        # One forward at load: the timed first facade is the one shown, not drawn again.
        assert p.evaluate("() => window.p2pPage.state.drawn") == {"server": 0, "browser": 1}
        assert np.array_equal(page.grid(), grid)
        gpu_pixels = _facade_pixels(page)
        gpu_off, wasm_off = np.abs(gpu_pixels - server).mean(), np.abs(wasm_pixels - server).mean()
        print(f"mean grey levels from the server's facade: WebGPU {gpu_off:.3f}, WebAssembly {wasm_off:.3f}; "
              f"WebGPU from WebAssembly {np.abs(gpu_pixels - wasm_pixels).mean():.4f}")
        assert gpu_off <= 1.0 and gpu_off <= wasm_off + 0.1, (gpu_off, wasm_off)

        # WebGPU fails during a run: the facade is drawn with WebAssembly, and the line says so.
        [worker] = p.workers
        worker.evaluate(BREAK_THE_GPU_JS)
        src = page.facade_src()
        p.locator("#seed input").fill("7")
        page.wait_facade_change(src)
        p.wait_for_function(IDLE_JS, timeout=SLOW_MS)
        note = p.locator("#backend").inner_text()
        assert re.fullmatch(r"Facades are drawn in your browser \(WebAssembly, \d threads?; WebGPU failed during a "
                            r"run \(.*injected: the GPU device was lost.*\)\): painting costs the server nothing\.",
                            note), note
        assert re.fullmatch(r"Seed 7 · drawn in your browser in \d+\.\d\d s", p.locator("#status").inner_text())
        assert np.abs(_facade_pixels(page) - _server_facade(model, grid, 7)).mean() <= 1.0
        assert p.evaluate("() => window.p2pPage.active()")  # still the browser's: no request to the server
    finally:
        page.page.close()
