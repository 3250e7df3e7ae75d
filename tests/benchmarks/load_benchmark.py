"""Load benchmark (a script, not a test): what a facade costs the server, and what many clients get from it.

    python -m tests.benchmarks.load_benchmark --weights assets/weights      # the bundled model
    python -m tests.benchmarks.load_benchmark --weights assets/weights --route page --batching on
    python -m tests.benchmarks.load_benchmark                               # ngf=64 random weights
    python -m tests.benchmarks.load_benchmark --weights runs/x/export --clients 32 --rounds 4
    python -m tests.benchmarks.load_benchmark --url http://127.0.0.1:7860/  # an app already running

By default it starts `python app.py` on 127.0.0.1 (its own process, as a user would) twice, with batching
off (--max-batch-size 1) and on, around the same weights, and measures each:

- **server CPU per request**: ``--sequential`` calls to /generate one after the other from one client;
  the server process's CPU time (user + system, all its threads, from ``/proc/<pid>/stat``) over those
  calls, divided by their number. That is what one request costs the machine, whatever the cores do.
- **load**: ``--clients`` threads (one gradio_client each, as that many users would), each calling
  /generate ``--rounds`` times back to back; throughput over the whole run, p50/p95 latency per call,
  and how many failed (any failure is reported, and makes the exit status 1).

``--route`` picks what the clients call: ``api`` (default), the public /generate through gradio_client, or
``page``, what the page's controller calls (POST /p2p/render, the grid deflated, plain HTTP with keep-alive:
webapp/render.py). In the same run it times ``Pix2Pix.generate()`` alone in this process, on one thread at the
app's precision, and prints the ratios the issue asks about: the server's CPU per facade over generate()'s, and
the clients' throughput over what one thread of generate() alone could draw (1000 / its ms).

With --url it measures that one app as it is (no CPU figure unless it is a local process: ``--pid``).
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from gradio_client import Client, handle_file

from pix2pix import UnetGenerator, example_labels
from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]


def reuse_tls_context() -> None:
    """Make httpx build its TLS context once. gradio_client opens a new httpx connection for nearly every
    HTTP request, and httpx builds a new TLS context for each, loading the system's CA bundle: 78% of these
    clients' CPU in a py-spy profile, for plain HTTP to 127.0.0.1. The clients share the server's 2 cores,
    so that would measure the clients; with one context they cost about a third as much."""
    import httpx._transports.default as transport

    transport.create_ssl_context = functools.lru_cache(maxsize=None)(transport.create_ssl_context)


def new_client(url: str) -> Client:
    return Client(url, verbose=False)


class PageClient:
    """What the page's controller sends: POST /p2p/render with the grid deflated, over one kept-alive connection;
    called like gradio_client's ``predict`` for /generate (label file, seed, stochastic)."""

    def __init__(self, url: str):
        import http.client
        from urllib.parse import urlparse

        address = urlparse(url)
        self.connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
        self.grids: dict[str, bytes] = {}

    def predict(self, label, seed: int, stochastic: bool, api_name: str = "/generate") -> bytes:
        import zlib

        from pix2pix.palette import rgb_to_index

        path = str(label.get("path", label) if isinstance(label, dict) else label)
        if path not in self.grids:
            from PIL import Image

            with Image.open(path) as image:
                grid = rgb_to_index(np.asarray(image.convert("RGB").resize((256, 256), Image.NEAREST)))
            self.grids[path] = zlib.compress(grid.astype(np.uint8).tobytes())
        self.connection.request("POST", f"/p2p/render?seed={seed}&count=1&stochastic={int(stochastic)}",
                                body=self.grids[path])
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        return body

    def close(self) -> None:
        self.connection.close()


