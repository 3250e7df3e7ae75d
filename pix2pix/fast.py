"""The inference fast path: the same generator and weights, laid out to run faster.

oneDNN runs a 4x4 stride-2 transposed convolution on small inputs (the U-Net's inner decoder, 1x1 to
8x8) slower than its FLOPs warrant, badly so in bf16: those layers are bound by reading 1024x512x16
weights, and a plain matrix product streams them far better. ``FastConvTranspose2d`` computes such a
layer as ``weight^T @ input`` (one GEMM) followed by ``fold`` (col2im), which is the transposed
convolution's definition, and keeps the native kernel for large inputs, where it is faster; the RGB
output layer, where oneDNN is slow with 3 output channels, takes the GEMM too. The encoder's small
convolutions get the same treatment (``unfold`` + GEMM). Outputs
match ``nn.ConvTranspose2d`` to float rounding; ``python -m pix2pix.bench`` measures the difference.

Precision is the other lever: a 256x256 forward is mostly arithmetic (3.1 GFLOP at ngf 32), and where
the CPU multiplies bf16 natively it does twice the work per cycle. ``resolve_precision`` decides by timing.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

from .models import UnetGenerator

#: A layer takes the GEMM path when each sample has at most this many pixels (the input's for a
#: transposed convolution, the output's for a convolution): 8x8 and smaller, measured. Per sample, not per
#: batch, so a sample takes the same kernels alone or batched and gives the very same facade (in bf16
#: too, where a different kernel would move it by a few grey levels).
GEMM_MAX_PIXELS = 8 * 8
#: ... and a transposed convolution with at most this many output channels always does (the RGB output
#: layer: oneDNN's kernel is slow with so few channels, the GEMM is small whatever the size).
GEMM_MAX_OUT_CHANNELS = 4


class FastConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same parameters, same state dict) with a GEMM + fold path for small inputs."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        n, cin, h, w = x.shape
        small = h * w <= GEMM_MAX_PIXELS or self.out_channels <= GEMM_MAX_OUT_CHANNELS
        if not small or self.groups != 1 or self.dilation != (1, 1) or self.output_padding != (0, 0):
            return super().forward(x, output_size)
        kh, kw = self.kernel_size
        (sh, sw), (ph, pw) = self.stride, self.padding
        # (cin, cout*kh*kw)^T @ (cin, n*h*w): each input pixel's contribution to a kh x kw output patch.
        # One GEMM for the whole batch, so the weights (the cost of these layers) are read once.
        x = x.reshape(n, cin, h * w).transpose(0, 1).reshape(cin, n * h * w)
        cols = (self.weight.reshape(cin, -1).t() @ x).view(-1, n, h * w).transpose(0, 1)
        out_size = ((h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw)
        y = F.fold(cols, out_size, (kh, kw), stride=(sh, sw), padding=(ph, pw))
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


class FastConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters) computed as ``unfold`` (im2col) + one GEMM for small outputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, cin, h, w = x.shape
        kh, kw = self.kernel_size
        (sh, sw), (ph, pw) = self.stride, self.padding
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if oh * ow > GEMM_MAX_PIXELS or self.groups != 1 or self.dilation != (1, 1) or self.padding_mode != "zeros":
            return super().forward(x)
        cols = F.unfold(x, (kh, kw), stride=(sh, sw), padding=(ph, pw))  # (n, cin*kh*kw, oh*ow)
        cols = cols.transpose(0, 1).reshape(cols.shape[1], n * oh * ow)  # one GEMM for the batch
        y = (self.weight.reshape(self.out_channels, -1) @ cols).view(-1, n, oh, ow).transpose(0, 1)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


def optimize_for_inference(
    generator: UnetGenerator, device: torch.device | str = "cpu", precision: str = "fp32"
) -> UnetGenerator:
    """A copy of ``generator`` in eval mode, laid out for fast inference on ``device``.

    CPU: small layers as GEMMs, NCHW (channels_last measured no faster there), and with
    ``precision="bf16"`` the weights themselves in bf16 (faster than autocast, which recasts them on
    every call). GPU: channels_last, which cuDNN's reduced-precision kernels prefer; the weights stay
    fp32 there and the predictor uses autocast. Weights are copied, not changed: train and save the
    original, serve the copy.
    """
    device = torch.device(device)
    fast = copy.deepcopy(generator).eval().requires_grad_(False).to(device)
    if device.type != "cpu":
        return fast.to(memory_format=torch.channels_last)
    for module in fast.modules():
        for name, child in module.named_children():
            if type(child) is nn.ConvTranspose2d:
                child.__class__ = FastConvTranspose2d  # same attributes and parameters, new forward
            elif type(child) is nn.Conv2d:
                child.__class__ = FastConv2d
    return fast.to(DTYPES[precision])


#: The precisions a ``Pix2Pix`` runs in; "auto" picks one of the others for the device.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISION_HELP = ("auto (the fastest here: on the CPU bf16 or fp32, timed at load; fp16 on CUDA), fp32, bf16, "
                  "or fp16 (CUDA only). bf16 and fp16 move a facade by a grey level or so (default: auto)")

#: On the CPU, bf16 replaces fp32 only when it is at least this much faster here. It moves the output by
#: a grey level or two, which is worth a clear gain, not a coin toss between two equally fast choices.
BF16_MIN_SPEEDUP = 1.2


def resolve_precision(precision: str, generator: UnetGenerator, device: torch.device) -> str:
    """``precision`` as one of fp32, bf16, fp16 for ``device``; ``ValueError`` for one that cannot run there.

    "auto": fp16 on CUDA (autocast keeps instance norm in fp32); fp32 on Apple's MPS; on the CPU,
    whichever of bf16 and fp32 is faster on this very CPU, timed at load (``cpu_bf16_speedup``). bf16 is
    twice as fast as fp32 on CPUs whose vector units multiply bf16 natively (AMD Zen 4, for one) and
    slower on others that merely support it, so asking the CPU's feature flags is not enough.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("fp16 runs on CUDA; on the CPU use bf16 or fp32 (or auto)")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    if device.type != "cpu":
        return "fp32"
    return "bf16" if cpu_bf16_speedup(generator) >= BF16_MIN_SPEEDUP else "fp32"


def cpu_bf16_speedup(generator: UnetGenerator, rounds: int = 3) -> float:
    """How many times faster a batch-1 forward of the fast path runs in bf16 than in fp32 on this CPU.

    Interleaved rounds after one warm-up each, best of each: about eight forwards, a quarter of a second
    for the bundled model. 0 where oneDNN has no bf16 kernels for this CPU.
    """
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return 0.0
    size = 2**generator.num_downs
    x = torch.zeros(1, generator.in_channels, size, size)
    masks, z = generator.sample_noise([0], size)
    nets = {p: optimize_for_inference(generator, "cpu", p) for p in ("fp32", "bf16")}
    best = {p: float("inf") for p in nets}
    with torch.inference_mode():
        for i in range(rounds + 1):
            for p, net in nets.items():
                start = time.perf_counter()
                net(x.to(DTYPES[p]), masks=masks, z=z)
                if i:  # the first round builds oneDNN's kernels
                    best[p] = min(best[p], time.perf_counter() - start)
    return best["fp32"] / best["bf16"]
