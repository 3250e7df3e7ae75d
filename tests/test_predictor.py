import threading

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import Pix2Pix, WeightsNotFoundError, example_labels
from pix2pix.predictor import HOW_TO_GET_WEIGHTS, resolve_weights


@pytest.fixture(scope="module", params=["fp32", "bf16"])
def model(request, tiny_weights):
    """Both CPU precisions: seeds, batching and threads must behave the same in each."""
    return Pix2Pix.load(tiny_weights, device="cpu", precision=request.param)


@pytest.fixture(scope="module")
def label():
    return example_labels()[0]


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def test_generate_returns_rgb_256(model, label):
    [image] = model.generate(label, seed=0)
    assert image.mode == "RGB" and image.size == (256, 256)


def test_same_seed_same_image_different_seed_different_image(model, label):
    a, b, c = (model.generate(label, seed=s)[0] for s in (1, 1, 2))
    assert np.array_equal(pixels(a), pixels(b))
    assert np.abs(pixels(a) - pixels(c)).mean() > 0.5


def test_deterministic_mode(model, label):
    a = model.generate(label, stochastic=False)[0]
    b = model.generate(label, seed=123, stochastic=False)[0]
    assert np.array_equal(pixels(a), pixels(b))


def test_batched_variations_equal_single_calls(model, label):
    batch = model.generate(label, seed=10, num_samples=4)
    assert len(batch) == 4
    for i, image in enumerate(batch):
        # Kernels are chosen per sample (pix2pix.fast), so bf16 gives the very same pixels; fp32 can round
        # differently in the batched matrix products.
        tolerance = 0 if model.precision == "bf16" else 1
        assert np.abs(pixels(image) - pixels(model.generate(label, seed=10 + i)[0])).max() <= tolerance
    assert len({pixels(im).tobytes() for im in batch}) == 4


def test_generate_batch_mixes_labels_and_seeds(model):
    a, b = example_labels()[:2]
    out = model.generate_batch([a, b], [3, 4])
    assert np.abs(pixels(out[1]) - pixels(model.generate(b, seed=4)[0])).max() <= 1


def test_threads_with_the_same_seeds_get_the_same_results(model, label):
    results: dict[int, list] = {}

    def work(k):
        results[k] = [pixels(model.generate(label, seed=s)[0]) for s in (7, 8, 9)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    state = torch.get_rng_state()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.equal(state, torch.get_rng_state())
    for a, b in zip(results[0], results[1]):
        assert np.array_equal(a, b)


def test_any_size_and_mode_and_keep_size(model):
    grey = Image.new("L", (300, 120), 40)
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    array = np.zeros((50, 70, 3), np.uint8)
    for source in (grey, rgba, array):
        assert model.generate(source, seed=0)[0].size == (256, 256)
    assert model.generate(grey, seed=0, keep_size=True)[0].size == (300, 120)


def test_bytes_and_paths(model, label):
    from_bytes = model.generate(label.read_bytes(), seed=2)[0]
    assert np.array_equal(pixels(from_bytes), pixels(model.generate(str(label), seed=2)[0]))


def test_weights_resolution_order(monkeypatch, tmp_path, tiny_weights):
    import pix2pix.weights as weights

    monkeypatch.setattr(weights, "BUNDLED_WEIGHTS", tmp_path / "nothing-here")
    monkeypatch.delenv("PIX2PIX_WEIGHTS", raising=False)
    with pytest.raises(WeightsNotFoundError) as err:
        resolve_weights(None)
    for way in ("python -m train", "Hub repo id", "latest_net_G.pth"):
        assert way in str(err.value)
    assert str(err.value) == HOW_TO_GET_WEIGHTS
    monkeypatch.setattr(weights, "BUNDLED_WEIGHTS", tiny_weights)
    assert resolve_weights(None) == tiny_weights
    monkeypatch.setenv("PIX2PIX_WEIGHTS", "/elsewhere")
    assert resolve_weights(None) == "/elsewhere"
    assert resolve_weights("given") == "given"


def test_load_official_pth_and_safetensors_file(data_dir, tiny_weights):
    assert Pix2Pix.load(data_dir / "official_unet256_ngf8.pth", device="cpu").generator.num_downs == 8
    assert Pix2Pix.load(tiny_weights / "model.safetensors", device="cpu").image_size == 256


def test_hub_repo_id_goes_through_hf_hub_download(monkeypatch, tiny_weights):
    import pix2pix.models as models

    calls = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename))
        return str(tiny_weights / filename)

    monkeypatch.setattr(models, "hf_hub_download", fake_download)
    monkeypatch.setattr("huggingface_hub.hub_mixin.hf_hub_download", fake_download)
    model = Pix2Pix.load("someone/facades-pix2pix", device="cpu")
    assert ("someone/facades-pix2pix", "model.safetensors") in calls
    assert ("someone/facades-pix2pix", "config.json") in calls
    assert model.generator._hub_mixin_config["ngf"] == 8


def test_unknown_hub_repo_offline_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="nobody/no-such-repo"):
        Pix2Pix.load("nobody/no-such-repo", device="cpu")
