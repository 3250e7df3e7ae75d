"""The recipe options the ablations of docs/results.md compare: DiffAugment for the discriminator, feature
matching, codes of large norm, where the code enters the U-Net and the resize-convolution decoder."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from pix2pix import PatchDiscriminator, Pix2Pix, UnetGenerator
from pix2pix.export import export_onnx
from pix2pix.fast import optimize_for_inference
from train.augment import augment, parse_policy
from train.config import parse_args
from train.step import LOSS_NAMES, Objective, make_networks, train_step

ALL = ("translation", "cutout", "color")


def test_geometry_moves_the_label_map_and_the_photos_together():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    la, fa, ra = augment(("translation", "cutout"), x, x.clone(), x.clone())
    assert torch.equal(la, fa) and torch.equal(fa, ra)  # the same shift and cutout for every image of a sample
    assert not torch.equal(la, x)
    assert (la == 0).flatten(1).float().mean(1).min() > 0.1  # every sample lost a square (or a border) to zeros


def test_colour_changes_the_photos_only_and_the_same_way():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    la, fa, ra = augment(("color",), x, x.clone(), x.clone())
    assert torch.equal(la, x) and torch.equal(fa, ra) and not torch.equal(fa, x)


def test_no_policy_is_the_identity_and_unknown_names_are_refused():
    x = torch.rand(2, 3, 8, 8)
    assert augment((), x, x)[1] is x
    assert parse_policy(" translation, cutout,") == ("translation", "cutout")
    with pytest.raises(SystemExit, match="unknown flip"):
        parse_args(["--diffaug", "translation,flip"])
    with pytest.raises(SystemExit, match="code-scale-max"):
        parse_args(["--code-scale-max", "0.5"])


def test_codes_of_large_norm_are_drawn_when_asked():
    torch.manual_seed(0)
    plain = Objective(nz=8).draw_codes(4000, torch.device("cpu")).norm(dim=1)
    torch.manual_seed(0)
    wide = Objective(nz=8, code_scale_max=1.6).draw_codes(4000, torch.device("cpu")).norm(dim=1)
    assert (wide > 4.4).float().mean() > 3 * (plain > 4.4).float().mean()  # seed 7's |z| = 4.37
    assert (wide < 1.5).float().mean() > 1.5 * (plain < 1.5).float().mean()


def test_the_discriminator_gives_its_features_for_matching():
    D = PatchDiscriminator(ndf=8)
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    logits, feats = D(x, y, features=True)
    assert torch.equal(logits, D(x, y)) and len(feats) == 4
    assert [f.shape[1] for f in feats] == [8, 16, 32, 64]


@pytest.mark.parametrize("flags", [
    ["--lambda-fm", "10", "--diffaug", "translation,cutout,color", "--code-scale-max", "1.6"],
    ["--code-at", "bottleneck", "--upsample", "resize", "--lambda-fm", "0"],
    ["--code-at", "decoder"],
    ["--ms-on", "detail", "--l1-downsample", "4", "--code-mod"],
    ["--ms-on", "dfeat", "--lambda-fm", "0", "--code-at", "all", "--nz", "16"],
    ["--code-maps", "0.5", "--ms-on", "dfeat"],
])
def test_a_step_with_the_options_trains_both_networks(flags):
    cfg = parse_args(["--recipe", "cpu", "--image-size", "64", "--ngf", "8", "--ndf", "8", "--no-compile", *flags])
    nets = make_networks(cfg, torch.device("cpu"), "fp32", seed=0)
    g0 = [p.detach().clone() for p in nets.G.parameters()]
    d0 = [p.detach().clone() for p in nets.D.parameters()]
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    losses = dict(zip(LOSS_NAMES, train_step(nets, x, y).tolist()))
    assert all(np.isfinite(v) for v in losses.values())
    assert (losses["g_fm"] > 0) == (cfg.lambda_fm > 0)  # the cpu recipe has feature matching on
    assert any(not torch.equal(a, b) for a, b in zip(g0, nets.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, nets.D.parameters()))


@pytest.mark.parametrize("code_at,upsample,code_mod", [("bottleneck", "transpose", False), ("decoder", "resize", False),
                                                       ("encoder", "resize", False), ("all", "transpose", True)])
def test_every_generator_variant_exports_and_takes_the_fast_path(tmp_path, code_at, upsample, code_mod):
    torch.manual_seed(0)
    G = UnetGenerator(ngf=8, nz=8, code_at=code_at, upsample=upsample, code_mod=code_mod).eval()
    if code_mod:  # trained modulation: the zero start would leave it out of the comparison
        with torch.no_grad():
            for conv in G.modulation:
                conv.weight.normal_(0, 0.05)
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    masks, z = G.sample_noise([3, 7], 256)
    with torch.inference_mode():
        expected = G(x, masks=masks, z=z)
        fast = optimize_for_inference(G)(x, masks=masks, z=z)
    assert (fast - expected).abs().max() < 1e-4
    # fp32 weights: the graph itself (fp16 storage, which moves a facade by ~1e-3, is test_export's subject)
    session = ort.InferenceSession(export_onnx(G, fp16_weights=False), providers=["CPUExecutionProvider"])
    feed = {"labels": x.numpy(), **{f"mask{k}": m.numpy() for k, m in enumerate(masks)}, "code": z.numpy()}
    assert np.abs(session.run(["facade"], feed)[0] - expected.numpy()).max() <= 1e-4
    int8 = ort.InferenceSession(export_onnx(G, int8_weights=True), providers=["CPUExecutionProvider"])
    assert np.abs(int8.run(["facade"], feed)[0] - expected.numpy()).mean() <= 0.01  # what the browser draws
    other = G(x[:1], seeds=[8])
    assert (G(x[:1], seeds=[7]) - other).abs().mean() > 1e-3  # the code still reaches the facade
    G.save_pretrained(tmp_path / "w")
    loaded = Pix2Pix.load(tmp_path / "w", device="cpu", precision="fp32").generator
    assert (loaded.code_at, loaded.upsample, loaded.code_mod) == (code_at, upsample, code_mod)


def test_code_maps_change_the_second_code_inside_a_box_only():
    torch.manual_seed(0)
    objective = Objective(lambda_ms=1.0, nz=8, code_maps=1.0)
    z, region = objective.draw_pair_codes(6, 32, torch.device("cpu"))
    assert z.shape == (12, 8, 32, 32) and region.shape == (6, 1, 32, 32)
    first, second = z.chunk(2)
    inside = region.expand_as(first).bool()
    assert torch.equal(first[~inside], second[~inside]) and (first[inside] != second[inside]).all()
    share = region.flatten(1).mean(1)
    assert (share > 0.05).all() and (share < 0.6).all()  # boxes of 1/4..3/4 of each side
    assert Objective(lambda_ms=1.0, nz=8).draw_pair_codes(3, 32, torch.device("cpu"))[1] is None


def test_the_mode_seeking_term_on_detail_ignores_a_new_tint():
    from train.step import mode_seeking

    torch.manual_seed(0)
    f = torch.rand(2, 3, 64, 64) * 2 - 1
    tinted = torch.cat([f, (f * 0.7 + 0.2).clamp(-1, 1)])
    z = torch.randn(4, 8)
    pixel, _ = mode_seeking(Objective(nz=8, lambda_ms=1.0), tinted, z, None)
    detail, _ = mode_seeking(Objective(nz=8, lambda_ms=1.0, ms_on="detail"), tinted, z, None)
    other, _ = mode_seeking(Objective(nz=8, lambda_ms=1.0, ms_on="detail"), torch.cat([f, f.flip(-1)]), z, None)
    assert detail > 2 * other  # a tint leaves the detail alike: the term stays high, only new detail lowers it
    assert pixel < detail


def test_the_benchmark_times_each_ablation_against_the_recipe(capsys):
    from train.benchmark import compare_steps

    seconds = compare_steps(["--lambda-fm 10", "--upsample resize"], rounds=1, device="cpu",
                            base_flags=("--image-size", "64", "--ngf", "8", "--ndf", "8", "--precision", "fp32"))
    assert list(seconds) == ["cpu recipe", "--lambda-fm 10", "--upsample resize"]
    assert all(0 < t < float("inf") for t in seconds.values())
    out = capsys.readouterr().out
    assert "1.00x the cpu recipe" in out and "--lambda-fm 10" in out


def test_long_codes_are_shortened_at_inference_in_torch_onnx_and_the_saved_config(tmp_path):
    from pix2pix.export import weights_hash

    torch.manual_seed(0)
    G = UnetGenerator(ngf=8, nz=8, code_max_norm=2.0).eval()
    plain = UnetGenerator(ngf=8, nz=8).eval()
    plain.load_state_dict(G.state_dict())
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    masks, z = G.sample_noise([7, 5], 256)  # seed 7's code is 4.37 long, seed 5's 1.05
    norms = z.norm(dim=1)
    assert norms[0] > 2.0 > norms[1]
    with torch.inference_mode():
        out = G(x, masks=masks, z=z)
        shortened = plain(x, masks=masks, z=z * torch.tensor([[2.0 / norms[0].item()], [1.0]]))
        untouched = plain(x, masks=masks, z=z)
    assert (out - shortened).abs().max() < 1e-5  # the long code: same direction, length 2
    assert torch.equal(out[1], untouched[1]) and (out[0] - untouched[0]).abs().mean() > 1e-3
    G.train()
    assert torch.equal(G.shorten_codes(z), z)  # training sees the codes as drawn
    G.eval()
    session = ort.InferenceSession(export_onnx(G, fp16_weights=False), providers=["CPUExecutionProvider"])
    feed = {"labels": x.numpy(), **{f"mask{k}": m.numpy() for k, m in enumerate(masks)}, "code": z.numpy()}
    assert np.abs(session.run(["facade"], feed)[0] - out.numpy()).max() <= 1e-4  # the browser's graph shortens too
    assert weights_hash(G) != weights_hash(plain)  # so a cached ONNX file of the other is never reused
    G.save_pretrained(tmp_path / "w")
    assert Pix2Pix.load(tmp_path / "w", device="cpu", precision="fp32").generator.code_max_norm == 2.0
    assert parse_args(["--recipe", "cpu", "--code-max-norm", "1.5"]).generator_kwargs["code_max_norm"] == 1.5
    with pytest.raises(ValueError, match="code_max_norm"):
        UnetGenerator(ngf=8, nz=8, code_max_norm=-1)
