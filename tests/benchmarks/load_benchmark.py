"""Load benchmark (a script, not a test): what `/generate` costs the server, and what many clients get from it.

    python -m tests.benchmarks.load_benchmark --weights assets/weights      # the bundled model
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux ``/proc/<pid>/stat``, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sequential(url: str, n: int, labels: list[Path], pid: int | None) -> dict:
    """``n`` calls one after the other from one client: the server's CPU per call and the client's latency."""
    client = new_client(url)
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


def fire(url: str, clients: int, rounds: int, labels: list[Path], pid: int | None = None) -> dict:
    """``clients`` threads, each with its own client, each calling /generate ``rounds`` times back to back."""
    pool_clients = [new_client(url) for _ in range(clients)]
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
        result = sequential(url, args.sequential, labels, proc.pid)
        result.update(fire(url, args.clients, args.rounds, labels, proc.pid))
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
        print(f"model: {what}; device {args.device}, precision {args.precision}; {os.cpu_count()} CPUs; "
              f"`python app.py` on 127.0.0.1; {args.sequential} sequential calls to /generate, then "
              f"{args.clients} concurrent gradio_client clients x {args.rounds} calls each")
        results = {
            "batching off (`--max-batch-size 1`)": run_app(weights, args.device, 1, args, labels),
            f"batching on (`--max-batch-size {args.max_batch_size}`)":
                run_app(weights, args.device, args.max_batch_size, args, labels),
        }
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
    for mode, r in results.items():
        for error in sorted(set(r["errors"]))[:5]:
            print(f"  {mode} failed: {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
