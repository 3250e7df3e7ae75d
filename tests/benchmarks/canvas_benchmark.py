"""Canvas benchmark (a script, not a test): how live painting feels in headless Chromium, on this machine.

    python -m tests.benchmarks.canvas_benchmark                       # the bundled weights: 1 painter, then 4
    python -m tests.benchmarks.canvas_benchmark --pages 1 4 8 --strokes 20 --weights runs/x/export

Starts `python app.py` in its own process on 127.0.0.1 (as a user would; the browsers and the server share
this machine's cores, as they would on a laptop) and drives Debian's /usr/bin/chromium (1280x1000 pages)
with Playwright, the way people paint:

- For each count in ``--pages``: that many pages (each its own browser context: its own session on the
  server) painting at once. Each paints ``--strokes`` short strokes (about 200 ms each, so live updates
  leave during the stroke too), the next one as soon as the last stroke's facade is shown: mouse-up to
  the new facade decoded on the page (median, p95), and mouse-up to the request leaving the page (``fetch``
  of ``/p2p/render``); and the page's main-thread tasks over 50 ms while it painted (the Long Tasks API:
  wall-clock, so on a busy machine they include waits for a core).
- With one page: also a 2-second stroke, and how many new facades reach the page while the button is down.
- For each ``--backend``: ``server`` (``?backend=server``: every facade a request) and ``browser``
  (``?backend=browser``: the page draws them with ONNX Runtime Web in a worker, WebAssembly here; no request).
  In browser mode also the first visit: what the page and its worker downloaded (MB over the wire) and the time
  from opening the page to its first facade drawn in the browser; then what a reload and a new tab of the same
  (fresh) profile download. All pages, browsers and the server share this machine's cores.

Prints the figures; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
from pathlib import Path

from tests.benchmarks.load_benchmark import app_process
from tests.helpers import WATCH_FACADE_JS

REPO = Path(__file__).resolve().parents[2]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-timer-throttling",
                 "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows"]
READY_JS = ("() => { const c = document.querySelector('#canvas canvas');"
            " const i = document.querySelector('#facade img');"
            " return c && c.p2p && i && i.complete && i.naturalWidth > 0; }")

# Before any page script: timestamps of pointer-down and -up, of every request that makes the server draw, and
# the main thread's long tasks ([start, duration]).
INIT_JS = """
window.__up = []; window.__join = []; window.__down = []; window.__long = [];
new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__long.push([e.startTime, e.duration]); })
  .observe({type: 'longtask', buffered: true});
