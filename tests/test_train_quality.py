"""The training pieces behind better facades: the latent code and mode-seeking term, the generator's EMA,
the timed choice of precision, damaged checkpoints, and the model card's wording."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pix2pix import PatchDiscriminator, Pix2Pix, UnetGenerator
from tests.test_train import TINY, _epochs, _same_state, data  # noqa: F401  (data: the shared fixture)
from train import step as step_mod
from train.checkpoint import CheckpointError, find_resumable, read_checkpoint
from train.config import TrainConfig
from train.report import data_name, write_model_card
from train.step import Networks, Objective, choose_precision, make_ema, make_optimizers, time_precisions, train_step
from train.trainer import main

CODED = ["--nz", "4", "--lambda-ms", "1", "--lambda-l1", "10", "--ema", "0.9"]


# ----------------------------------------------------------------------------------------------- latent code
def test_the_code_is_drawn_from_the_seed_and_nz0_is_the_papers_generator(tmp_path):
    paper = UnetGenerator(ngf=8)
    assert paper.encoder[0].in_channels == 3 and paper.sample_noise([1, 2], 256)[1] is None
    coded = UnetGenerator(ngf=8, nz=8)
    assert [m.in_channels for m in (coded.encoder[0], coded.encoder[1][0], coded.encoder[-1])] == [11, 16, 72]
    masks_a, z_a = coded.sample_noise([5, 6], 256)
    masks_b, z_b = coded.sample_noise([6], 256)
    assert z_a.shape == (2, 8) and torch.equal(z_a[1], z_b[0]) and not torch.equal(z_a[0], z_a[1])
    assert all(torch.equal(a[1], b[0]) for a, b in zip(masks_a, masks_b, strict=True))
    # The masks of a seed are the same with and without a code: adding one leaves dropout as it was.
    assert all(torch.equal(a, b) for a, b in zip(paper.sample_noise([5, 6], 256)[0], masks_a, strict=True))
    coded.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["nz"] == 8
    assert UnetGenerator.from_pretrained(str(tmp_path)).nz == 8


def test_a_coded_model_repeats_per_seed_alone_or_batched_and_stochastic_off_is_z_zero():
    torch.manual_seed(0)
    g = UnetGenerator(ngf=8, nz=8).eval()
    with torch.no_grad():
        g.encoder[0].weight[:, 3:] *= 50  # a code that visibly matters
    model = Pix2Pix(g, device="cpu", precision="fp32")
    x = torch.rand(3, 256, 256) * 2 - 1
    batched = model.generate_batch([x, x, x], [3, 4, 5])
    alone = model.generate_batch([x], [4])[0]
    px = lambda im: np.asarray(im).astype(np.int16)  # noqa: E731
    # Equal up to rounding: oneDNN may pick other kernels for a batch of 3 than of 1 (seen on a Zen 3),
    # which moves a pixel by a grey level; another seed moves the picture by far more.
    assert np.abs(px(batched[1]) - px(alone)).max() <= 2
    assert np.abs(px(batched[0]) - px(batched[1])).mean() > 5
    off = model.generate_batch([x, x], [3, 4], stochastic=False)
    assert np.array_equal(px(off[0]), px(off[1]))
    with torch.inference_mode():
        assert torch.equal(model.forward(x[None]), model.forward(x[None], z=torch.zeros(1, 8)))


def test_mode_seeking_step_runs_two_codes_and_trains_the_code_weights():
    torch.manual_seed(0)
    cfg = TrainConfig(ngf=8, ndf=8, image_size=64, nz=4, lambda_ms=1.0, lambda_l1=10.0).check()
    G, D = UnetGenerator(ngf=8, num_downs=6, nz=4), PatchDiscriminator(ndf=8)
    opt_g, opt_d = make_optimizers(cfg, G, D)
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    code_weights = G.encoder[0].weight[:, 3:].clone()
    seen = []
    original = D.forward
    D.forward = lambda labels, images: (seen.append(images.shape[0]), original(labels, images))[1]
    losses = train_step(Networks(G, D, opt_g, opt_d, Objective.of(cfg)), x, y)
    assert Objective.of(cfg).copies == 2 and seen == [8, 4]  # (fake, real) x 2 codes, then the generator's call
    g_gan, g_l1, g_ms, d_real, d_fake, g_fm = losses.tolist()
    assert g_fm == 0  # no feature matching asked for
    assert g_ms > 0 and all(map(torch.isfinite, losses))
    assert not torch.equal(code_weights, G.encoder[0].weight[:, 3:])
    with pytest.raises(SystemExit, match="--nz 8"):
        TrainConfig(lambda_ms=1.0).check()


def test_discriminator_warmup_step_moves_only_the_discriminator():
    torch.manual_seed(0)
    cfg = TrainConfig(ngf=8, ndf=8, image_size=64, nz=4, lambda_ms=1.0, lambda_l1=10.0, d_warmup=5).check()
    G, D = UnetGenerator(ngf=8, num_downs=6, nz=4), PatchDiscriminator(ndf=8)
    opt_g, opt_d = make_optimizers(cfg, G, D)
    ema = make_ema(G, 0.9)
    ema.update_parameters(G)
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    g_before, d_before = copy_state(G), copy_state(D)
    ema_before = copy_state(ema.module)
    nets = Networks(G, D, opt_g, opt_d, Objective.of(cfg), ema=ema)
    losses = train_step(nets, x, y, train_g=False)
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in g_before.items())  # the generator held still
    assert all(torch.equal(v, ema.module.state_dict()[k]) for k, v in ema_before.items())  # and its average
    assert not all(torch.equal(v, D.state_dict()[k]) for k, v in d_before.items())  # the discriminator learnt
    g_gan, g_l1, g_ms, d_real, d_fake, g_fm = losses.tolist()
    assert g_fm == 0  # no feature matching asked for
    assert g_gan > 0 and g_l1 > 0 and g_ms == 0 and d_real > 0 and d_fake > 0
    train_step(nets, x, y)  # after the warm-up: both move
    assert not all(torch.equal(v, G.state_dict()[k]) for k, v in g_before.items())
    with pytest.raises(SystemExit, match="--d-warmup"):
        TrainConfig(d_warmup=-1).check()


def copy_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


# ----------------------------------------------------------------------------------------------- EMA
def test_ema_warms_up_then_averages():
    torch.manual_seed(0)
    G = torch.nn.Linear(2, 1, bias=False)
    ema = make_ema(G, decay=0.99)
    with torch.no_grad():
        G.weight.fill_(1.0)
    ema.update_parameters(G)  # the first update copies
    assert torch.equal(ema.module.weight, G.weight)
    with torch.no_grad():
        G.weight.fill_(0.0)
    ema.update_parameters(G)  # n = 1: decay min(0.99, 2 / 11)
    assert ema.module.weight[0, 0].item() == pytest.approx(2 / 11)


def test_coded_ema_run_exports_the_average_and_resumes_exactly(data, tmp_path):  # noqa: F811
    args = [*TINY, *CODED, "--data", str(data), "--epochs", "1", "--no-evaluate"]
    with pytest.warns(UserWarning):
        main([*args, "--epochs-decay", "1", "--run-dir", str(tmp_path / "straight")])
    with pytest.warns(UserWarning):
        main([*args, "--epochs-decay", "0", "--run-dir", str(tmp_path / "halves")])
    with pytest.warns(UserWarning):
        main([*args, "--epochs-decay", "1", "--run-dir", str(tmp_path / "halves")])
    straight, halves = (tmp_path / d / "checkpoints" / "latest.pt" for d in ("straight", "halves"))
    _same_state(straight, halves)
    ck, ck2 = (torch.load(p, weights_only=False) for p in (straight, halves))
    assert all(torch.equal(v, ck2["ema"][k]) for k, v in ck["ema"].items())
    assert int(ck["ema"]["n_averaged"]) == 8  # 4 steps an epoch, 2 epochs
    exported = load_file(tmp_path / "straight" / "export" / "model.safetensors")
    averaged = {k.removeprefix("module."): v for k, v in ck["ema"].items() if k.startswith("module.")}
    assert all(torch.equal(exported[k], averaged[k]) for k in exported)
    assert not all(torch.equal(exported[k], ck["generator"][k]) for k in exported)
    records = _epochs(tmp_path / "straight")
    assert all(r["g_ms"] > 0 for r in records)
    assert all(r["images_per_s"] == pytest.approx(2 * r["maps_per_s"], rel=0.05) for r in records)
    assert Pix2Pix.load(tmp_path / "straight" / "export", device="cpu").generator.nz == 4


# ----------------------------------------------------------------------------------------------- precision
def test_precision_auto_takes_what_is_timed_faster(monkeypatch):
    cfg = TrainConfig(ngf=8, ndf=8, image_size=64)
    cpu = torch.device("cpu")
    assert choose_precision(TrainConfig(precision="fp32"), cpu) == ("fp32", "as asked")
    monkeypatch.setattr(step_mod, "time_precisions", lambda c, d: {"fp32": 1.0, "bf16": 0.6})
    precision, why = choose_precision(cfg, cpu)
    assert precision == "bf16" and "1.67x" in why
    monkeypatch.setattr(step_mod, "time_precisions", lambda c, d: {"fp32": 1.0, "bf16": 1.0})
    assert choose_precision(cfg, cpu)[0] == "fp32"
    monkeypatch.setattr(step_mod, "time_precisions", lambda c, d: {"fp32": 1.0, "bf16": float("inf")})
    assert choose_precision(cfg, cpu) == ("fp32", "auto: this CPU has no bf16 kernels")


def test_timing_the_precisions_leaves_the_global_rng_alone():
    cfg = TrainConfig(ngf=8, ndf=8, image_size=64, batch_size=1)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    seconds = time_precisions(cfg, torch.device("cpu"), rounds=1)
    assert torch.equal(torch.get_rng_state(), before)
    assert set(seconds) == {"fp32", "bf16"} and 0 < seconds["fp32"] < 60 and seconds["bf16"] > 0


# ----------------------------------------------------------------------------------------------- faults
@pytest.fixture
def two_epoch_run(data, tmp_path):  # noqa: F811
    args = [*TINY, "--data", str(data), "--epochs", "2", "--epochs-decay", "0", "--save-every", "1", "--no-evaluate",
            "--run-dir", str(tmp_path / "run")]
    with pytest.warns(UserWarning):
        main(args)
    return args, tmp_path / "run"


@pytest.mark.parametrize("damage", ["truncated", "text", "other_pickle"])
def test_a_damaged_latest_resumes_from_the_newest_readable_checkpoint(two_epoch_run, tmp_path, capsys, damage):
    args, run = two_epoch_run
    ckpts = run / "checkpoints"
    reference = tmp_path / "reference.pt"
    shutil.copyfile(ckpts / "latest.pt", reference)
    (ckpts / "epoch_0002.pt").unlink()
    latest = ckpts / "latest.pt"
    if damage == "truncated":
        latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    elif damage == "text":
        latest.write_text("this is not a checkpoint\n")
    else:
        torch.save([1, 2, 3], latest)
    with pytest.raises(CheckpointError, match="latest.pt"):
        read_checkpoint(latest)
    capsys.readouterr()
    with pytest.warns(UserWarning):
        main(args)
    out = capsys.readouterr().out
    assert "latest.pt is not" in out and "resuming from" in out and "epoch_0001.pt (epoch 1)" in out
    assert "Traceback" not in out
    _same_state(reference, latest)  # epoch 2 redone: nothing lost but the damaged file's work


def test_only_damaged_checkpoints_stop_with_the_files_named(two_epoch_run):
    args, run = two_epoch_run
    for path in (run / "checkpoints").glob("*.pt"):
        path.write_bytes(b"\0" * 100)
    named = r"no readable checkpoint .*latest\.pt, epoch_0002\.pt, epoch_0001\.pt.*--no-resume"
    with pytest.raises(SystemExit, match=named):
        main(args)
    assert find_resumable(run / "nothing-here", {}) is None


def test_a_checkpoint_of_another_shape_is_refused_not_skipped(two_epoch_run):
    args, run = two_epoch_run
    with pytest.raises(SystemExit, match="different ngf"):
        main([*args, "--ngf", "16"])


# ----------------------------------------------------------------------------------------------- warm start
def test_init_from_starts_the_generator_from_published_weights(data, tmp_path):  # noqa: F811
    torch.manual_seed(1)
    published = UnetGenerator(ngf=8, num_downs=6, nz=4)
    published.save_pretrained(tmp_path / "published")
    args = [*TINY, *CODED, "--data", str(data), "--epochs", "1", "--epochs-decay", "0", "--no-evaluate",
            "--init-from", str(tmp_path / "published")]
    with pytest.warns(UserWarning):  # lr 0: nothing moves, so the export is the published generator exactly
        main([*args, "--lr", "0", "--run-dir", str(tmp_path / "frozen")])
    exported = load_file(tmp_path / "frozen" / "export" / "model.safetensors")
    assert all(torch.equal(exported[k], v) for k, v in published.state_dict().items())
    with pytest.warns(UserWarning):  # a discriminator warm-up as long as the run: the generator never moves
        main([*args, "--d-warmup", "1000", "--run-dir", str(tmp_path / "warmup")])
    warmed = load_file(tmp_path / "warmup" / "export" / "model.safetensors")
    assert all(torch.equal(warmed[k], v) for k, v in published.state_dict().items())
    with pytest.warns(UserWarning):  # trained on from there: moved, and still far nearer it than a fresh start
        main([*args, "--run-dir", str(tmp_path / "trained")])
    trained = load_file(tmp_path / "trained" / "export" / "model.safetensors")
    torch.manual_seed(0)
    fresh = UnetGenerator(ngf=8, num_downs=6, nz=4).state_dict()
    gap = lambda a: sum((a[k].float() - v).abs().sum() for k, v in published.state_dict().items())  # noqa: E731
    assert 0 < gap(trained) < gap(fresh) / 3
    assert "`--init-from published`" in (tmp_path / "trained" / "export" / "README.md").read_text()
    with pytest.raises(SystemExit, match="same --ngf and --nz"), pytest.warns(UserWarning):
        main([*args, "--ngf", "16", "--run-dir", str(tmp_path / "wider")])
    with pytest.raises(SystemExit, match="--init-from"), pytest.warns(UserWarning):
        main([*args[:-1], str(tmp_path / "nothing-here"), "--run-dir", str(tmp_path / "missing")])


def test_the_discriminator_can_learn_at_its_own_rate(data, tmp_path):  # noqa: F811
    G, D = UnetGenerator(ngf=8, num_downs=6), PatchDiscriminator(ndf=8)
    opt_g, opt_d = make_optimizers(TrainConfig().check(), G, D)
    assert opt_g.param_groups[0]["lr"] == opt_d.param_groups[0]["lr"] == 2e-4  # default: --lr for both
    args = [*TINY, *CODED, "--data", str(data), "--epochs", "1", "--epochs-decay", "1", "--no-evaluate",
            "--lr", "1e-4", "--lr-d", "3e-4", "--run-dir", str(tmp_path / "ttur")]
    with pytest.warns(UserWarning):
        main(args)
    ck = read_checkpoint(tmp_path / "ttur" / "checkpoints" / "latest.pt")
    lr_g, lr_d = ck["opt_g"]["param_groups"][0]["lr"], ck["opt_d"]["param_groups"][0]["lr"]
    assert 0 < lr_g < 1e-4 and lr_d == pytest.approx(3 * lr_g)  # both on the same decaying schedule
    assert "Adam lr 0.0001 (discriminator 0.0003)" in (tmp_path / "ttur" / "export" / "README.md").read_text()
    with pytest.raises(SystemExit, match="--lr-d must be >= 0"):
        TrainConfig(lr_d=-1e-4).check()


# ----------------------------------------------------------------------------------------------- card
def test_model_card_names_the_data_set_and_the_figures(tmp_path):
    assert data_name("/home/me/../shared/datasets/facades") == "CMP Facades"
    assert data_name("/data/maps") == "maps"
    cfg = TrainConfig(nz=8, lambda_ms=1.0, ema=0.999).to_dict()
    summary = {"data": "../shared/datasets/facades", "train_images": 400, "skipped": 0, "epochs_done": 2,
               "steps": 8, "train_seconds": 10.0, "device": "cpu", "load_size": 286, "eval_split": "test",
               "last": {}, "metrics": {"n": 106, "fid": 123.45, "kid": 0.05, "diversity": 30.1, "diversity_maps": 30,
                                       "l1": 0.2, "psnr": 12.0, "ssim": 0.2}}
    write_model_card(tmp_path, cfg, summary)
    card = (tmp_path / "README.md").read_text()
    assert "CMP Facades, 400 training pairs" in card and "shared" not in card
    assert "| 123.5 |" in card and "| 0.0500 |" in card and "| 30.1 |" in card
    assert "mode seeking" in card and "decay 0.999" in card and "latent code of 8" in card
    assert "| initialisation | random (normal, std 0.02) |" in card
