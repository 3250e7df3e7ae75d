"""Load benchmark (a script, not a test): N concurrent gradio_client calls to /generate, batching on vs off.

    PYTHONPATH=. python tests/load_benchmark.py                      # ngf=64 random weights, 16 requests
    PYTHONPATH=. python tests/load_benchmark.py --weights runs/x/export --requests 32
    PYTHONPATH=. python tests/load_benchmark.py --url http://127.0.0.1:7860/   # an app already running

By default it starts `python app.py` on 127.0.0.1 twice (its own process), with batching off
(--max-batch-size 1) and on, around the same weights (random ngf=64 ones unless --weights), fires the requests from N threads (one client each, as N users would) and prints
throughput and p50/p95 latency side by side. With --url it measures that one app as it is.
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402

from pix2pix import UnetGenerator, example_labels  # noqa: E402
from tests.helpers import free_port  # noqa: E402


def fire(url: str, n: int, labels: list[Path]) -> dict:
    clients = [Client(url, verbose=False) for _ in range(n)]
    clients[0].predict(handle_file(str(labels[0])), 0, True, api_name="/generate")  # warm-up
    latencies = [0.0] * n
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        barrier.wait()
        start = time.perf_counter()
        clients[i].predict(handle_file(str(labels[i % len(labels)])), 1000 + i, True, api_name="/generate")
        latencies[i] = time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - start
    for client in clients:
        client.close()
    return {
        "wall": wall,
        "throughput": n / wall,
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
        "mean": statistics.fmean(latencies),
    }


def run_app(weights: str, device: str, max_batch_size: int, n: int, labels: list[Path]) -> dict:
    """Start `python app.py` in its own process (as a user would), measure it, stop it."""
    port = free_port()
    cmd = [sys.executable, str(REPO / "app.py"), "--weights", weights, "--device", device, "--host", "127.0.0.1",
           "--port", str(port), "--max-batch-size", str(max_batch_size)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "config", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("app.py did not start within 120 s") from None
                time.sleep(0.25)  # polling for the server to come up
        return fire(url, n, labels)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--weights", help="weights to serve (default: random weights at --ngf)")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--url", help="measure an app that is already running instead")
    args = parser.parse_args(argv)
    labels = example_labels()

    if args.url:
        r = fire(args.url, args.requests, labels)
        print(f"{args.requests} concurrent requests to {args.url}: {r['throughput']:.2f} req/s, "
              f"p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s, wall {r['wall']:.2f} s")
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if not weights:
            torch.manual_seed(0)
            UnetGenerator(ngf=args.ngf).save_pretrained(tmp)
            weights = tmp
        what = args.weights or f"random weights, ngf={args.ngf}"
        print(f"model: {what}; device {args.device}; {os.cpu_count()} CPUs; {args.requests} concurrent "
              "gradio_client requests to /generate of `python app.py` on 127.0.0.1")
        results = {
            "batching off": run_app(weights, args.device, 1, args.requests, labels),
            f"batching on (max_batch_size={args.max_batch_size})":
                run_app(weights, args.device, args.max_batch_size, args.requests, labels),
        }
    print()
    print("| mode | throughput (req/s) | p50 latency (s) | p95 latency (s) | wall (s) |")
    print("|---|---:|---:|---:|---:|")
    for mode, r in results.items():
        print(f"| {mode} | {r['throughput']:.2f} | {r['p50']:.2f} | {r['p95']:.2f} | {r['wall']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
