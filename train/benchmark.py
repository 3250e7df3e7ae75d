"""``python -m train.benchmark`` (or ``python -m train --benchmark``): the paper's setting against the cpu
recipe, each as it really trains, side by side in one run.

- paper baseline: ngf/ndf 64, batch 1, fp32, eager, the streaming loader (``DataLoader`` workers decoding
  and resizing JPEGs), as the authors' code runs;
- cpu recipe: as ``--recipe cpu`` trains (its width, batch, objective and EMA), compiled, the training set in
  memory (``InMemoryPairs``), in the precision ``--precision auto`` picks here (bf16 where it is timed faster).

Both run ``train.step.train_step`` on the real facades training pairs (``--data``) and are timed from
batch to batch, loading included, after their warm-up (compilation). The ratio and the wall time of a
200-epoch run over the whole training split (model and data time, no evaluation; with ``--limit`` the speed
is timed on the subset and the column is still for every pair of the split) are printed. On CUDA the fast
side also uses bf16, channels_last and fused Adam. "images/s" counts images through the networks: with the
mode-seeking term each label map goes through twice (two codes), and "maps/s" counts the label maps.

``--compare FLAGS`` (repeatable) instead times the cpu recipe against itself with ``FLAGS`` added (an ablation's
options, e.g. ``--compare "--lambda-fm 10"``): eager steps on a fixed batch, every variant in the baseline's
precision, interleaved rounds, the best of each (robust to a busy machine), printed as seconds per step and as a
ratio to the baseline. That ratio is each ablation row's cost per step in docs/results.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from pathlib import Path

import torch

from pix2pix import resolve_device
from pix2pix.device import keep_freed_memory
from pix2pix.speed import best_of

from .config import RECIPES, TrainConfig, add_options, parse_args
from .data import EpochSampler, PairedDataset, check_pairs, find_pairs, make_batches, split_folder
from .step import choose_precision, make_networks, train_step


@dataclasses.dataclass
class Setting:
    label: str
    cfg: TrainConfig
    in_memory: bool
    fast: bool  # the CUDA extras (bf16, channels_last, fused Adam) where available


def measure(setting: Setting, pairs: list, device: torch.device, steps: int, warmup: int) -> dict:
    """Speed of ``setting`` on ``pairs``: the trainer's own networks, wrapping, batches and step (``train.step``),
    in one process, timed from batch to batch after ``warmup`` steps."""
    cfg = setting.cfg if setting.fast else dataclasses.replace(setting.cfg, channels_last=False, fused_adam=False)
    is_cuda = device.type == "cuda"
    precision, why = choose_precision(cfg, device) if setting.fast else ("fp32", "the authors' setting")
    nets = make_networks(cfg, device, precision, seed=0)
    nets.wrap(compile=cfg.compile)
    dataset = PairedDataset(pairs, cfg.image_size, cfg.resolved_load_size, seed=0)
    sampler = EpochSampler(dataset)
    t0 = time.perf_counter()
    epoch_batches, source = make_batches(dataset, sampler, cfg.batch_size, "on" if setting.in_memory else "off",
                                         cfg.num_workers, pin_memory=is_cuda)
    setup = time.perf_counter() - t0
    sync = torch.cuda.synchronize if is_cuda else (lambda: None)

    def batches():
        for epoch in itertools.count():
            sampler.set_epoch(epoch)
            yield from epoch_batches()

    it = batches()
    t0 = time.perf_counter()
    for _ in range(warmup):
        x, y = (nets.to_input(t) for t in next(it))
        train_step(nets, x, y)
    sync()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = (nets.to_input(t) for t in next(it))
        losses = train_step(nets, x, y)
    losses.tolist()
    sync()
    seconds = time.perf_counter() - t0
    params = sum(p.numel() for p in nets.G.parameters())
    return {"setting": setting.label, "ngf": cfg.ngf, "batch": cfg.batch_size, "compile": cfg.compile,
            "data": source, "params": params, "setup_s": setup, "warmup_s": warm, "precision": precision, "why": why,
            "it_s": steps / seconds, "img_s": steps * cfg.batch_size * nets.objective.copies / seconds,
            "maps_s": steps * cfg.batch_size / seconds}


def settings(base: TrainConfig) -> list[Setting]:
    paper = dataclasses.replace(base, **RECIPES["paper"], ngf=64, ndf=64, batch_size=1, compile=False,
                                num_workers=base.num_workers)
    cpu = dataclasses.replace(base, **RECIPES["cpu"])
    return [Setting("paper baseline", paper, in_memory=False, fast=False),
            Setting("cpu recipe", cpu, in_memory=True, fast=True)]


def run_benchmark(base: TrainConfig, steps: int, epochs: int = 200) -> list[dict]:
    device = resolve_device(base.device)
    if device.type == "cpu":
        keep_freed_memory()  # as python -m train does; the baseline gains from it too
    root = Path(base.data) if base.data else None
    if root is None:
        from .download import find_or_download_facades

        root = find_or_download_facades(Path(base.cache_dir), progress=base.progress)
    folder = split_folder(root, "train") or root
    pairs, _ = check_pairs(find_pairs(folder, limit=base.limit))
    full = len(find_pairs(folder))  # the wall-time column is for the whole training split, not the --limit subset
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"benchmark on {device} ({name}), torch {torch.__version__}: {len(pairs)} training pairs from {root}, "
          f"{steps} timed steps per setting after warm-up")
    rows = []
    for setting in settings(base):
        warmup = 3 if setting.cfg.compile else 1
        print(f"  {setting.label}: warming up ({'compiling, ' if setting.cfg.compile else ''}{warmup} steps) ...",
              flush=True)
        rows.append(measure(setting, pairs, device, steps, warmup))
    run_label = f"{epochs} ep. x {full}"
    header = (f"{'setting':<16} {'ngf':>4} {'params':>7} {'batch':>5} {'prec.':>5} {'compile':>7} {'data':<36} "
              f"{'warm-up':>8} {'it/s':>6} {'images/s':>9} {'maps/s':>7} {run_label:>{max(10, len(run_label))}}")
    print(header)
    print("-" * len(header))
    for r in rows:
        hours = full * epochs / r["maps_s"] / 3600
        print(f"{r['setting']:<16} {r['ngf']:>4} {r['params'] / 1e6:>6.1f}M {r['batch']:>5} {r['precision']:>5} "
              f"{'yes' if r['compile'] else 'no':>7} {r['data']:<36} {r['warmup_s']:>7.0f}s {r['it_s']:>6.2f} "
              f"{r['img_s']:>9.2f} {r['maps_s']:>7.2f} {hours:>{max(10, len(run_label)) - 1}.1f}h")
    print(f"({run_label}: the wall time of {epochs} epochs over the whole training split, all {full} pairs"
          + (f", at the speed timed on the first {len(pairs)})" if len(pairs) < full else ")"))
    base_r, cpu_r = rows
    print(f"cpu recipe precision: {cpu_r['precision']} ({cpu_r['why']})")
    print(f"cpu recipe / paper baseline: {cpu_r['img_s'] / base_r['img_s']:.2f}x images/s, "
          f"{cpu_r['maps_s'] / base_r['maps_s']:.2f}x label maps/s")
    return rows


def compare_steps(variants: list[str], rounds: int = 5, device: str = "auto",
                  base_flags: tuple[str, ...] = ()) -> dict[str, float]:
    """Seconds per training step of the cpu recipe (plus ``base_flags``) and of each ``variants`` (flags added to
    it), timed as the module's docstring says. Returns {label: seconds}, the baseline first."""
    dev = resolve_device(device)
    common = ["--recipe", "cpu", "--no-compile", *base_flags]
    base = parse_args(common)
    precision, why = choose_precision(base, dev)
    flags = {"cpu recipe": []} | {v: v.split() for v in variants}
    runs = {}
    torch.manual_seed(0)
    x = torch.rand(base.batch_size, 3, base.image_size, base.image_size, device=dev) * 2 - 1
    y = torch.rand_like(x) * 2 - 1
    for label, extra in flags.items():
        nets = make_networks(parse_args([*common, *extra]), dev, precision, seed=0)
        runs[label] = lambda nets=nets: train_step(nets, x, y)
    print(f"step cost on {dev} ({torch.get_num_threads()} threads), {precision} ({why}); best of {rounds} "
          f"interleaved rounds, eager", flush=True)
    seconds = best_of(runs, rounds, torch.cuda.synchronize if dev.type == "cuda" else (lambda: None))
    width = max(map(len, seconds))
    for label, t in seconds.items():
        print(f"{label:<{width}}  {t:7.3f} s/step  {t / seconds['cpu recipe']:.2f}x the cpu recipe")
    return seconds


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m train.benchmark", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_options(parser, ("data", "limit", "cache_dir", "device", "num_workers", "progress"))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per setting, after the warm-up")
    parser.add_argument("--epochs", type=int, default=200, help="epochs for the wall-time estimate")
    parser.add_argument("--benchmark", action="store_true", help=argparse.SUPPRESS)  # python -m train --benchmark
    parser.add_argument("--compare", action="append", default=[], metavar="FLAGS",
                        help="time the cpu recipe with FLAGS added against the cpu recipe (repeatable; no data "
                             "needed): each ablation's cost per step as a ratio")
    parser.add_argument("--rounds", type=int, default=5, help="--compare: interleaved timing rounds")
    parser.add_argument("--compare-base", default="", metavar="FLAGS",
                        help="--compare: flags added to the cpu recipe for the baseline and every variant (e.g. the "
                             "recipe as it was when the ablations of docs/results.md ran)")
    args = vars(parser.parse_args(argv))
    steps, epochs = args.pop("steps"), args.pop("epochs")
    args.pop("benchmark")
    compare, rounds, compare_base = args.pop("compare"), args.pop("rounds"), args.pop("compare_base")
    if compare:
        return [compare_steps(compare, rounds, args["device"], tuple(compare_base.split()))]
    if steps < 1:
        parser.error("--steps must be at least 1")
    return run_benchmark(TrainConfig(**args).check(), steps, epochs)


if __name__ == "__main__":
    main()
