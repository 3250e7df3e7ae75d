"""``python -m train --benchmark``: training throughput of the authors' setting vs this kit's fast path.

Baseline = fp32, eager, batch 1, contiguous tensors, plain Adam (how the authors' code runs). Fast path =
what ``python -m train`` does by default on this device (bf16 autocast, channels_last and fused Adam on
CUDA), at a larger batch, compiled with ``--compile``. Synthetic data, so the loader is not measured;
the model sizes are those of the options (``--ngf``, ``--ndf``, ``--image-size``).
"""

from __future__ import annotations

import contextlib
import time

import torch

from pix2pix import PatchDiscriminator, UnetGenerator, default_device

from .config import TrainConfig
from .trainer import make_optimizers, train_step

FACADES_IMAGES = 400


def measure(cfg: TrainConfig, device: torch.device, batch: int, fast: bool, compile: bool, steps: int,
            warmup: int) -> dict:
    is_cuda = device.type == "cuda"
    amp = fast and cfg.amp and is_cuda
    channels_last = fast and cfg.channels_last and is_cuda
    fused = fast and cfg.fused_adam and is_cuda
    torch.manual_seed(0)
    G = UnetGenerator(ngf=cfg.ngf, num_downs=cfg.num_downs).to(device)
    D = PatchDiscriminator(ndf=cfg.ndf, n_layers=cfg.n_layers_d).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    G, D = G.to(memory_format=fmt), D.to(memory_format=fmt)
    opt_g, opt_d, _, _ = make_optimizers(cfg, G, D, fused)
    G_run, D_run = (torch.compile(G), torch.compile(D)) if compile else (G, D)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    x = torch.rand(batch, 3, cfg.image_size, cfg.image_size, device=device).mul(2).sub(1).contiguous(memory_format=fmt)
    y = torch.rand_like(x).mul(2).sub(1)
    sync = torch.cuda.synchronize if is_cuda else (lambda: None)
    for _ in range(warmup):
        train_step(G_run, D_run, D_run, opt_g, opt_d, x, y, cfg.lambda_l1, autocast)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        losses = train_step(G_run, D_run, D_run, opt_g, opt_d, x, y, cfg.lambda_l1, autocast)
    losses.tolist()
    sync()
    seconds = time.perf_counter() - t0
    return {"batch": batch, "precision": "bf16" if amp else "fp32", "memory": "channels_last" if channels_last else "contiguous",
            "adam": "fused" if fused else "default", "compile": "yes" if compile else "no",
            "it_s": steps / seconds, "img_s": steps * batch / seconds}


def run_benchmark(cfg: TrainConfig) -> list[dict]:
    device = default_device() if cfg.device == "auto" else torch.device(cfg.device)
    batch = cfg.benchmark_batch_size or (16 if device.type == "cuda" else 4)
    steps = cfg.benchmark_steps
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"benchmark on {device} ({name}), torch {torch.__version__}: U-Net {cfg.image_size} ngf {cfg.ngf} + "
          f"PatchGAN ndf {cfg.ndf}, {steps} timed steps each after warm-up, synthetic data")
    warmup = 1 if device.type == "cpu" else 3
    rows = [("baseline (authors' setting)", measure(cfg, device, 1, fast=False, compile=False, steps=steps, warmup=warmup)),
            ("fast path", measure(cfg, device, batch, fast=True, compile=cfg.compile, steps=steps,
                                  warmup=warmup + 3 if cfg.compile else warmup))]
    header = f"{'setting':<28} {'batch':>5} {'precision':>9} {'memory':>13} {'adam':>7} {'compile':>7} {'it/s':>8} {'images/s':>9}"
    print(header)
    print("-" * len(header))
    for label, r in rows:
        print(f"{label:<28} {r['batch']:>5} {r['precision']:>9} {r['memory']:>13} {r['adam']:>7} {r['compile']:>7} "
              f"{r['it_s']:>8.2f} {r['img_s']:>9.2f}")
    base, fast = rows[0][1], rows[1][1]
    print(f"fast path / baseline: {fast['img_s'] / base['img_s']:.2f}x images/s ({fast['it_s'] / base['it_s']:.2f}x it/s)")
    images = FACADES_IMAGES * cfg.total_epochs
    print(f"estimated {cfg.total_epochs}-epoch facades run ({images:,} images, model time only): "
          f"baseline {images / base['img_s'] / 60:.1f} min, fast path {images / fast['img_s'] / 60:.1f} min")
    return [r for _, r in rows]
