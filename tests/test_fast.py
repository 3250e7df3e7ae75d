import pytest
import torch
from torch import nn

from pix2pix.fast import GEMM_MAX_PIXELS, FastConv2d, FastConvTranspose2d, optimize_for_inference


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


def test_small_inputs_take_the_gemm_path_and_large_ones_the_native_kernel(monkeypatch):
    calls = []
    native = nn.ConvTranspose2d.forward
    monkeypatch.setattr(nn.ConvTranspose2d, "forward", lambda self, *a, **k: calls.append(1) or native(self, *a, **k))
    layer = FastConvTranspose2d(4, 2, 4, 2, 1)
    side = int(GEMM_MAX_PIXELS**0.5)
    layer(torch.randn(1, 4, side, side))
    assert calls == []  # at the limit: one GEMM + fold
    layer(torch.randn(1, 4, side * 2, side * 2))
    assert calls == [1]  # above it: oneDNN's own kernel
