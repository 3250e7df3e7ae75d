"""``Pix2Pix``: label map in, facades out. The one entry point the app, the CLI and users call.

Loading resolves weights from a folder, a file, a Hub repo id or an official ``.pth``; generation
snaps the input to the palette, runs the generator and returns PIL images. Dropout noise comes from
per-sample seeds (see ``UnetGenerator.forward``), so results repeat per seed, batch and thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import torch
from PIL import Image

from .device import resolve_device
from .fast import InferencePlan, inference_network, plan_inference, untimed_plan
from .images import ImageLike, label_to_tensor, tensor_to_image
from .models import UnetGenerator
from .seeds import MAX_SEED, check_seed, random_seed, seed_range  # noqa: F401  (MAX_SEED: re-exported)
from .speed import DTYPES
from .weights import (  # noqa: F401  (re-exported: where they were before pix2pix.weights)
    HOW_TO_GET_WEIGHTS,
    WEIGHTS_ENV,
    WeightsNotFoundError,
    load_generator,
    resolve_weights,
)


class Pix2Pix:
    """A loaded generator ready to turn label maps into facades.

    >>> model = Pix2Pix.load()                        # bundled weights, or $PIX2PIX_WEIGHTS
    >>> [facade] = model.generate("labels.png", seed=7)
    >>> model.choose_fastest()                        # optional: time the variants this CPU runs, keep the fastest

    Making one only loads: the network runs as asked, or in fp32 with torch (fp16 autocast on CUDA) when left to
    "auto"; nothing is timed, exported or written (a library call should not take seconds or fill a cache
    unasked). ``choose_fastest`` applies ``pix2pix.speed``'s rule (precision, the GEMM fast path, ONNX Runtime);
    the app asks for it at start-up. ``self.plan`` says what runs and why.
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
        self.compile = compile
        self._use(untimed_plan(self.device, precision, fast_path, "torch" if compile else runtime))

    def _use(self, plan: InferencePlan) -> None:
        """Run the generator as ``plan`` says from now on."""
        self.plan, self.precision = plan, plan.precision
        self._net = inference_network(self.generator, self.device, plan)
        if self.compile:
            # Freezing lets inductor prepack the weights for oneDNN/cuDNN: the bench's fastest variant.
            self._net = torch.compile(self._net, options={"freezing": True})

    def choose_fastest(self, precision: str = "auto", runtime: str = "auto") -> InferencePlan:
        """Time the variants ``precision`` and ``runtime`` allow on this device and run the fastest from now on
        (``pix2pix.fast.plan_inference``: on the CPU a second or two, once per process and network shape; ONNX
        Runtime's candidate exports the model into ``pix2pix.export.cache_dir()``). Returns the new plan; on CUDA
        and MPS nothing is timed. ``ValueError`` for a precision or runtime that cannot run here."""
        self._use(plan_inference(self.generator, self.device, precision, None, "torch" if self.compile else runtime))
        return self.plan

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
        ``precision``: fp32, bf16, fp16 (CUDA) or auto (fp16 on CUDA, else fp32); ``runtime``: auto or torch
        (torch), or onnxruntime (CPU, fp32; exports the model once into the cache). Only loads: call
        ``choose_fastest()`` for the fastest variant here."""
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