document.addEventListener('pointerdown', () => window.__down.push(performance.now()), true);
document.addEventListener('pointerup', () => window.__up.push(performance.now()), true);
const fetch0 = window.fetch;
window.fetch = function (input, init) {
  const url = typeof input === 'string' ? input : (input.url || String(input));
  if (url && (url.includes('queue/join') || url.includes('/p2p/render'))) window.__join.push(performance.now());
  return fetch0.apply(this, arguments);
};
"""


# In browser mode, once it has started: what the visit cost (bytes over the wire of the page's thread and of the
# model's worker), and when the first browser facade was on the page (ms from the navigation's start).
FIRST_VISIT_JS = """async () => {
  const s = window.p2pPage.state, wire = await window.p2pPage.wire();
  return {active: window.p2pPage.active(), note: (document.querySelector('#backend') || {}).textContent,
          ep: s.worker && s.worker.ep, total: wire.page + wire.worker, worker: wire.worker,
          firstFacadeAt: performance.now(), modelMs: s.modelMs, firstMs: s.firstMs};
}"""
DECIDED_JS = ("() => window.p2pPage && window.p2pPage.ready && (window.p2pPage.active() ||"
              " document.body.dataset.backend === 'server' && !document.querySelector('#backend')"
              ".textContent.startsWith('Loading'))")


class Painter:
    """One page, painting the way a person does."""

    def __init__(self, page, index: int, query: str = ""):
        self.page, self.index, self.query = page, index, query
        self.latencies: list[float] = []
        self.leave: list[float] = []

    async def open(self, url: str, backend: str) -> None:
        self.backend = backend
        await self.page.add_init_script(INIT_JS)
        await self.page.goto(f"{url}?backend={backend}{self.query}")
        await self.page.wait_for_function(READY_JS, timeout=120_000)
        if backend == "browser":
            await self.page.wait_for_function(DECIDED_JS, timeout=300_000)
            self.first_visit = await self.page.evaluate(FIRST_VISIT_JS)
            if not self.first_visit["active"]:
                raise RuntimeError(f"browser mode did not start: {self.first_visit['note']}")
            if self.index == 0:
                self.first_visit["again"] = await self.again(url)
        await self.page.wait_for_function("() => window.p2pPage && window.p2pPage.ready && window.p2pPage.idle()",
                                          timeout=60_000)
        await self.page.evaluate(WATCH_FACADE_JS)
        self.painting_from = await self.page.evaluate("() => performance.now()")
        self.box = await self.page.locator("#canvas canvas.p2p-grid").bounding_box()
        await self.page.locator("#canvas [data-size='8']").click()

    async def again(self, url: str) -> dict:
        """A reload, then a new tab, in this page's (fresh) profile: what each fetched over the wire."""
        out = {}
        await self.page.reload()
        await self.page.wait_for_function(DECIDED_JS, timeout=300_000)
        out["reload"] = await self.page.evaluate(FIRST_VISIT_JS)
        tab = await self.page.context.new_page()
        await tab.goto(f"{url}?backend=browser{self.query}")
        await tab.wait_for_function(DECIDED_JS, timeout=300_000)
        out["new tab"] = await tab.evaluate(FIRST_VISIT_JS)
        await tab.close()
        return out

    async def long_tasks(self) -> list[float]:
        """The page's main-thread tasks over 50 ms while it painted (after it was ready), in ms."""
        return await self.page.evaluate(f"() => window.__long.filter(([t]) => t > {self.painting_from})"
                                        ".map(([, d]) => d)")

    def at(self, fx: float, fy: float) -> tuple[float, float]:
        return self.box["x"] + fx * self.box["width"], self.box["y"] + fy * self.box["height"]

    async def stroke(self, y: float, moves: int, pause_ms: float) -> None:
        mouse = self.page.mouse
        await mouse.move(*self.at(0.2, y))
        await mouse.down()
        for k in range(1, moves + 1):
            await mouse.move(*self.at(0.2 + 0.6 * k / moves, y))
            await self.page.wait_for_timeout(pause_ms)  # a hand's pace
        await mouse.up()

    async def paint(self, strokes: int, warmup: int = 2) -> None:
        """``warmup`` + ``strokes`` strokes of ~200 ms, each after the last one's facade is shown."""
        page = self.page
        for k in range(strokes + warmup):
            await page.locator("#canvas .p2p-swatch").nth(2 + (k + self.index) % 9).click()
            shown = await page.evaluate("() => window.__shown.length")
            await self.stroke(0.1 + 0.8 * ((k + 7 * self.index) % 20) / 20, 8, 25)
            if self.backend == "browser":
                await self.browser_facade(k >= warmup)
                continue
            await page.wait_for_function(
                f"() => window.__shown.length > {shown} && "
                "window.__shown[window.__shown.length - 1] > window.__up[window.__up.length - 1]", timeout=60_000)
            up = await page.evaluate("() => window.__up[window.__up.length - 1]")
            joins = await page.evaluate("() => window.__join")
            after = [t - up for t in joins if t >= up]
            if k >= warmup:
                self.latencies.append(await page.evaluate("() => window.__shown[window.__shown.length - 1]") - up)
                self.leave.append(after[0] if after else float("nan"))

    async def browser_facade(self, counted: bool) -> None:
        """Browser mode: until the page has drawn the final canvas. A stroke whose last live facade was already
        that canvas's needs none after mouse-up: it counts 0 ms."""
        await self.page.wait_for_function("() => window.p2pPage.idle()", timeout=60_000)
        up = await self.page.evaluate("() => window.__up[window.__up.length - 1]")
        shown = await self.page.evaluate("() => window.p2pPage.state.shownAt")
        if counted:
            self.latencies.append(max(0.0, shown - up))
            self.leave.append(float("nan"))

    async def long_stroke(self) -> tuple[float, int]:
        """A 2-second stroke: (its length in ms, new facades shown while the button was down)."""
        down_count = await self.page.evaluate("() => window.__down.length")
        await self.stroke(0.5, 40, 50)
        down = await self.page.evaluate(f"() => window.__down[{down_count}]")
        up = await self.page.evaluate("() => window.__up[window.__up.length - 1]")
        during = await self.page.evaluate(f"() => window.__shown.filter(t => t > {down} && t < {up}).length")
        return up - down, during


