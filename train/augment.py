"""Differentiable augmentation for the discriminator (DiffAugment, Zhao et al. 2020, "Differentiable
Augmentation for Data-Efficient GAN Training").

With 400 training photos the discriminator memorises them, and its verdicts stop teaching the generator. Shown
randomly shifted and cut-out images instead -- real and fake alike, in both the discriminator's and the
generator's steps, so the generator cannot learn the augmentation itself -- it has to judge what survives it.
For pix2pix the label map is the discriminator's input too: it is shifted and cut out together with the photos
(a window must stay where it was painted), and only the photos get the colour changes. The operations follow
the authors' code (translation by up to 1/8 of the side with zero padding, one cutout square of half the side,
brightness, saturation and contrast); they use the global RNG, which the trainer checkpoints.
"""

from __future__ import annotations

import torch

POLICIES = ("translation", "cutout", "color")


def parse_policy(text: str) -> tuple[str, ...]:
    return tuple(p for p in (s.strip() for s in text.split(",")) if p)


def augment(policy: tuple[str, ...], labels: torch.Tensor, *photos: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``(labels, *photos)`` augmented with the same draws for every tensor of a sample (label maps: geometry
    only). Images are (N, 3, H, W) in [-1, 1]; an empty policy returns them as given."""
    if not policy:
        return (labels, *photos)
    if "color" in policy:
        photos = color(photos)
    x = torch.cat([labels, *photos], dim=1)
    if "translation" in policy:
        x = translation(x)
    if "cutout" in policy:
        x = cutout(x)
    return tuple(x.split(3, dim=1))


def color(photos: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5), one draw per sample for all ``photos``."""
    ref = photos[0]
    n = ref.shape[0]
    shape = (n, 1, 1, 1)
    bright = torch.rand(shape, device=ref.device, dtype=ref.dtype) - 0.5
    sat = torch.rand(shape, device=ref.device, dtype=ref.dtype) * 2
    con = torch.rand(shape, device=ref.device, dtype=ref.dtype) + 0.5
    out = []
    for p in photos:
        p = p + bright
        mean = p.mean(dim=1, keepdim=True)
        p = (p - mean) * sat + mean
        mean = p.mean(dim=(1, 2, 3), keepdim=True)
        out.append((p - mean) * con + mean)
    return tuple(out)


def _grid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n, _, h, w = x.shape
    return torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                          torch.arange(w, device=x.device), indexing="ij")


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each sample by up to ``ratio`` of its side in each direction; what comes in is zeros."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    b, gy, gx = _grid(x)
    gy = (gy + ty + 1).clamp(0, h + 1)
    gx = (gx + tx + 1).clamp(0, w + 1)
    padded = torch.nn.functional.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[b, gy, gx].permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` of the side per sample, at a random place (it may hang over the edge)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    b, gy, gx = _grid(x[:, :1, :ch, :cw])
    gy = (gy + oy - ch // 2).clamp(0, h - 1)
    gx = (gx + ox - cw // 2).clamp(0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[b, gy, gx] = 0
    return x * mask.unsqueeze(1)
