"""``Pix2Pix``: label map in, facades out. The one entry point the app, the CLI and users call.

Loading resolves weights from a folder, a file, a Hub repo id or an official ``.pth``; generation
snaps the input to the palette, runs the generator and returns PIL images. Dropout noise comes from
per-sample seeds (see ``UnetGenerator.forward``), so results repeat per seed, batch and thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from .assets import BUNDLED_WEIGHTS
from .device import resolve_device
from .fast import inference_network, plan_inference
from .images import ImageLike, label_to_tensor, tensor_to_image
from .models import CONFIG_NAME, WEIGHTS_NAME, UnetGenerator
from .official import load_official_checkpoint
from .seeds import MAX_SEED, check_seed, random_seed, seed_range  # noqa: F401  (MAX_SEED: re-exported)
from .speed import DTYPES

WEIGHTS_ENV = "PIX2PIX_WEIGHTS"

HOW_TO_GET_WEIGHTS = f"""No generator weights found. Any of these works:
  1. Train them:            python -m train --recipe cpu --time-budget 2h --run-dir runs/mine
                            (downloads the facades data set once; writes runs/mine/export)
     then pass the folder:  --weights runs/mine/export   or   {WEIGHTS_ENV}=runs/mine/export
  2. Use a Hub repo id:     --weights <user>/<repo>   (a folder saved by save_pretrained, pushed to the Hub)
  3. Use the authors' own:  bash scripts/download_pix2pix_model.sh facades_label2photo   (in their repo
                            pytorch-CycleGAN-and-pix2pix), then
                            --weights checkpoints/facades_label2photo_pretrained/latest_net_G.pth
