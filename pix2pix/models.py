"""The pix2pix networks: the U-Net generator and the 70x70 PatchGAN discriminator (Isola et al., 2017).

Layer order, bias placement and widths follow the authors' PyTorch code (``unet_256`` and ``basic``
``NLayerDiscriminator``) so their checkpoints load one to one (see ``pix2pix.official``). Where they use
BatchNorm we use ``InstanceNorm2d(affine=True)``: at the paper's batch size of 1 in training mode both
normalise each channel by the statistics of the one image, and instance norm keeps that true for every
sample of a larger batch, so batched sampling and batched training stay exact per sample.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from torch import nn

from . import philox

DROPOUT_P = 0.5
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True)


def _down(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=4, stride=2, padding=1, bias=False)


def _up(cin: int, cout: int, bias: bool = False) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1, bias=bias)


class ResizeConv2d(nn.Module):
    """A 2x nearest-neighbour upsample then a 3x3 convolution: the decoder's up-step without the checkerboard
    that a stride-2 transposed convolution leaves where its kernel windows overlap unevenly (Odena et al. 2016,
    "Deconvolution and Checkerboard Artifacts"). Same input and output shapes as ``_up``."""

    def __init__(self, cin: int, cout: int, bias: bool = False):
        super().__init__()
        self.out_channels = cout
        self.conv = nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


#: Where the latent code enters the U-Net: every encoder block (BicycleGAN's "add to all", the default), only
#: the innermost encoder block (the bottleneck), every decoder block (after its skip concatenation), or all of
#: the encoder's and the decoder's blocks.
CODE_AT = ("encoder", "bottleneck", "decoder", "all")
#: The decoder's up-step: the paper's 4x4 stride-2 transposed convolution, or nearest upsample + 3x3 conv.
UPSAMPLE = ("transpose", "resize")


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """The paper's initialisation: weights from N(0, 0.02), norm scales from N(1, 0.02), biases zero."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


