import pytest
import torch
from torch import nn

import pix2pix.fast
from pix2pix import Pix2Pix
from pix2pix.fast import (
    GEMM_MAX_PIXELS,
    FastConv2d,
    FastConvTranspose2d,
    optimize_for_inference,
    plan_inference,
    time_inference,
)
from pix2pix.speed import INFERENCE_BF16_MIN_SPEEDUP


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


def test_precision_names_are_checked(tiny_generator):
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="unknown precision 'half'.*auto, fp32, bf16, fp16"):
        plan_inference(tiny_generator, cpu, "half")
    with pytest.raises(ValueError, match="fp16 runs on CUDA"):
        plan_inference(tiny_generator, cpu, "fp16")
    assert plan_inference(tiny_generator, cpu, "bf16").precision == "bf16"
    assert plan_inference(tiny_generator, cpu, "fp32").precision == "fp32"
    assert plan_inference(tiny_generator, torch.device("mps"), "auto").precision == "fp32"


def _timings(plain: float, fast: float, bf16: float) -> dict:
    return {("fp32", "plain"): plain, ("fp32", "gemm"): fast, ("bf16", "gemm"): bf16}


@pytest.mark.parametrize("seconds, expected", [
    (_timings(1.0, 0.9, 0.9 / (INFERENCE_BF16_MIN_SPEEDUP + 0.3)), ("bf16", "gemm")),  # bf16 clearly faster
    (_timings(1.0, 0.9, 0.9 / (INFERENCE_BF16_MIN_SPEEDUP - 0.1)), ("fp32", "gemm")),  # not by enough
    (_timings(0.8, 1.0, 0.8 / (INFERENCE_BF16_MIN_SPEEDUP - 0.1)), ("fp32", "plain")),  # the plain network is fastest
    (_timings(1.0, 0.9, float("inf")), ("fp32", "gemm")),  # no bf16 kernels
])
def test_auto_takes_the_fastest_fp32_and_bf16_only_when_clearly_faster(monkeypatch, tiny_generator, seconds, expected):
    monkeypatch.setattr(pix2pix.fast, "time_inference", lambda generator, variants: seconds)
    monkeypatch.setattr(pix2pix.fast, "cpu_has_bf16", lambda: True)
    plan = plan_inference(tiny_generator, torch.device("cpu"), "auto")
    assert (plan.precision, plan.layout) == expected
    model = Pix2Pix(tiny_generator, "cpu")
    assert (model.precision, model.plan.layout) == ("fp32", "plain")  # made, not timed: the plain network
    assert model.choose_fastest() == plan and (model.precision, model.plan.layout) == expected
    layers = {type(m) for m in model._net.modules()}
    assert (FastConvTranspose2d in layers) == (expected[1] == "gemm")  # the plain network when it is the fastest


def test_fp32_asked_still_times_the_fast_path_against_the_plain_network(monkeypatch, tiny_generator):
    monkeypatch.setattr(pix2pix.fast, "time_inference", lambda generator, variants: {
        ("fp32", "plain"): 0.5, ("fp32", "gemm"): 1.0})
    plan = plan_inference(tiny_generator, torch.device("cpu"), "fp32")
    assert (plan.precision, plan.layout) == ("fp32", "plain") and plan.why.startswith("as asked")


def test_the_plain_network_serves_the_same_facade(tiny_generator):
    plain = Pix2Pix(tiny_generator, "cpu", precision="fp32", fast_path=False)
    fast = Pix2Pix(tiny_generator, "cpu", precision="fp32", fast_path=True)
    assert not any(isinstance(m, FastConvTranspose2d) for m in plain._net.modules())
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    masks, z = tiny_generator.sample_noise([3, 4], 256)
    assert torch.allclose(plain.forward(x, masks, z), fast.forward(x, masks, z), atol=1e-5)


def test_inference_is_timed_once_per_process_and_shape(tiny_generator, monkeypatch):
    import pix2pix.speed

    pix2pix.speed.forget_timings()
    calls = []
    real = pix2pix.fast.best_of
    monkeypatch.setattr(pix2pix.fast, "best_of", lambda runs, rounds: calls.append(1) or real(runs, 1))
    variants = [("fp32", "plain"), ("fp32", "gemm")]
    seconds = time_inference(tiny_generator, variants)
    assert set(seconds) == set(variants) and all(0 < s < float("inf") for s in seconds.values())
    twin = type(tiny_generator)(ngf=8)  # other weights, same shape
    assert time_inference(twin, variants) == seconds and len(calls) == 1