Bundled weights are looked for in {BUNDLED_WEIGHTS}."""


class WeightsNotFoundError(FileNotFoundError):
    """No weights were given and none are bundled or named by the environment."""


def _has_weights(folder: Path) -> bool:
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def load_generator(weights: str | os.PathLike) -> UnetGenerator:
    """A generator from a ``save_pretrained`` folder, its ``model.safetensors``, an official ``.pth``
    file or a Hub repo id (downloaded once through ``hf_hub_download``'s cache)."""
    path = Path(weights).expanduser()
    if path.is_dir():
        if not _has_weights(path):
            raise FileNotFoundError(
                f"{path}: not a weights folder (expected {CONFIG_NAME} and {WEIGHTS_NAME}, "
                "as written by save_pretrained or python -m train)"
            )
        return _from_pretrained(str(path), path / WEIGHTS_NAME)
    if path.is_file():
        if path.suffix in (".pth", ".pt"):
            return load_official_checkpoint(path)
        if path.name.endswith(".safetensors"):
            if not (path.parent / CONFIG_NAME).is_file():
                raise FileNotFoundError(f"{path}: no {CONFIG_NAME} beside it; pass the folder save_pretrained wrote")
            return _from_pretrained(str(path.parent), path)
        raise ValueError(f"{path}: unknown weights file (expected a save_pretrained folder, .safetensors or .pth)")
    text = str(weights)
    looks_like_repo = text.count("/") == 1 and not text.startswith((".", "/", "~")) and not path.suffix
    if not looks_like_repo:
        raise FileNotFoundError(f"{text}: no such weights file or folder (nor a Hub repo id of the form user/name)")
    return _from_pretrained(text, None)


def _from_pretrained(model_id: str, weights_file: Path | None) -> UnetGenerator:
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    where = str(weights_file) if weights_file is not None else f"Hub repo {model_id}"
    try:
        return UnetGenerator.from_pretrained(model_id)
    except (RepositoryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
        if weights_file is not None and isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise ValueError(f"{where}: cannot read the weights ({e})") from None
        raise FileNotFoundError(
            f"{where}: could not get the weights ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            "Check the repo id and your connection, or pass a local folder."
        ) from None
    except Exception as e:  # safetensors' own errors, shape mismatches, bad config.json
        raise ValueError(
            f"{where}: corrupt or mismatched weights ({type(e).__name__}: {str(e).splitlines()[0][:300]})"
        ) from None


def resolve_weights(weights: str | os.PathLike | None) -> str | os.PathLike:
    """Explicit weights, else ``$PIX2PIX_WEIGHTS``, else the bundled ``assets/weights``."""
    if weights is not None:
        return weights
    if os.environ.get(WEIGHTS_ENV):
        return os.environ[WEIGHTS_ENV]
    if _has_weights(BUNDLED_WEIGHTS):
        return BUNDLED_WEIGHTS
    raise WeightsNotFoundError(HOW_TO_GET_WEIGHTS)


class Pix2Pix:
    """A loaded generator ready to turn label maps into facades.

    >>> model = Pix2Pix.load()                        # bundled weights, or $PIX2PIX_WEIGHTS
    >>> [facade] = model.generate("labels.png", seed=7)

    ``precision``, ``fast_path`` (the small layers as GEMMs) and ``runtime`` (torch or ONNX Runtime) are chosen by
    timing when left to "auto" and ``None`` (``pix2pix.fast.plan_inference``); ``self.plan`` says what was chosen
    and why.
    """

    def __init__(
        self,
        generator: UnetGenerator,
        device: str | torch.device | None = None,
        compile: bool = False,
        precision: str = "auto",
        fast_path: bool | None = None,
        runtime: str = "auto",
    ):
        self.device = resolve_device(device)
        self.generator = generator  # kept as given: the weights, config and dropout masks come from it
        # On the CPU the precision and the fast path are timed here, once per process and network shape (the
        # rule and its reasons: pix2pix.speed). bf16 moves a facade by about a grey level: far less than a seed.
        self.plan = plan_inference(generator, self.device, precision, fast_path, "torch" if compile else runtime)
        self.precision = self.plan.precision
        self._net = inference_network(generator, self.device, self.plan)
        if compile:
            # Freezing lets inductor prepack the weights for oneDNN/cuDNN: the bench's fastest variant.
            self._net = torch.compile(self._net, options={"freezing": True})

    @classmethod
    def load(
        cls,
        weights: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        compile: bool = False,
        precision: str = "auto",
        runtime: str = "auto",
    ) -> Pix2Pix:
        """Load from a folder, file, Hub repo id or official ``.pth``; ``None`` means ``$PIX2PIX_WEIGHTS``,
        then the bundled ``assets/weights``. Raises ``WeightsNotFoundError`` saying how to get weights.
        ``compile=True`` runs the generator through ``torch.compile`` (slower first call, faster after).
        ``precision``: fp32, bf16, fp16 (CUDA) or auto, the fastest here (see ``pix2pix.speed``); ``runtime``:
        auto (timed), torch, or onnxruntime (CPU, fp32)."""
        return cls(load_generator(resolve_weights(weights)), device=device, compile=compile, precision=precision,
                   runtime=runtime)

    @property
    def image_size(self) -> int:
        return 2 ** self.generator.num_downs

    def generate(
        self,
        label_image: ImageLike,
        seed: int | None = None,
        num_samples: int = 1,
        stochastic: bool = True,
        keep_size: bool = False,
    ) -> list[Image.Image]:
        """Facades for one label map (path, bytes, PIL image or array; any size and mode).

        With ``stochastic=True`` (the paper's test-time dropout) sample ``i`` uses seed ``seed + i``,
        and all samples come from one batched forward pass; ``seed=None`` picks a random seed.
        ``stochastic=False`` turns dropout off: deterministic, and every sample is the same.
        ``keep_size`` resizes the results back to the input's size (bicubic).
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        seeds = seed_range(random_seed(num_samples) if seed is None else seed, num_samples)
        x, original_size = label_to_tensor(label_image, self.image_size)
        images = self.generate_batch([x] * num_samples, seeds, stochastic=stochastic)
        if keep_size and original_size != images[0].size:
            images = [image.resize(original_size, Image.BICUBIC) for image in images]
        return images

    def generate_batch(
        self, labels: Sequence[ImageLike | torch.Tensor], seeds: Sequence[int], stochastic: bool = True
    ) -> list[Image.Image]:
        """One forward pass for several (label map, seed) pairs: what a server batches requests into.

        Each result equals what ``generate(label, seed)`` gives for its pair alone, up to float
        rounding in the batched matrix products (at most one grey level; usually none).
        """
        if len(labels) != len(seeds):
            raise ValueError(f"got {len(labels)} label maps and {len(seeds)} seeds")
        if not labels:
            return []
        seeds = [check_seed(s) for s in seeds]
        tensors = [x if isinstance(x, torch.Tensor) else label_to_tensor(x, self.image_size)[0] for x in labels]
        batch = torch.stack(tensors)
        masks = z = None
        if stochastic:
            masks, z = self.generator.sample_noise(seeds, self.image_size)
        return [tensor_to_image(y) for y in self.forward(batch, masks, z).cpu()]

    def forward(self, batch: torch.Tensor, masks: Sequence[torch.Tensor] | None = None,
                z: torch.Tensor | None = None) -> torch.Tensor:
        """The generator on a prepared (N, 3, H, W) batch in [-1, 1], in this predictor's precision; fp32 out.

        ``masks`` and ``z`` come from ``UnetGenerator.sample_noise``; without them the generator is
        deterministic (no dropout, the latent code at zero)."""
        cpu = self.device.type == "cpu"
        dtype = DTYPES[self.precision]
        # The CPU runs reduced precision with the weights themselves converted (faster than autocast, which
        # recasts them every call); CUDA autocasts, which keeps instance norm in fp32.
        autocast = torch.autocast(self.device.type, dtype=dtype) if not cpu and self.precision != "fp32" else None
        with torch.inference_mode(), autocast or contextlib.nullcontext():
            masks = None if masks is None else [m.to(self.device) for m in masks]
            z = None if z is None else z.to(self.device)
            return self._net(batch.to(self.device, dtype if cpu else torch.float32), masks=masks, z=z).float()
