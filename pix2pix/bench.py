"""``python -m pix2pix.bench``: generator inference speed, the authors' way vs ours, side by side.

Baseline = how the authors' ``test.py`` runs: fp32, eager, NCHW, ``torch.no_grad``. The other variants
are ``Pix2Pix.forward`` itself in each precision: the fast path (``pix2pix.fast``: small layers as
GEMMs on the CPU, channels_last on GPUs) under ``inference_mode``, in fp32 and in reduced precision (bf16
weights on CPUs whose oneDNN has bf16 kernels, fp16 autocast on CUDA), then the same through
``torch.compile`` with inductor freezing (``Pix2Pix.load(compile=True)``). The variants run in
interleaved rounds in one process, so machine noise hits them alike and the ratios hold even when
absolute times wander.

The end-to-end table puts ``Pix2Pix.generate`` on a 256x256 label PNG (reading, snapping, dropout masks,
forward, conversion to a PIL image: everything a caller waits for), with the plan ``auto`` picks here
(``pix2pix.speed``), beside a plain forward of the same network (fp32, eager, ``no_grad``, masks and latent
code included) on the already-prepared tensor: for the bundled model, then a random network per ``--ngf``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from .device import resolve_device
from .export import onnxruntime_available
from .models import UnetGenerator
from .predictor import Pix2Pix


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _variants(model: UnetGenerator, device: torch.device, compile: bool) -> dict[str, Callable]:
    """name -> forward taking (x, masks, z). The first is the baseline the others are compared with."""
    low = "fp16" if device.type == "cuda" else "bf16"
    has_low = device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported()
    precisions = ["fp32", low] if has_low else ["fp32"]

    def baseline(x, masks, z):
        with torch.no_grad():
            return model(x, masks=masks, z=z)

    variants = {"baseline (fp32, eager, NCHW)": baseline}
    for precision in precisions:
        variants[f"fast, {precision}"] = Pix2Pix(model, device, precision=precision, fast_path=True).forward
    if device.type == "cpu" and onnxruntime_available():
        variants["onnxruntime, fp32"] = Pix2Pix(model, device, runtime="onnxruntime").forward
    if compile:
        for precision in precisions:
            variants[f"fast + compile, {precision}"] = Pix2Pix(model, device, True, precision, fast_path=True).forward
    return variants


def run(ngf: int = 64, batch_sizes: tuple[int, ...] = (1, 4), rounds: int = 10, device: str | None = None,
        compile: bool = True) -> list[dict]:
    dev = resolve_device(device)
    torch.manual_seed(0)
    model = UnetGenerator(ngf=ngf).eval().requires_grad_(False).to(dev)
    variants = _variants(model, dev, compile)
    print(f"device: {dev} ({torch.get_num_threads()} CPU threads), torch {torch.__version__}, ngf={ngf}, 256x256, "
          f"dropout on (seeded masks), {rounds} interleaved rounds")
    rows = []
    for bs in batch_sizes:
        x = torch.rand(bs, 3, 256, 256, device=dev) * 2 - 1
        masks, z = model.sample_noise(list(range(bs)), 256)
        masks, z = [m.to(dev) for m in masks], None if z is None else z.to(dev)
        reference = None
        errors: dict[str, float] = {}
        for name, fn in variants.items():  # warm-up (compiles), and accuracy against the baseline
            for _ in range(2):
                out = fn(x, masks, z).float()
            reference = out if reference is None else reference
            errors[name] = (out - reference).abs().max().item()
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, fn in variants.items():
                _sync(dev)
                t = time.perf_counter()
                fn(x, masks, z)
                _sync(dev)
                times[name].append((time.perf_counter() - t) / bs)
        base_ips = None
        for name, ts in times.items():
            ts = sorted(ts)
            med, p90 = statistics.median(ts), ts[round(0.9 * (len(ts) - 1))]
            base_ips = base_ips or 1.0 / med
            rows.append(dict(batch=bs, variant=name, median_ms=med * 1e3, p90_ms=p90 * 1e3, images_per_s=1.0 / med,
                             speedup=(1.0 / med) / base_ips, max_abs_diff=errors[name]))
    return rows


def end_to_end(model: UnetGenerator, name: str, rounds: int = 20, device: str | None = None,
               compile: bool = True) -> dict:
    """Median ms of ``generate()`` end to end (the plan ``auto`` picks here; fp32; compiled) against a plain
    eager fp32 forward of the same network (masks and latent code included) on the prepared tensor."""
    from .assets import example_labels
    from .images import label_to_tensor

    dev = resolve_device(device)
    model = model.eval().requires_grad_(False).to(dev)
    label = example_labels()[0].read_bytes()  # a 256x256 label PNG from the test split
    x = label_to_tensor(label)[0][None].to(dev)
    masks, z = model.sample_noise([0], 256)
    masks, z = [m.to(dev) for m in masks], None if z is None else z.to(dev)
    auto = Pix2Pix(model, device=dev)
    auto.choose_fastest()

    def naive():
        with torch.no_grad():
            model(x, masks=masks, z=z)
        _sync(dev)

    runs = {"plain forward (fp32, eager, tensor in)": naive,
            f"generate(), PNG in -> PIL out ({_plan_name(auto)})": lambda: auto.generate(label, seed=0)}
    if auto.precision != "fp32":
        fp32 = Pix2Pix(model, device=dev, precision="fp32")
        runs[f"generate(), {_plan_name(fp32)}"] = lambda: fp32.generate(label, seed=0)
    if compile:
        compiled = Pix2Pix(model, device=dev, compile=True)
        compiled.choose_fastest()  # the timed plan, as before, then compiled
        runs[f"generate(), compiled ({_plan_name(compiled)})"] = lambda: compiled.generate(label, seed=0)
    times = best_rounds(runs, rounds)
    return {"name": name, "device": str(dev), "ms": times, "plan": auto.plan.why}


def _plan_name(model: Pix2Pix) -> str:
    return model.plan.name


def best_rounds(runs: dict[str, Callable], rounds: int) -> dict[str, float]:
    """Median ms of each run over interleaved rounds, after three warm-up calls each."""
    for fn in runs.values():
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def print_end_to_end(result: dict) -> None:
    base = next(iter(result["ms"].values()))
    for name, ms in result["ms"].items():
        print(f"  {result['name']:<14} {name:<52} {ms:>8.1f} ms  {base / ms:>5.2f}x the plain forward")
    print(f"  {'':<14} ({result['plan']})")


def print_table(rows: list[dict]) -> None:
    header = (f"{'batch':>5}  {'variant':<30} {'ms/img p50':>10} {'p90':>8} {'img/s':>8} {'vs base':>8} "
              f"{'max|diff|':>10}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['batch']:>5}  {r['variant']:<30} {r['median_ms']:>10.1f} {r['p90_ms']:>8.1f} "
              f"{r['images_per_s']:>8.2f} {r['speedup']:>7.2f}x {r['max_abs_diff']:>10.2e}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m pix2pix.bench", description=__doc__.splitlines()[0])
    p.add_argument("--ngf", type=int, nargs="+", default=[32, 64],
                   help="generator widths (64 = the paper's model, 32 = the bundled one)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    p.add_argument("--rounds", type=int, default=10, help="timed rounds per variant")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    args = p.parse_args(argv)
    for ngf in args.ngf:
        print_table(run(ngf, tuple(args.batch_sizes), args.rounds, args.device, not args.no_compile))
        print()
    print("end to end (one 256x256 label PNG, batch 1):")
    for name, generator in _end_to_end_models(args.ngf):
        print_end_to_end(end_to_end(generator, name, max(args.rounds, 10), args.device, not args.no_compile))


def _end_to_end_models(widths: list[int]) -> list[tuple[str, UnetGenerator]]:
    """The bundled model itself (its latent code included) where it is there, then a random network per width."""
    from .assets import BUNDLED_WEIGHTS
    from .predictor import load_generator

    models = []
    if (BUNDLED_WEIGHTS / "config.json").is_file():
        models.append(("bundled model", load_generator(BUNDLED_WEIGHTS)))
    for ngf in widths:
        torch.manual_seed(0)
        models.append((f"ngf {ngf}, nz 0", UnetGenerator(ngf=ngf)))
    return models


if __name__ == "__main__":
    main()
