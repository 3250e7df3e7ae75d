"""Canvas benchmark (a script, not a test): how live painting feels in headless Chromium, on this machine.

    PYTHONPATH=. python tests/canvas_benchmark.py                       # the bundled weights
    PYTHONPATH=. python tests/canvas_benchmark.py --weights runs/x/export --strokes 20

Starts the app in this process on 127.0.0.1 and drives Debian's /usr/bin/chromium (1280x1000) with
Playwright, the way a person paints:
- ``--strokes`` short strokes (about 200 ms each), one after the other once the last facade is shown:
  mouse-up to the request leaving the page (``fetch`` of ``queue/join``), and mouse-up to the new facade
  decoded on the page;
- one 2-second stroke: how many new facades reach the page while the button is still down.
Prints the figures; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import app  # noqa: E402
from pix2pix import Pix2Pix  # noqa: E402
from tests.helpers import WATCH_FACADE_JS, free_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"

# Before any page script: timestamps of pointer-down and -up and of every queue/join request.
INIT_JS = """
window.__up = []; window.__join = []; window.__down = [];
document.addEventListener('pointerdown', () => window.__down.push(performance.now()), true);
document.addEventListener('pointerup', () => window.__up.push(performance.now()), true);
const fetch0 = window.fetch;
window.fetch = function (input, init) {
  const url = typeof input === 'string' ? input : input.url;
  if (url && url.includes('queue/join')) window.__join.push(performance.now());
  return fetch0.apply(this, arguments);
};
"""


def run(weights: str | None, strokes: int, screenshot: str | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    model = Pix2Pix.load(weights, device="cpu")
    demo = app.build_demo(model)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH_KWARGS)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.add_init_script(INIT_JS)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("() => { const c = document.querySelector('#canvas canvas');"
                                   " return c && c.p2p && document.querySelector('#facade img'); }", timeout=60_000)
            page.evaluate(WATCH_FACADE_JS)
            box = page.locator("#canvas canvas").bounding_box()

            def at(fx: float, fy: float) -> tuple[float, float]:
                return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

            def stroke(y: float, moves: int, pause_ms: float) -> None:
                page.mouse.move(*at(0.2, y))
                page.mouse.down()
                for k in range(1, moves + 1):
                    page.mouse.move(*at(0.2 + 0.6 * k / moves, y))
                    page.wait_for_timeout(pause_ms)  # a hand's pace
                page.mouse.up()

            page.locator("#canvas [data-size='8']").click()
            latencies, leave = [], []
            for k in range(strokes + 2):  # two warm-up strokes
                page.locator("#canvas .p2p-swatch").nth(2 + k % 9).click()
                shown = page.evaluate("() => window.__shown.length")
                stroke(0.1 + 0.8 * (k % 20) / 20, 8, 25)
                page.wait_for_function(f"() => window.__shown.length > {shown} && "
                                       "window.__shown[window.__shown.length - 1] > window.__up[window.__up.length - 1]",
                                       timeout=30_000)
                up = page.evaluate("() => window.__up[window.__up.length - 1]")
                joins = page.evaluate("() => window.__join")
                after = [t - up for t in joins if t >= up]
                if k >= 2:
                    latencies.append(page.evaluate("() => window.__shown[window.__shown.length - 1]") - up)
                    leave.append(after[0] if after else float("nan"))
            # One long stroke: 2 seconds with the button down.
            down_count = page.evaluate("() => window.__down.length")
            stroke(0.5, 40, 50)
            down = page.evaluate(f"() => window.__down[{down_count}]")
            up = page.evaluate("() => window.__up[window.__up.length - 1]")
            during = page.evaluate(f"() => window.__shown.filter(t => t > {down} && t < {up}).length")
            if screenshot:  # the README's picture: after the long stroke's facade is shown
                page.wait_for_function(f"() => window.__shown.some(t => t > {up})", timeout=30_000)
                page.screenshot(path=screenshot, full_page=True)
            browser.close()
    finally:
        demo.close()
    return {"latencies": latencies, "leave": leave, "long_ms": up - down, "during": during,
            "ngf": model.generator.encoder[0].out_channels}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="tests/canvas_benchmark.py", description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="weights (default: the bundled ones)")
    p.add_argument("--strokes", type=int, default=20)
    p.add_argument("--screenshot", metavar="PNG", help="also save the page there at the end (e.g. assets/screenshot.png)")
    args = p.parse_args(argv)
    r = run(args.weights, args.strokes, args.screenshot)
    lat, leave = r["latencies"], r["leave"]
    q = statistics.quantiles(lat, n=20) if len(lat) > 1 else lat * 19
    print(f"headless Chromium, {torch.get_num_threads()} CPU threads, ngf {r['ngf']}, {len(lat)} strokes of ~200 ms:")
    print(f"  mouse-up -> new facade shown: median {statistics.median(lat):.0f} ms, p95 {q[18]:.0f} ms, "
          f"min {min(lat):.0f}, max {max(lat):.0f}")
    print(f"  mouse-up -> request leaves:   median {statistics.median(leave):.0f} ms, max {max(leave):.0f} ms")
    print(f"  a {r['long_ms'] / 1000:.1f} s stroke: {r['during']} new facades shown while the button was down")


if __name__ == "__main__":
    main()
