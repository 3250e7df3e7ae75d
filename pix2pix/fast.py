"""The inference fast path: the same generator and weights, laid out to run faster.

oneDNN runs a 4x4 stride-2 transposed convolution on small inputs (the U-Net's inner decoder, 1x1 to
8x8) slower than its FLOPs warrant, badly so in bf16: those layers are bound by reading 1024x512x16
weights, and a plain matrix product streams them far better. ``FastConvTranspose2d`` computes such a
layer as ``weight^T @ input`` (one GEMM) followed by ``fold`` (col2im), which is the transposed
convolution's definition, and keeps the native kernel for large inputs, where it is faster; the RGB
output layer, where oneDNN is slow with 3 output channels, takes the GEMM too. The encoder's small
convolutions get the same treatment (``unfold`` + GEMM). Outputs
match ``nn.ConvTranspose2d`` to float rounding; ``python -m pix2pix.bench`` measures the difference.

Whether the fast path, bf16 or ONNX Runtime (``pix2pix.export``) is worth it on the CPU at hand is timed, by the
rule of ``pix2pix.speed``: ``plan_inference`` builds the candidates (the plain fp32 network among them) and
applies it; ``inference_network`` builds what the plan chose.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .export import OnnxGenerator, onnx_file, onnxruntime_available
from .models import UnetGenerator
from .speed import (
    DTYPES,
    INFERENCE_BF16_MIN_SPEEDUP,
    Variant,
    best_of,
    check_precision,
    cpu_has_bf16,
    describe,
    pick,
    timed_once,
)
from .speed import name as variant_name

#: Who runs a CPU model: "auto" (timed), "torch" (never ONNX Runtime) or "onnxruntime".
RUNTIMES = ("auto", "torch", "onnxruntime")

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


def optimize_for_inference(generator: UnetGenerator, device: torch.device | str = "cpu", precision: str = "fp32",
                           fast_path: bool = True) -> UnetGenerator:
    """A copy of ``generator`` in eval mode, laid out for inference on ``device``.

    CPU: with ``fast_path`` the small layers become GEMMs; NCHW (channels_last is no faster there); with
    ``precision="bf16"`` the weights themselves in bf16 (faster than autocast, which recasts them on every
    call). GPU: channels_last, which cuDNN's reduced-precision kernels prefer; the weights stay fp32 there
    and the predictor autocasts. Weights are copied, not changed: train and save the original, serve the copy.
    """
    device = torch.device(device)
    fast = copy.deepcopy(generator).eval().requires_grad_(False).to(device)
    if device.type != "cpu":
        return fast.to(memory_format=torch.channels_last)
    if fast_path:
        for module in fast.modules():
            for child in module.children():
                if type(child) is nn.ConvTranspose2d:
                    child.__class__ = FastConvTranspose2d  # same attributes and parameters, new forward
                elif type(child) is nn.Conv2d:
                    child.__class__ = FastConv2d
    return fast.to(DTYPES[precision])


@dataclass(frozen=True)
class InferencePlan:
    """How a ``Pix2Pix`` runs its generator: the precision, the layout (``pix2pix.speed.LAYOUTS``: the plain
    network, its GEMM fast path, or ONNX Runtime), and why (for the logs)."""

    precision: str
    layout: str
    why: str

    @property
    def fast_path(self) -> bool:
        return self.layout == "gemm"

    @property
    def name(self) -> str:
        """The choice in the start-up line's words, e.g. ``bf16 + GEMM layers`` or ``fp32 on onnxruntime``."""
        return variant_name((self.precision, self.layout))


def inference_network(generator: UnetGenerator, device: torch.device | str, plan: InferencePlan):
    """What runs the forwards for ``plan``: a torch module (``optimize_for_inference``) or, for the
    "onnxruntime" layout, an ``OnnxGenerator`` over the generator's cached ONNX file; both are called as
    ``net(x, masks=, z=)``."""
    if plan.layout == "onnxruntime":
        return OnnxGenerator(generator, onnx_file(generator))
    return optimize_for_inference(generator, device, plan.precision, plan.fast_path)