def generate_alone(weights: str, precision: str, labels: list[Path], n: int = 30) -> float:
    """ms of CPU per ``Pix2Pix.generate()`` of one label map, on one thread, in this process."""
    from pix2pix import Pix2Pix

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = Pix2Pix.load(weights, device="cpu", precision=precision)
        for i in range(3):
            model.generate(labels[i % len(labels)], seed=i)
        start = time.process_time()
        for i in range(n):
            model.generate(labels[i % len(labels)], seed=100 + i)
        return 1000 * (time.process_time() - start) / n
    finally:
        torch.set_num_threads(threads)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux ``/proc/<pid>/stat``, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sequential(url: str, n: int, labels: list[Path], pid: int | None, make=new_client) -> dict:
    """``n`` calls one after the other from one client: the server's CPU per call and the client's latency."""
    client = make(url)
    for i in range(3):  # warm-up
        client.predict(handle_file(str(labels[i % len(labels)])), i, True, api_name="/generate")
    latencies = []
    cpu0 = cpu_seconds(pid) if pid else None
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        client.predict(handle_file(str(labels[i % len(labels)])), 500 + i, True, api_name="/generate")
        latencies.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    cpu = (cpu_seconds(pid) - cpu0) if pid else None
    client.close()
    return {"cpu_ms": None if cpu is None else 1000 * cpu / n, "latency_ms": 1000 * statistics.median(latencies),
            "cores_busy": None if cpu is None else cpu / wall}


def fire(url: str, clients: int, rounds: int, labels: list[Path], pid: int | None = None, make=new_client) -> dict:
    """``clients`` threads, each with its own client, each calling /generate ``rounds`` times back to back."""
    pool_clients = [make(url) for _ in range(clients)]
    pool_clients[0].predict(handle_file(str(labels[0])), 0, True, api_name="/generate")  # warm-up
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def one(i: int) -> None:
        barrier.wait()
        for r in range(rounds):
            start = time.perf_counter()
            try:
                pool_clients[i].predict(handle_file(str(labels[(i + r) % len(labels)])), 1000 + i * rounds + r, True,
                                        api_name="/generate")
            except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                continue
            with lock:
                latencies.append(time.perf_counter() - start)

    cpu0 = cpu_seconds(pid) if pid else None
    own0 = time.process_time()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients)))
    wall = time.perf_counter() - start
    cpu = (cpu_seconds(pid) - cpu0) if pid else None
    own = time.process_time() - own0
    for client in pool_clients:
        client.close()
    done = len(latencies)
    return {
        "wall": wall,
        "requests": clients * rounds,
        "errors": errors,
        "throughput": done / wall,
        "p50": float(np.percentile(latencies, 50)) if latencies else float("nan"),
        "p95": float(np.percentile(latencies, 95)) if latencies else float("nan"),
        "load_cpu_ms": None if cpu is None or not done else 1000 * cpu / done,
        "client_cpu_ms": 1000 * own / max(1, done),
    }


