"""Shared fixtures: a tiny generator saved the Hugging Face way, and the shipped test data."""

from __future__ import annotations

import os
from pathlib import Path

# Tests never reach the network. Set before anything imports huggingface_hub or gradio, which read
# these once at import time.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# Built ONNX files (pix2pix.export.onnx_file) go to a folder of this run, not the user's ~/.cache.
if "PIX2PIX_CACHE" not in os.environ:
    import tempfile

    os.environ["PIX2PIX_CACHE"] = tempfile.mkdtemp(prefix="pix2pix-test-cache-")

import pytest  # noqa: E402
import torch  # noqa: E402

from pix2pix import UnetGenerator  # noqa: E402

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """Put torch's thread count back after each test: ``app.main`` sets it for serving (all cores but one),
    and a later test that compares runs bit for bit with a subprocess (which has the default) would differ."""
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def tiny_generator() -> UnetGenerator:
    """An ngf=8 U-Net 256 with fixed random weights (852k parameters: fast on CPU)."""
    torch.manual_seed(0)
    return UnetGenerator(ngf=8).eval()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory, tiny_generator) -> Path:
    """A folder written by ``save_pretrained`` (config.json + model.safetensors) for the tiny model."""
    folder = tmp_path_factory.mktemp("tiny-weights")
    tiny_generator.save_pretrained(folder)
    return folder