class UnetGenerator(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="facade-pix2pix",
    tags=["pix2pix", "image-to-image", "gan", "facades"],
    pipeline_tag="image-to-image",
    license="mit",
):
    """U-Net 256: encoder C64-C128-C256-C512-C512-C512-C512-C512, mirrored decoder with skips, Tanh.

    ``num_downs`` halvings take a 2**num_downs image down to 1x1 (8 for 256x256). Dropout 0.5 follows
    the three decoder blocks just outside the innermost one, as in the paper; it is the generator's
    only source of noise, and pix2pix keeps it on at test time.

    ``nz > 0`` adds a latent code of ``nz`` numbers, tiled and concatenated to the input of every
    encoder block (BicycleGAN's "add to all", as in the MSGAN and DSGAN pix2pix generators). Dropout alone
    gives seeds that differ only in fine texture; a code trained with a mode-seeking term moves colour,
    material and light. ``nz = 0`` is the paper's generator (and loads the authors' checkpoints). ``code_at``
    moves the code to the bottleneck or the decoder only, where it can change colour and material but has fewer
    ways to override the painted layout, or to both halves (``"all"``); ``code_mod`` also lets the code scale and
    shift every normalised decoder block's channels (a per-channel affine computed from the code, as StyleGAN's
    and SPADE's modulation), so that it can change what the decoder draws, not only what it is fed. A code map
    (N, nz, H, W) gives each region its own code. ``upsample="resize"`` swaps the transposed convolutions for nearest
    upsampling + 3x3 convolutions (see ``ResizeConv2d``). Both are ablations of docs/results.md.

    ``forward(x, seeds=...)`` takes each sample's dropout masks and code from the seed rule of
    ``pix2pix.philox``, so a sample depends only on its input and its seed, never on the global RNG, the batch
    it is in, the device or the runtime. Without seeds, dropout follows ``self.training`` like ``nn.Dropout``
    and the code is drawn from the global RNG in training and is zero (the prior's mean) in eval mode.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, num_downs: int = 8, nz: int = 0,
                 code_at: str = "encoder", upsample: str = "transpose", code_max_norm: float = 0.0,
                 code_mod: bool = False):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be at least 5 (the U-Net has 5 fixed levels), got {num_downs}")
        if nz < 0:
            raise ValueError(f"nz must be >= 0, got {nz}")
        if code_at not in CODE_AT or upsample not in UPSAMPLE:
            raise ValueError(f"code_at must be one of {CODE_AT} and upsample one of {UPSAMPLE}, "
                             f"got {code_at!r} and {upsample!r}")
        self.num_downs, self.in_channels, self.nz = num_downs, in_channels, nz
        if not code_max_norm >= 0:
            raise ValueError(f"code_max_norm must be >= 0 (0: off), got {code_max_norm}")
        self.code_at, self.upsample, self.code_max_norm = code_at, upsample, float(code_max_norm)
        # w[k] = channels after the (k+1)-th down-convolution: 64, 128, 256, 512, 512, ...
        w = [ngf * min(2**k, 8) for k in range(num_downs)]
        if code_mod and not nz:
            raise ValueError("code_mod needs a latent code (nz > 0)")
        self.code_mod = bool(code_mod)
        enc = nz if code_at in ("encoder", "all") else 0
        dec = nz if code_at in ("decoder", "all") else 0
        up = _up if upsample == "transpose" else ResizeConv2d

        # Encoder: outermost conv has no norm, nor has the innermost (its output is 1x1).
        self.encoder = nn.ModuleList([_down(in_channels + enc, w[0])])
        for k in range(1, num_downs - 1):
            self.encoder.append(nn.Sequential(_down(w[k - 1] + enc, w[k]), _norm(w[k])))
        self.encoder.append(_down(w[-2] + (nz if code_at == "bottleneck" else enc), w[-1]))

        # Decoder, innermost first. Each block (but the last) is followed by a skip concatenation,
        # so blocks after the innermost take twice the channels.
        self.decoder = nn.ModuleList([nn.Sequential(up(w[-1] + dec, w[-2]), _norm(w[-2]))])
        for k in range(num_downs - 2, 0, -1):
            self.decoder.append(nn.Sequential(up(2 * w[k] + dec, w[k - 1]), _norm(w[k - 1])))
        self.decoder.append(up(2 * w[0] + dec, out_channels, bias=True))
        # Modulation: one 1x1 convolution per normalised decoder block, code -> (scale, shift) per channel; zero
        # at the start, so a modulated generator starts as the plain one. A 1x1 convolution rather than a linear
        # layer so that a code map (a code per pixel) modulates each region by its own code.
        self.modulation = nn.ModuleList(
            [nn.Conv2d(nz, 2 * block[0].out_channels, 1) for block in self.decoder[:-1]] if code_mod else [])
        # Decoder indices followed by dropout: the official code's ``num_downs - 5`` ngf*8 blocks.
        self.dropout_blocks = tuple(range(1, num_downs - 4))
        init_weights(self)
        for conv in self.modulation:
            nn.init.zeros_(conv.weight)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision, cache_dir, force_download, local_files_only, token,
                         map_location: str = "cpu", strict: bool = True, **model_kwargs):
        # The mixin's default is strict=False, which would silently keep random weights for any
        # tensor missing from the file; weights stored in fp16 are upcast by load_state_dict's copy.
        from safetensors.torch import load_model

        model = cls(**model_kwargs)
        if os.path.isdir(model_id):
            model_file = os.path.join(model_id, WEIGHTS_NAME)
        else:
            model_file = hf_hub_download(repo_id=model_id, filename=WEIGHTS_NAME, revision=revision,
                                         cache_dir=cache_dir, force_download=force_download, token=token,
                                         local_files_only=local_files_only)
        load_model(model, model_file, strict=strict, device=map_location)
        return model.eval()

    def sample_noise(self, seeds: Sequence[int], image_size: int) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Per-sample dropout masks (already scaled by 1/(1-p)) and latent codes (``None`` when nz = 0).

        They follow the seed rule of ``pix2pix.philox`` (Philox4x32-10, keyed by the seed, one stream per
        tensor), which numpy and the page's JavaScript both implement: the same seed gives the same facade in
        any batch, on any device, with any torch version and in any runtime; the global RNG is never touched.
        """
        shapes = []
        for i in self.dropout_blocks:
            block = self.decoder[i][0]
            side = image_size >> (self.num_downs - 1 - i)
            shapes.append((block.out_channels, side, side))
        masks, z = philox.sample_noise(seeds, shapes, self.nz, DROPOUT_P)
        return [torch.from_numpy(m) for m in masks], (torch.from_numpy(z) if z is not None else None)

    def dropout_masks(self, seeds: Sequence[int], image_size: int) -> list[torch.Tensor]:
        """The dropout half of ``sample_noise``."""
        return self.sample_noise(seeds, image_size)[0]

    def forward(
        self, x: torch.Tensor, seeds: Sequence[int] | None = None, masks: Sequence[torch.Tensor] | None = None,
        z: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Labels in [-1, 1] to images in [-1, 1].

        Noise: with ``seeds`` (one per sample), or precomputed ``masks`` and ``z`` from ``sample_noise``,
        the seeded noise is used in any mode; otherwise see the class docstring.
        """
        if seeds is not None:
            if len(seeds) != x.shape[0]:
                raise ValueError(f"got {len(seeds)} seeds for a batch of {x.shape[0]}")
            masks, z = self.sample_noise(seeds, x.shape[-1])
            masks = [m.to(x.device) for m in masks]
        if self.nz:
            if z is None:
                z = (torch.randn(x.shape[0], self.nz, device=x.device) if self.training
                     else torch.zeros(x.shape[0], self.nz, device=x.device))
            z = self.shorten_codes(z.to(x.device))
            z = z.view(x.shape[0], self.nz, 1, 1) if z.dim() == 2 else z
        skips, last = [], len(self.encoder) - 1
        enc_z = z if self.code_at in ("encoder", "all") else None
        dec_z = z if self.code_at in ("decoder", "all") else None
        h = self.encoder[0](self._with_code(x, enc_z))
        for j, down in enumerate(self.encoder[1:], 1):
            # The official blocks apply this LeakyReLU in place, so the skip carries the activated map.
            h = F.leaky_relu(h, 0.2)
            skips.append(h)
            h = down(self._with_code(h, z if j == last and self.code_at == "bottleneck" else enc_z))
        for i, up in enumerate(self.decoder):
            h = up(self._with_code(F.relu(h), dec_z))
            if i < len(self.modulation):
                scale, shift = self.modulation[i](_code_at_size(z, h).to(h.dtype)).chunk(2, dim=1)
                h = h * (1 + scale) + shift
            if i in self.dropout_blocks:
                if masks is None:
                    h = F.dropout(h, DROPOUT_P, self.training)
                else:
                    h = h * masks[self.dropout_blocks.index(i)].to(h.dtype)
            if skips:
                h = torch.cat([skips.pop(), h], dim=1)
        return torch.tanh(h)

    def shorten_codes(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` (N, nz), or a code map (N, nz, H, W), with every code longer than ``code_max_norm`` scaled to
        that length (eval mode only)."""
        if self.training or not self.code_max_norm:
            return z
        norm = z.float().norm(dim=1, keepdim=True).clamp_min(1e-12)
        return z * torch.clamp(self.code_max_norm / norm, max=1.0).to(z.dtype)

    def _with_code(self, h: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        return h if z is None else torch.cat([h, _code_at_size(z, h).to(h.dtype)], dim=1)


def _code_at_size(z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The code (N, nz, 1, 1) tiled, or a code map (N, nz, H, W) averaged over each cell, to ``h``'s size: a block
    at 1/k of the input's size sees each region's code as the mean over its k x k cell."""
    if z.shape[2] == 1 and z.shape[3] == 1:
        return z.expand(-1, -1, h.shape[2], h.shape[3])
    return F.adaptive_avg_pool2d(z, h.shape[2:])


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN: C64-C128-C256-C512 (the last two stride 1), then a 1-channel conv.

    Takes the label map and an image concatenated on channels and returns raw logits, one per 70x70
    patch (30x30 for 256x256 inputs); the loss applies the sigmoid.
    """

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False),
                _norm(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, labels: torch.Tensor, images: torch.Tensor,
                features: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """The logits; with ``features`` also each block's activations (pix2pixHD's feature matching)."""
        h = torch.cat([labels, images], dim=1)
        if not features:
            return self.model(h)
        feats = []
        for layer in self.model:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(h)
        return h, feats