async def measure(url: str, pages: int, strokes: int, screenshot: str | None = None, backend: str = "server",
                  query: str = "") -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            painters = []
            for i in range(pages):
                context = await browser.new_context(viewport={"width": 1280, "height": 1000})
                painters.append(Painter(await context.new_page(), i, query))
            await asyncio.gather(*(painter.open(url, backend) for painter in painters))
            await asyncio.gather(*(painter.paint(strokes) for painter in painters))
            result = {"pages": pages, "backend": backend, "latencies": [t for q in painters for t in q.latencies],
                      "leave": [t for q in painters for t in q.leave],
                      "first_visit": getattr(painters[0], "first_visit", None),
                      "long": [d for q in painters for d in await q.long_tasks()]}
            if pages == 1:
                result["long_ms"], result["during"] = await painters[0].long_stroke()
                if screenshot:  # the README's picture: after the long stroke's facade is shown
                    up = await painters[0].page.evaluate("() => window.__up[window.__up.length - 1]")
                    await painters[0].page.wait_for_function(f"() => window.__shown.some(t => t > {up})",
                                                             timeout=30_000)
                    await painters[0].page.screenshot(path=screenshot, full_page=True)
            return result
        finally:
            await browser.close()


def summary(r: dict, strokes: int) -> str:
    lat, leave = r["latencies"], [t for t in r["leave"] if t == t]
    q = statistics.quantiles(lat, n=20) if len(lat) > 1 else lat * 19
    who = "1 page" if r["pages"] == 1 else f"{r['pages']} pages painting at once"
    lines = [f"{r['backend']} mode, {who}, {strokes} strokes of ~200 ms each ({len(lat)} in all):",
             f"  mouse-up -> new facade shown: median {statistics.median(lat):.0f} ms, p95 {q[18]:.0f} ms, "
             f"min {min(lat):.0f}, max {max(lat):.0f}"]
    if r["backend"] == "browser":
        drawn = [t for t in lat if t > 0]
        lines.append(f"  {len(drawn)} of {len(lat)} strokes needed a facade after mouse-up (the others' last live "
                     f"facade was the final canvas's: 0 ms); theirs: median "
                     f"{statistics.median(drawn) if drawn else float('nan'):.0f} ms")
    if leave:
        lines.append(f"  mouse-up -> request leaves:   median {statistics.median(leave):.0f} ms, "
                     f"max {max(leave):.0f} ms")
    else:
        lines.append("  requests to the server's queue after a mouse-up: none")
    long = r.get("long", [])
    lines.append(f"  main-thread tasks over 50 ms while painting: {len(long)}"
                 + (f" (max {max(long):.0f} ms)" if long else ""))
    visit = r.get("first_visit")
    if visit:
        lines.append(f"  first visit ({visit['ep']}): {visit['total'] / 1e6:.2f} MB over the wire in all, "
                     f"{visit['worker'] / 1e6:.2f} MB of it the model's worker's (runtime + model); "
                     "model ready "
                     f"{visit['modelMs'] / 1000:.1f} s after the page started it, "
                     f"first browser facade {visit['firstMs']:.0f} ms later; "
                     f"page opened -> that facade {visit['firstFacadeAt'] / 1000:.1f} s")
        for name, again in visit.get("again", {}).items():
            lines.append(f"  {name} (same fresh profile): {again['total'] / 1e6:.2f} MB over the wire, "
                         f"{again['worker'] / 1e6:.2f} MB of it the worker's")
    if "during" in r:
        lines.append(f"  a {r['long_ms'] / 1000:.1f} s stroke: {r['during']} new facades shown while the button "
                     "was down")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.canvas_benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="weights (default: the bundled ones)")
    p.add_argument("--pages", type=int, nargs="+", default=[1, 4], help="painters at once, one run each (default 1 4)")
    p.add_argument("--strokes", type=int, default=20, help="strokes per page (default 20)")
    p.add_argument("--threads", type=int, help="the app's --threads (default: its own default)")
    p.add_argument("--screenshot", metavar="PNG", help="also save the 1-page run's page there at the end")
    p.add_argument("--backend", nargs="+", choices=["server", "browser"], default=["server", "browser"],
                   help="who draws the facades, one run each (default: server browser)")
    p.add_argument("--query", default="", help="more of the page's address, e.g. '&threads=1' (browser mode's "
                   "WebAssembly threads)")
    args = p.parse_args(argv)
    extra = ["--threads", str(args.threads)] if args.threads else []
    print(f"headless Chromium 1280x1000 against `python app.py` ({os.cpu_count()} CPUs, shared), "
          f"weights: {args.weights or 'bundled'}")
    for backend in args.backend:
        for pages in args.pages:
            with app_process(args.weights, "cpu", *extra) as (url, _):  # a fresh server for each run
                shot = args.screenshot if pages == 1 and backend == args.backend[0] else None
                r = asyncio.run(measure(url, pages, args.strokes, shot, backend, args.query))
            print(summary(r, args.strokes), flush=True)


if __name__ == "__main__":
    main()
