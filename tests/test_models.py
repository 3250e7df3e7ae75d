import numpy as np
import pytest
import torch

from pix2pix import PatchDiscriminator, UnetGenerator, load_official_checkpoint


def test_generator_has_the_official_parameter_count():
    assert sum(p.numel() for p in UnetGenerator(ngf=64).parameters()) == 54_413_955


def test_discriminator_gives_30x30_patch_logits():
    d = PatchDiscriminator(ndf=8)
    out = d(torch.zeros(1, 3, 256, 256), torch.zeros(1, 3, 256, 256))
    assert out.shape == (1, 1, 30, 30)


def test_init_is_the_papers_normal_002():
    torch.manual_seed(0)
    w = UnetGenerator(ngf=64).encoder[1][0].weight
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3


def test_official_checkpoint_gives_the_reference_output(data_dir):
    model = load_official_checkpoint(data_dir / "official_unet256_ngf8.pth")
    x = torch.from_numpy(np.load(data_dir / "input_test1_labels.npy"))
    expected = np.load(data_dir / "expected_output.npy")
    with torch.no_grad():
        out = model(x).numpy()  # eval mode: dropout off, as the reference was made
    assert np.abs(out - expected).max() < 1e-5


@pytest.mark.parametrize("variant", ["no_num_batches_tracked", "module_prefix"])
def test_official_checkpoint_variants(tmp_path, data_dir, variant):
    state = torch.load(data_dir / "official_unet256_ngf8.pth", weights_only=True)
    if variant == "no_num_batches_tracked":
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    else:
        state = {f"module.{k}": v for k, v in state.items()}
    torch.save(state, tmp_path / "latest_net_G.pth")
    model = load_official_checkpoint(tmp_path / "latest_net_G.pth")
    x = torch.from_numpy(np.load(data_dir / "input_test1_labels.npy"))
    with torch.no_grad():
        assert np.abs(model(x).numpy() - np.load(data_dir / "expected_output.npy")).max() < 1e-5


def test_save_pretrained_round_trip(tmp_path, tiny_generator):
    tiny_generator.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()
    loaded = UnetGenerator.from_pretrained(tmp_path)
    assert loaded._hub_mixin_config["ngf"] == 8
    assert not loaded.training
    saved, restored = tiny_generator.state_dict(), loaded.state_dict()
    assert saved.keys() == restored.keys() and all(torch.equal(saved[k], restored[k]) for k in saved)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x, seeds=[3]), tiny_generator(x, seeds=[3]))


def test_fp16_weights_are_upcast_on_load(tmp_path, tiny_generator):
    import copy

    copy.deepcopy(tiny_generator).half().save_pretrained(tmp_path)
    loaded = UnetGenerator.from_pretrained(tmp_path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    diff = max((a - b).abs().max().item() for a, b in zip(loaded.parameters(), tiny_generator.parameters()))
    assert diff < 1e-3


def test_seeded_dropout_is_per_sample_and_global_rng_free(tiny_generator):
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    state = torch.get_rng_state()
    with torch.no_grad():
        a = tiny_generator(x, seeds=[5])
        batch = tiny_generator(x.repeat(3, 1, 1, 1), seeds=[9, 5, 7])
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.allclose(batch[1], a[0], atol=1e-6)
    assert not torch.allclose(batch[0], a[0], atol=1e-3)
