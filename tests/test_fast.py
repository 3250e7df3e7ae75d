import pytest
import torch
from torch import nn

import pix2pix.fast
from pix2pix import Pix2Pix
from pix2pix.fast import (
    BF16_MIN_SPEEDUP,
    GEMM_MAX_PIXELS,
    FastConv2d,
    FastConvTranspose2d,
    cpu_bf16_speedup,
    optimize_for_inference,
    resolve_precision,
)


@pytest.mark.parametrize("size", [1, 2, 8, 16, 32])
@pytest.mark.parametrize("bias", [False, True])
def test_fast_layers_equal_the_native_ones(size, bias):
    torch.manual_seed(size)
    x = torch.randn(2, 16, size, size)
    deconv = nn.ConvTranspose2d(16, 8, 4, 2, 1, bias=bias)
    fast = FastConvTranspose2d(16, 8, 4, 2, 1, bias=bias)
    fast.load_state_dict(deconv.state_dict())
    assert torch.allclose(fast(x), deconv(x), atol=1e-5)
    conv = nn.Conv2d(16, 8, 4, 2, 1, bias=bias)
    fast_conv = FastConv2d(16, 8, 4, 2, 1, bias=bias)
    fast_conv.load_state_dict(conv.state_dict())
    if size > 1:
        assert torch.allclose(fast_conv(x), conv(x), atol=1e-5)


def test_optimized_generator_matches_and_leaves_the_original_alone(tiny_generator):
    fast = optimize_for_inference(tiny_generator)
    assert sum(isinstance(m, FastConvTranspose2d) for m in fast.modules()) == 8
    assert not any(isinstance(m, (FastConv2d, FastConvTranspose2d)) for m in tiny_generator.modules())
    x = torch.rand(3, 3, 256, 256) * 2 - 1
    masks = tiny_generator.dropout_masks([1, 2, 3], 256)
    with torch.no_grad():
        assert torch.allclose(fast(x, masks=masks), tiny_generator(x, masks=masks), atol=1e-5)
    assert fast.state_dict().keys() == tiny_generator.state_dict().keys()


def _count_native_calls(monkeypatch) -> list:
    calls = []
    native = nn.ConvTranspose2d.forward
    monkeypatch.setattr(nn.ConvTranspose2d, "forward", lambda self, *a, **k: calls.append(1) or native(self, *a, **k))
    return calls


def test_small_inputs_take_the_gemm_path_and_large_ones_the_native_kernel(monkeypatch):
    calls = _count_native_calls(monkeypatch)
    layer = FastConvTranspose2d(8, 8, 4, 2, 1)
    side = int(GEMM_MAX_PIXELS**0.5)
    layer(torch.randn(3, 8, side, side))
    assert calls == []  # at the limit (per sample, whatever the batch): one GEMM + fold
    layer(torch.randn(1, 8, side * 2, side * 2))
    assert calls == [1]  # above it: oneDNN's own kernel


def test_the_rgb_output_layer_always_takes_the_gemm_path(monkeypatch):
    layer = FastConvTranspose2d(8, 3, 4, 2, 1)
    x = torch.randn(1, 8, 64, 64)
    expected = nn.ConvTranspose2d.forward(layer, x)
    calls = _count_native_calls(monkeypatch)
    assert torch.allclose(layer(x), expected, atol=1e-5) and calls == []


def test_bf16_copy_is_close_to_fp32(tiny_generator):
    fast = optimize_for_inference(tiny_generator, "cpu", "bf16")
    assert {p.dtype for p in fast.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in tiny_generator.parameters()} == {torch.float32}  # the original is untouched
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    masks = tiny_generator.dropout_masks([5], 256)
    with torch.no_grad():
        diff = (fast(x.bfloat16(), masks=masks).float() - tiny_generator(x, masks=masks)).abs()
    assert diff.mean() < 0.01 and diff.max() < 0.1  # [-1, 1] scale: a grey level is 0.008


def test_precision_names_are_checked():
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="unknown precision 'half'.*auto, fp32, bf16, fp16"):
        resolve_precision("half", None, cpu)
    with pytest.raises(ValueError, match="fp16 runs on CUDA"):
        resolve_precision("fp16", None, cpu)
    assert resolve_precision("bf16", None, cpu) == "bf16" and resolve_precision("fp32", None, cpu) == "fp32"
    assert resolve_precision("auto", None, torch.device("mps")) == "fp32"


@pytest.mark.parametrize("speedup, expected", [(BF16_MIN_SPEEDUP + 0.3, "bf16"), (BF16_MIN_SPEEDUP - 0.1, "fp32"),
                                               (0.0, "fp32")])
def test_auto_takes_bf16_on_the_cpu_only_when_it_is_clearly_faster(monkeypatch, tiny_generator, speedup, expected):
    monkeypatch.setattr(pix2pix.fast, "cpu_bf16_speedup", lambda generator: speedup)
    assert resolve_precision("auto", tiny_generator, torch.device("cpu")) == expected
    assert Pix2Pix(tiny_generator, "cpu").precision == expected


def test_bf16_speedup_is_measured(tiny_generator):
    speedup = cpu_bf16_speedup(tiny_generator, rounds=1)
    supported = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert (speedup > 0) if supported else (speedup == 0)