@contextlib.contextmanager
def app_process(weights: str | None, device: str = "cpu", *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python app.py` in its own process on a free port of 127.0.0.1 (as a user would start it), up and
    answering: yields (url, process), and stops it afterwards. ``weights`` None: the bundled ones."""
    port = free_port()
    cmd = [sys.executable, str(REPO / "app.py"), "--device", device, "--host", "127.0.0.1", "--port", str(port),
           *(["--weights", weights] if weights else []), *args]
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
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_app(weights: str, device: str, max_batch_size: int, args: argparse.Namespace, labels: list[Path]) -> dict:
    """Start `python app.py`, measure it (sequential CPU, then the concurrent load), stop it."""
    with app_process(weights, device, "--max-batch-size", str(max_batch_size), "--precision", args.precision,
                     *(["--threads", str(args.threads)] if args.threads else [])) as (url, proc):
        make = PageClient if args.route == "page" else new_client
        result = sequential(url, args.sequential, labels, proc.pid, make)
        result.update(fire(url, args.clients, args.rounds, labels, proc.pid, make))
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.load_benchmark",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--rounds", type=int, default=8, help="calls per client, back to back (default 8)")
    parser.add_argument("--sequential", type=int, default=60,
                        help="one-at-a-time calls for the CPU figure (default 60)")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--weights", help="weights to serve (default: random weights at --ngf)")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, help="the app's --threads (default: its own default)")
    parser.add_argument("--url", help="measure an app that is already running instead")
    parser.add_argument("--pid", type=int, help="with --url: the server's process id, for the CPU figure")
    parser.add_argument("--route", choices=["api", "page"], default="api",
                        help="api: /generate through gradio_client; page: POST /p2p/render, as the page sends it")
    parser.add_argument("--batching", choices=["off", "on", "both"], default="both",
                        help="run the app with batching off (--max-batch-size 1), on, or both (default)")
    args = parser.parse_args(argv)
    labels = example_labels()
    reuse_tls_context()

    if args.url:
        s = sequential(args.url, args.sequential, labels, args.pid)
        r = fire(args.url, args.clients, args.rounds, labels, args.pid)
        cpu = f"{s['cpu_ms']:.0f} ms of server CPU per request, " if s["cpu_ms"] is not None else ""
        print(f"{args.url}: {cpu}{s['latency_ms']:.0f} ms per request alone; {args.clients} clients x {args.rounds}: "
              f"{r['throughput']:.2f} req/s, p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s, {len(r['errors'])} failed")
        for error in sorted(set(r["errors"]))[:5]:
            print("  failed:", error)
        return 1 if r["errors"] else 0

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if not weights:
            torch.manual_seed(0)
            UnetGenerator(ngf=args.ngf).save_pretrained(tmp)
            weights = tmp
        what = args.weights or f"random weights, ngf={args.ngf}"
        route = "POST /p2p/render (the page's route)" if args.route == "page" else "/generate (gradio_client)"
        print(f"model: {what}; device {args.device}, precision {args.precision}; {os.cpu_count()} CPUs; "
              f"`python app.py` on 127.0.0.1; {args.sequential} sequential calls to {route}, then "
              f"{args.clients} concurrent clients x {args.rounds} calls each")
        alone = generate_alone(weights, args.precision, labels)
        modes = {"off": [("batching off (`--max-batch-size 1`)", 1)],
                 "on": [(f"batching on (`--max-batch-size {args.max_batch_size}`)", args.max_batch_size)]}
        modes["both"] = modes["off"] + modes["on"]
        results = {mode: run_app(weights, args.device, size, args, labels) for mode, size in modes[args.batching]}
    print()
    print(f"| mode | server CPU per request, sequential (ms) | latency alone (ms) | {args.clients} clients: "
          "throughput (req/s) | p50 (s) | p95 (s) | server CPU per request (ms) | the clients' CPU per request (ms) "
          "| failed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    failed = 0
    for mode, r in results.items():
        failed += len(r["errors"])
        print(f"| {mode} | {r['cpu_ms']:.0f} | {r['latency_ms']:.0f} | {r['throughput']:.2f} | {r['p50']:.2f} | "
              f"{r['p95']:.2f} | {r['load_cpu_ms']:.0f} | {r['client_cpu_ms']:.0f} | "
              f"{len(r['errors'])} of {r['requests']} |")
    print(f"\ngenerate() alone, one thread, in this process: {alone:.1f} ms of CPU per facade "
          f"(one thread's capacity: {1000 / alone:.1f} facades/s)")
    for mode, r in results.items():
        print(f"{mode}: server CPU per facade / generate() alone = {r['cpu_ms'] / alone:.2f}x (sequential), "
              f"{r['load_cpu_ms'] / alone:.2f}x (under load); {args.clients} clients get "
              f"{r['throughput'] * alone / 1000:.2f}x of one thread's capacity")
    for mode, r in results.items():
        for error in sorted(set(r["errors"]))[:5]:
            print(f"  {mode} failed: {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
