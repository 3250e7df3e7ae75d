"""Helpers shared by the tests (one copy each)."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix.images import label_grid
from pix2pix.palette import rgb_to_index

#: Running under CI (`CI=true`): things that would be skipped on a laptop (no browser) must fail instead.
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_demo(model, middleware: tuple = ()):
    """``app.build_demo(model)`` served on 127.0.0.1 (with ``middleware`` added to the app's own): yields its
    address, and closes it after."""
    import app

    demo = app.build_demo(model)
    port = free_port()
    kwargs = app.launch_kwargs()
    kwargs["app_kwargs"]["middleware"].extend(middleware)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **kwargs)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def label_of(source) -> np.ndarray:
    """Class indices (256x256) of a label-map tensor in [-1, 1], or of any image the library accepts."""
    if isinstance(source, torch.Tensor):
        rgb = source.detach().cpu().add(1).mul(127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        return rgb_to_index(rgb)
    return rgb_to_index(label_grid(source)[0])


#: Installs a watcher on the page: ``window.__shown`` gets the time of every new facade image, once decoded.
WATCH_FACADE_JS = """() => {
  window.__shown = window.__shown || [];
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


#: Debian's Chromium (never `playwright install`, which downloads a browser), and the flags that keep it off
#: the network: without the background-networking ones it keeps trying hosts this machine cannot reach.
CHROMIUM = Path(os.environ.get("PIX2PIX_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def browser_unavailable(reason: str):
    """Skip a browser test where there is no browser, but fail it in CI, where a missing one is a bug."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser test must run; .ci/run installs chromium with apt-get)")
    pytest.skip(reason)


def sync_playwright_or_skip():
    """Playwright's ``sync_playwright``, once Chromium and the package are known to be there."""
    if not CHROMIUM.exists():
        browser_unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable("the playwright Python package is not installed (pip install playwright; never "
                            "`playwright install`)")
    return sync_playwright


def wait_for_line(proc, marker: str, timeout: float = 120) -> str:
    """The first line of ``proc``'s stdout (text mode) that contains ``marker``, read as it comes; the lines before
    it, and the process's end or the timeout, make the AssertionError. Lines after it keep draining to a thread
    (so that a chatty server never blocks on a full pipe)."""
    import queue
    import threading

    lines: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no line with {marker!r} in {timeout:.0f} s; got: {''.join(seen)[-3000:]}") from None
        if line is None:
            raise AssertionError(f"exited ({proc.wait()}) before a line with {marker!r}: {''.join(seen)[-3000:]}")
        seen.append(line)
        if marker in line:
            return line