def plan_inference(generator: UnetGenerator, device: torch.device, precision: str = "auto",
                   fast_path: bool | None = None, runtime: str = "auto") -> InferencePlan:
    """The precision and layout to serve ``generator`` with on ``device``; ``ValueError`` for a precision
    or runtime that cannot run there.

    On the CPU the candidates are the plain fp32 network (the authors' forward, the baseline), the fast path
    in fp32, ONNX Runtime (fp32; where ``onnxruntime`` is installed and ``runtime`` allows it) and, where oneDNN
    has bf16 kernels, the fast path in bf16 (always with the GEMM layers, whose per-sample rule keeps a seed's
    facade the same alone or batched); ``pix2pix.speed.pick`` chooses among those ``precision``, ``fast_path``
    (when given) and ``runtime`` ("auto", "torch" or "onnxruntime") allow. CUDA: fp16 autocast for "auto",
    nothing timed; Apple's MPS: fp32.
    """
    plan = untimed_plan(device, precision, fast_path, runtime)
    if plan.layout == "onnxruntime" or device.type != "cpu":
        return plan
    variants = _candidates(precision, fast_path, runtime)
    if len(variants) == 1:
        return InferencePlan(*variants[0], "as asked")
    seconds = time_inference(generator, variants)
    chosen = pick(seconds, INFERENCE_BF16_MIN_SPEEDUP)
    why = describe(seconds, chosen)
    return InferencePlan(*chosen, why if precision == "auto" else f"as asked; {why.removeprefix('auto: ')}")


def untimed_plan(device: torch.device, precision: str = "auto", fast_path: bool | None = None,
                 runtime: str = "auto") -> InferencePlan:
    """The plan for these options without timing anything (what ``Pix2Pix`` starts with): "auto" is fp16
    autocast on CUDA and the plain fp32 network elsewhere; bf16 on the CPU takes the GEMM layers unless
    ``fast_path=False`` (as ``plan_inference`` times it); runtime "onnxruntime" is ONNX Runtime, as asked.
    ``ValueError`` for a precision or runtime that cannot run on ``device``."""
    check_precision(precision, device)
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if runtime == "onnxruntime":
        if device.type != "cpu" or precision not in ("auto", "fp32") or not onnxruntime_available():
            raise ValueError("runtime onnxruntime runs fp32 on the CPU and needs the onnx and onnxruntime "
                             "packages (pip install onnx onnxruntime)")
        return InferencePlan("fp32", "onnxruntime", "as asked")
    if device.type != "cpu":
        chosen = ("fp16" if device.type == "cuda" else "fp32") if precision == "auto" else precision
        return InferencePlan(chosen, "plain", "auto" if precision == "auto" else "as asked")
    chosen = "fp32" if precision == "auto" else precision
    gemm = fast_path if fast_path is not None else chosen == "bf16"
    why = "not timed (Pix2Pix.choose_fastest times the variants)" if precision == "auto" else "as asked"
    return InferencePlan(chosen, "gemm" if gemm else "plain", why)


def _candidates(precision: str, fast_path: bool | None, runtime: str) -> list[Variant]:
    """The CPU variants ``plan_inference`` times for these options."""
    variants: list[Variant] = []
    if precision in ("auto", "fp32"):
        variants += [("fp32", "plain"), ("fp32", "gemm")]
        if fast_path is None and runtime == "auto" and onnxruntime_available():
            variants.append(("fp32", "onnxruntime"))
    if precision == "bf16" or (precision == "auto" and cpu_has_bf16()):
        variants.append(("bf16", "gemm"))
    if fast_path is not None:  # as asked (the benchmark times each layout on its own)
        layout = "gemm" if fast_path else "plain"
        variants = [(p, layout) for p in dict.fromkeys(p for p, _ in variants)]
    return variants


def time_inference(generator: UnetGenerator, variants: list[Variant], rounds: int = 3) -> dict[Variant, float]:
    """Seconds of a batch-1 forward of each variant on this CPU (``speed.best_of``), once per process per
    network shape and thread count: every generator of a shape runs alike, whatever its weights."""
    shape = tuple((k, tuple(v.shape)) for k, v in generator.state_dict().items())
    key = ("inference", type(generator).__name__, shape, tuple(variants), torch.get_num_threads())

    def measure() -> dict[Variant, float]:
        size = 2**generator.num_downs
        masks, z = generator.sample_noise([0], size)
        runs = {}
        for variant in variants:
            net = inference_network(generator, "cpu", InferencePlan(*variant, "timing"))
            x = torch.zeros(1, generator.in_channels, size, size, dtype=DTYPES[variant[0]])
            runs[variant] = lambda net=net, x=x: net(x, masks=masks, z=z)
        with torch.inference_mode():
            return best_of(runs, rounds)

    return timed_once(key, measure)
