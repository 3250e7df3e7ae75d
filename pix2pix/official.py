"""Load generators saved by the pix2pix authors' PyTorch code (pytorch-CycleGAN-and-pix2pix).

Their ``unet_256`` is built from nested skip-connection blocks, so its state-dict keys nest
(``model.model.1.model.3.model.1.weight``). This module maps those keys onto ``UnetGenerator``'s flat
encoder/decoder. Their BatchNorm in training mode (how their ``test.py`` runs) on one image is exactly
our affine InstanceNorm, so only weights and biases are taken; running statistics are ignored.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from .models import UnetGenerator

_IGNORED_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def _official_key_map(num_downs: int) -> dict[str, str]:
    """Official key -> our key, for every parameter of a ``num_downs`` U-Net."""
    mapping: dict[str, str] = {
        "model.model.0.weight": "encoder.0.weight",
        "model.model.3.weight": f"decoder.{num_downs - 1}.weight",
        "model.model.3.bias": f"decoder.{num_downs - 1}.bias",
    }
    seq = "model.model.1.model"  # Sequential of the level-2 block; each deeper block is index 3 of its parent
    for level in range(2, num_downs + 1):
        enc, dec = level - 1, num_downs - level  # our indices for this level
        if level < num_downs:
            mapping[f"{seq}.1.weight"] = f"encoder.{enc}.0.weight"
            for p in ("weight", "bias"):
                mapping[f"{seq}.2.{p}"] = f"encoder.{enc}.1.{p}"
                mapping[f"{seq}.6.{p}"] = f"decoder.{dec}.1.{p}"
            mapping[f"{seq}.5.weight"] = f"decoder.{dec}.0.weight"
            seq = f"{seq}.3.model"
        else:  # innermost: [LeakyReLU, conv, ReLU, convT, norm]
            mapping[f"{seq}.1.weight"] = f"encoder.{enc}.weight"
            mapping[f"{seq}.3.weight"] = f"decoder.{dec}.0.weight"
            for p in ("weight", "bias"):
                mapping[f"{seq}.4.{p}"] = f"decoder.{dec}.1.{p}"
    return mapping


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"official checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as e:
        raise ValueError(
            f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            "Expected a latest_net_G.pth saved by pytorch-CycleGAN-and-pix2pix; re-download it."
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state_dict of tensors, got {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items() if not k.endswith(_IGNORED_SUFFIXES)}


def load_official_checkpoint(path: str | os.PathLike) -> UnetGenerator:
    """Build a ``UnetGenerator`` from an official ``latest_net_G.pth`` (unet_256, batch norm).

    Accepts files with or without ``num_batches_tracked`` and with a ``module.`` (DataParallel)
    prefix. ``ngf``, depth and channels are read from the tensor shapes.
    """
    path = Path(path)
    state = _read_state_dict(path)
    first = state.get("model.model.0.weight")
    if first is None or first.ndim != 4:
        raise ValueError(
            f"{path}: not a U-Net generator in the official layout (no 'model.model.0.weight'); "
            "only unet_256/unet_128 generators (netG=unet_*) can be loaded"
        )
    ngf, in_channels = first.shape[0], first.shape[1]
    num_downs = 1 + sum(1 for k in state if k.endswith(".1.weight") and k.startswith("model.model.1"))
    out_channels = state["model.model.3.weight"].shape[1] if "model.model.3.weight" in state else 3
    try:
        model = UnetGenerator(in_channels=in_channels, out_channels=out_channels, ngf=ngf, num_downs=num_downs)
        mapping = _official_key_map(num_downs)
    except ValueError as e:
        raise ValueError(f"{path}: unsupported official generator ({e})") from None
    missing = sorted(set(mapping) - set(state))
    unexpected = sorted(set(state) - set(mapping))
    if missing or unexpected:
        raise ValueError(
            f"{path}: keys do not match an official unet with ngf={ngf}, {num_downs} downsamplings "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})"
        )
    ours = {mapping[k]: v for k, v in state.items()}
    try:
        model.load_state_dict(ours, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: tensor shapes do not match the official layout: {str(e)[:300]}") from None
    return model.eval()
