"""``python -m pix2pix.bench``: generator inference speed, the authors' way vs our fast path, side by side.

Baseline = how the authors' ``test.py`` runs: fp32, eager, NCHW, ``torch.no_grad``. Fast path = what
``Pix2Pix`` can do: channels_last, ``inference_mode``, ``torch.compile`` with inductor freezing, and
reduced precision (bf16 on CPUs that have it, fp16 on CUDA). The variants run in interleaved rounds in
one process, so machine noise hits them alike and the ratios hold even when absolute times wander.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import torch

from .models import UnetGenerator
from .predictor import default_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _variants(model: UnetGenerator, device: torch.device, compile: bool) -> dict[str, tuple[Callable, bool]]:
    """name -> (forward taking (x, masks), wants channels_last input)."""
    base = model
    fast = UnetGenerator(**model._hub_mixin_config).eval().requires_grad_(False)
    fast.load_state_dict(model.state_dict())
    fast = fast.to(device, memory_format=torch.channels_last)
    compiled = torch.compile(fast, options={"freezing": True}) if compile else None
    low = torch.float16 if device.type == "cuda" else torch.bfloat16
    has_low = device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported()

    def baseline(x, masks):
        with torch.no_grad():
            return base(x, masks=masks)

    def make(fn, dtype=None):
        def run(x, masks):
            ctx = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
            with torch.inference_mode(), ctx:
                return fn(x, masks=masks)

        return run

    variants = {"baseline (fp32, eager, NCHW)": (baseline, False), "channels_last + inference_mode": (make(fast), True)}
    if compiled is not None:
        variants["fast: + compile (freezing)"] = (make(compiled), True)
        if has_low:
            variants[f"fast: + compile + {str(low).removeprefix('torch.')}"] = (make(compiled, low), True)
    return variants


def run(ngf: int = 64, batch_sizes: tuple[int, ...] = (1, 4), rounds: int = 10, device: str | None = None,
        compile: bool = True) -> list[dict]:
    dev = torch.device(device) if device else default_device()
    torch.manual_seed(0)
    model = UnetGenerator(ngf=ngf).eval().requires_grad_(False).to(dev)
    variants = _variants(model, dev, compile)
    rows = []
    print(f"device: {dev} ({torch.get_num_threads()} CPU threads), torch {torch.__version__}, ngf={ngf}, 256x256, "
          f"dropout on (seeded masks), {rounds} interleaved rounds")
    for bs in batch_sizes:
        x = torch.rand(bs, 3, 256, 256, device=dev) * 2 - 1
        xs = {False: x, True: x.contiguous(memory_format=torch.channels_last)}
        masks = [m.to(dev) for m in model.dropout_masks(list(range(bs)), 256)]
        reference = None
        times: dict[str, list[float]] = {name: [] for name in variants}
        errors: dict[str, float] = {}
        for name, (fn, cl) in variants.items():  # warm-up (compiles) and accuracy vs the baseline
            for _ in range(2):
                out = fn(xs[cl], masks).float()
            reference = out if reference is None else reference
            errors[name] = (out - reference).abs().max().item()
        for _ in range(rounds):
            for name, (fn, cl) in variants.items():
                _sync(dev)
                t = time.perf_counter()
                fn(xs[cl], masks)
                _sync(dev)
                times[name].append((time.perf_counter() - t) / bs)
        base_ips = None
        for name in variants:
            ts = sorted(times[name])
            med, p90 = statistics.median(ts), ts[min(len(ts) - 1, int(round(0.9 * (len(ts) - 1))))]
            ips = 1.0 / med
            base_ips = base_ips or ips
            rows.append(dict(batch=bs, variant=name, median_ms=med * 1e3, p90_ms=p90 * 1e3, images_per_s=ips,
                             speedup=ips / base_ips, max_abs_diff=errors[name]))
    return rows


def print_table(rows: list[dict]) -> None:
    header = f"{'batch':>5}  {'variant':<34} {'ms/img p50':>10} {'p90':>8} {'img/s':>8} {'vs base':>8} {'max|diff|':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['batch']:>5}  {r['variant']:<34} {r['median_ms']:>10.1f} {r['p90_ms']:>8.1f} "
              f"{r['images_per_s']:>8.2f} {r['speedup']:>7.2f}x {r['max_abs_diff']:>10.2e}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m pix2pix.bench", description=__doc__.splitlines()[0])
    p.add_argument("--ngf", type=int, default=64, help="generator width (64 = the paper's model)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    p.add_argument("--rounds", type=int, default=10, help="timed rounds per variant")
    p.add_argument("--device", default=None)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    args = p.parse_args(argv)
    print_table(run(args.ngf, tuple(args.batch_sizes), args.rounds, args.device, not args.no_compile))


if __name__ == "__main__":
    main()
