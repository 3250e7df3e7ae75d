"""The inference fast path: the same generator and weights, laid out to run faster.

oneDNN runs a 4x4 stride-2 transposed convolution on small inputs (the U-Net's inner decoder, 1x1 to
16x16) many times slower than its FLOPs warrant: those layers are bound by reading 1024x512x16
weights, and a plain matrix product streams them far better. ``FastConvTranspose2d`` computes such a
layer as ``weight^T @ input`` (one GEMM) followed by ``fold`` (col2im), which is the transposed
convolution's definition, and keeps the native kernel for large inputs, where it is faster. The
encoder's small convolutions get the same treatment (``unfold`` + GEMM). Outputs
match ``nn.ConvTranspose2d`` to float rounding; ``python -m pix2pix.bench`` measures the difference.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .models import UnetGenerator

#: Inputs with at most this many pixels take the GEMM + fold path (16x16 and smaller, measured).
GEMM_MAX_PIXELS = 16 * 16


class FastConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same parameters, same state dict) with a GEMM + fold path for small inputs."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        n, cin, h, w = x.shape
        if h * w > GEMM_MAX_PIXELS or self.groups != 1 or self.dilation != (1, 1) or self.output_padding != (0, 0):
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


def optimize_for_inference(generator: UnetGenerator, device: torch.device | str = "cpu") -> UnetGenerator:
    """A copy of ``generator`` in eval mode, laid out for fast inference on ``device``.

    CPU: small-input convolutions as GEMMs, NCHW (channels_last measured no faster there). GPU:
    channels_last, which cuDNN's reduced-precision kernels prefer. Weights are copied, not changed:
    train and save the original, serve the copy.
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
    return fast
