"""Soak test (a script, not part of the quick suite): the app under mixed traffic for a bounded time.

    python -m tests.benchmarks.soak --minutes 10                     # the bundled weights
    python -m tests.benchmarks.soak --minutes 2 --weights runs/x/export

Starts ``python app.py`` on 127.0.0.1 in its own process (its Gradio cache in a temporary folder, cleaned
every minute of files older than ``--cache-max-age``), then for ``--minutes``:
- 16 clients call /generate back to back with the example label maps and random seeds;
- one more client sends a stream of bad and oversized uploads: text named .png, a truncated PNG, a PNG
  whose header claims 5000x5000, a 4096x4096 label map (the largest accepted), a 3000x2000 noisy JPEG
  (refused as a photo).
Every 15 s it samples the server's memory (RSS) and the cache folder's size. At the end it prints
requests served, errors by kind, p50/p95 latency of the good requests, and memory and disk at the start,
the middle and the end. No good request may fail; memory and disk should level off.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

from pix2pix import example_labels, random_layout
from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]


def bad_uploads(folder: Path) -> list[Path]:
    """The stream of bad and oversized uploads, written once."""
    rng = np.random.default_rng(0)
    text = folder / "notes.png"
    text.write_text("not an image")
    cut = folder / "cut.png"
    data = example_labels()[0].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    header = folder / "claims-5000.png"
    Image.new("1", (5000, 5000)).save(header)
    biggest = folder / "4096.png"  # a label map at the largest size accepted: 4096x4096, under 1 MB
    random_layout(0, 256).resize((4096, 4096), Image.NEAREST).save(biggest)
    photo = folder / "noisy.jpg"  # decoded in full, then refused: "looks like a photo, not a label map"
    Image.fromarray(rng.integers(0, 256, (2000, 3000, 3), dtype=np.uint8)).save(photo, quality=90)
    return [text, cut, header, biggest, photo]


def folder_bytes(folder: Path) -> int:
    """Size of the files under ``folder``; the app's cleaner may delete any of them while this walks."""
    total = 0
    for parent, _, names in os.walk(folder):  # os.walk skips a folder that vanished under it
        for name in names:
            try:
                total += os.stat(os.path.join(parent, name)).st_size
            except FileNotFoundError:
                pass
    return total


def rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def kind_of(error: Exception) -> str:
    text = str(error)
    for kind in ("not an image", "too large", "corrupt or truncated", "looks like a photo", "seed"):
        if kind in text:
            return kind
    return f"other: {type(error).__name__}: {text[:80]}"


def soak(url: str, minutes: float, clients: int, bad: list[Path], pid: int, cache: Path) -> dict:
    deadline = time.monotonic() + minutes * 60
    labels = example_labels()
    latencies: list[float] = []
    good_errors: Counter = Counter()
    bad_results: Counter = Counter()
    samples = [(0.0, rss_mb(pid), folder_bytes(cache))]
    lock = threading.Lock()
    start = time.monotonic()

    def good(i: int) -> None:
        client = Client(url, verbose=False)
        rng = random.Random(i)
        while time.monotonic() < deadline:
            t = time.perf_counter()
            try:
                client.predict(handle_file(str(rng.choice(labels))), rng.randrange(2**31 - 1), True,
                               api_name="/generate")
                with lock:
                    latencies.append(time.perf_counter() - t)
            except Exception as e:  # noqa: BLE001 - counted: no good request may fail
                with lock:
                    good_errors[kind_of(e)] += 1

    def bad_stream() -> None:
        client = Client(url, verbose=False)
        k = 0
        while time.monotonic() < deadline:
            path = bad[k % len(bad)]
            k += 1
            try:
                client.predict(handle_file(str(path)), 0, True, api_name="/generate")
                with lock:
                    bad_results[f"{path.name}: served"] += 1
            except Exception as e:  # noqa: BLE001 - the expected refusals, by kind
                with lock:
                    bad_results[f"{path.name}: {kind_of(e)}"] += 1
            time.sleep(0.5)  # a steady trickle beside the good traffic, not a wait for a result

    threads = [threading.Thread(target=good, args=(i,)) for i in range(clients)] + [threading.Thread(target=bad_stream)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(15)  # the sampling period
        samples.append((time.monotonic() - start, rss_mb(pid), folder_bytes(cache)))
    for t in threads:
        t.join()
    return {"latencies": latencies, "good_errors": good_errors, "bad": bad_results, "samples": samples}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.soak", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--weights", help="weights for the app (default: the bundled ones)")
    p.add_argument("--cache-max-age", type=float, default=2, help="the app's --cache-max-age, in minutes")
    p.add_argument("--runtime", default="auto", help="the app's --runtime (auto, torch, onnxruntime)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cache, files = Path(tmp) / "gradio-cache", Path(tmp) / "uploads"
        cache.mkdir()
        files.mkdir()
        bad = bad_uploads(files)
        port = free_port()
        env = {**os.environ, "GRADIO_TEMP_DIR": str(cache), "GRADIO_ANALYTICS_ENABLED": "False"}
        cmd = [sys.executable, str(REPO / "app.py"), "--port", str(port), "--cache-max-age", str(args.cache_max_age),
               "--runtime", args.runtime]
        if args.weights:
            cmd += ["--weights", args.weights]
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{port}/"
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen(url, timeout=1)
                    break
                except OSError:
                    if server.poll() is not None:
                        raise SystemExit(f"the app exited: {server.stderr.read()[-2000:]}") from None
                    time.sleep(0.2)  # waiting for the server to listen
            r = soak(url, args.minutes, args.clients, bad, server.pid, cache)
        finally:
            server.terminate()
            server.wait(30)
    lat = sorted(r["latencies"])
    print(f"soak: {args.minutes:g} min, {args.clients} clients + a stream of bad uploads, app on 127.0.0.1 "
          f"(--runtime {args.runtime})")
    print(f"  good requests served: {len(lat)} ({len(lat) / (args.minutes * 60):.2f}/s), failed: "
          f"{sum(r['good_errors'].values())} {dict(r['good_errors']) or ''}")
    if lat:
        print(f"  latency p50 {statistics.median(lat):.2f} s, p95 {lat[int(0.95 * (len(lat) - 1))]:.2f} s, "
              f"max {lat[-1]:.2f} s")
    print("  bad uploads: " + ", ".join(f"{k} x{v}" for k, v in sorted(r["bad"].items())))
    samples = r["samples"]
    for label, (t, rss, disk) in (("start", samples[0]), ("middle", samples[len(samples) // 2]), ("end", samples[-1])):
        print(f"  {label:>6} ({t / 60:4.1f} min): server RSS {rss:7.0f} MB, cache {disk / 2**20:7.1f} MB")
    per_minute = [s for i, s in enumerate(samples) if i % 4 == 0]  # samples are 15 s apart
    print("  RSS by minute (MB):   " + " ".join(f"{rss:.0f}" for _, rss, _ in per_minute))
    print("  cache by minute (MB): " + " ".join(f"{disk / 2**20:.1f}" for _, _, disk in per_minute))
    return 1 if r["good_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
