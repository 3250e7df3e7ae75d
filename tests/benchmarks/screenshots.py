"""The README's pictures of the app (a script, not a test): the desktop page with its variations, and a phone.

    python -m tests.benchmarks.screenshots                         # the bundled weights -> assets/
    python -m tests.benchmarks.screenshots --weights runs/x/export --out /tmp

Starts `python app.py` on 127.0.0.1 (as a user would), opens it in Debian's /usr/bin/chromium, and on a
1280x800 desktop clicks "4 variations" on the first example and waits for the four facades (the picture is the
first screen: everything is on it); on a 390x844 phone (touch) it waits for the first facade. Both in the page's
default mode: drawn in the browser where it can, once it has decided (docs/browser.md). Each is saved
once everything on it has loaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.benchmarks.load_benchmark import app_process

REPO = Path(__file__).resolve().parents[2]

CHROMIUM = "/usr/bin/chromium"
READY_JS = ("() => { const c = document.querySelector('#canvas canvas');"
            " const i = document.querySelector('#facade img');"
            " return c && c.p2p && i && i.complete && i.naturalWidth > 0; }")
#: The page has settled on who draws the facades (browser mode started, or the server with its note).
DECIDED_JS = ("() => window.p2pPage && window.p2pPage.ready && (window.p2pPage.active() ||"
              " document.body.dataset.backend === 'server' && !document.querySelector('#backend')"
              ".textContent.startsWith('Loading'))")
VARIATIONS_JS = ("() => { const t = Array.from(document.querySelectorAll('#variations img'));"
                 " return t.length === 4 && t.every(i => i.complete && i.naturalWidth > 0); }")


def shoot(url: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    desktop, phone = out / "screenshot.png", out / "screenshot-phone.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url)
            page.wait_for_function(READY_JS, timeout=120_000)
            page.wait_for_function(DECIDED_JS, timeout=300_000)
            page.locator("#variations-btn").click()
            page.wait_for_function(VARIATIONS_JS, timeout=120_000)
            page.mouse.move(0, 0)  # no hover state in the picture
            page.wait_for_function("() => !document.querySelector('#facade[data-busy], #variations[data-busy]')")
            page.screenshot(path=str(desktop))
            page.close()
            page = browser.new_page(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True,
                                    device_scale_factor=2)
            page.goto(url)
            page.wait_for_function(READY_JS, timeout=120_000)
            page.wait_for_function(DECIDED_JS, timeout=300_000)
            page.wait_for_function("() => window.p2pPage.idle()", timeout=60_000)
            page.screenshot(path=str(phone))
        finally:
            browser.close()
    return [desktop, phone]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.screenshots", description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="weights (default: the bundled ones)")
    p.add_argument("--out", type=Path, default=REPO / "assets",
                   help="folder for screenshot.png and screenshot-phone.png")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with app_process(args.weights, "cpu") as (url, _):
        for path in shoot(url, args.out):
            print(f"saved {path}")


if __name__ == "__main__":
    main()
