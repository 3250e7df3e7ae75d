"""Every training option in one dataclass; the command line is built from its fields and their help.

Defaults are the pix2pix paper's facades run (Isola et al. 2017, and the authors' PyTorch code).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from dataclasses import dataclass, field


def opt(default, help: str, **kwargs):
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class TrainConfig:
    # Data
    data: str | None = opt(None, metavar="DIR", help="folder with train/ (and val/, test/) of side-by-side image pairs (the pix2pix "
                                 "layout); default: a local facades copy, else downloaded into --cache-dir")
    data_a: str | None = opt(None, metavar="DIR", help="folder of A images (facades: photos); use with --data-b, paired by file name")
    data_b: str | None = opt(None, metavar="DIR", help="folder of B images (facades: label maps); use with --data-a")
    direction: str = opt("BtoA", "BtoA: input is the right half / --data-b (facades: labels -> photo); AtoB the reverse",
                         choices=("BtoA", "AtoB"), metavar="{BtoA,AtoB}")
    snap_labels: bool = opt(True, "snap input images to the CMP facade palette, as the app does "
                                  "(turn off for data that is not facade label maps)")
    limit: int | None = opt(None, "use only the first N training images (quick runs)")
    cache_dir: str = opt(os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "facade-pix2pix"),
                         metavar="DIR", help="where the facades archive is downloaded and unpacked when there is no local copy")
    # Model
    image_size: int = opt(256, "training crop size; must be a power of two (the U-Net has log2(size) levels)")
    load_size: int | None = opt(None, "resize before the random crop (default: image_size * 286 / 256)")
    flip: bool = opt(True, "random horizontal flip (the same for input and target)")
    ngf: int = opt(64, "generator width (channels of its first layer)")
    ndf: int = opt(64, "discriminator width")
    n_layers_d: int = opt(3, "discriminator depth: 3 is the 70x70 PatchGAN")
    # Optimisation
    epochs: int = opt(100, "epochs at the initial learning rate")
    epochs_decay: int = opt(100, "further epochs with the learning rate decaying linearly to 0")
    batch_size: int = opt(1, "images per step (per process under torchrun); exact per sample thanks to instance "
                             "norm. For B > 1 try --lr 2e-4*sqrt(B) (see README)")
    lr: float = opt(2e-4, "Adam learning rate for both networks")
    beta1: float = opt(0.5, "Adam beta1")
    beta2: float = opt(0.999, "Adam beta2")
    lambda_l1: float = opt(100.0, "weight of the L1 loss against the GAN loss")
    seed: int = opt(0, "seed for initialisation, data order, jitter and dropout (runs repeat exactly)")
    # Speed
    device: str = opt("auto", metavar="DEVICE", help="cuda, cpu, mps or auto (under torchrun: one GPU per process)")
    amp: bool = opt(True, "bf16 autocast (CUDA only; losses stay fp32)")
    channels_last: bool = opt(True, "channels_last memory format (CUDA only)")
    fused_adam: bool = opt(True, "fused Adam kernels (CUDA only)")
    compile: bool = opt(False, "torch.compile both networks (first steps are slow while it compiles)")
    num_workers: int = opt(min(4, os.cpu_count() or 1), "data loader worker processes (0: load in the main process)")
    # Run folder, logging, checkpoints
    run_dir: str = opt("runs/facades", metavar="DIR", help="run folder: checkpoints, samples, metrics.jsonl, index.html, export/")
    resume: bool = opt(True, "continue from <run_dir>/checkpoints/latest.pt when it exists (--no-resume: start over)")
    save_every: int = opt(10, "write a checkpoint every N epochs (and latest.pt; also at the end and on Ctrl-C)")
    keep_checkpoints: int = opt(3, "numbered checkpoints to keep (0: all); latest.pt is always kept")
    log_every: int = opt(50, "write a step line to metrics.jsonl every N steps")
    num_samples: int = opt(4, "fixed validation images in each epoch's sample grid")
    evaluate: bool = opt(True, "at the end, evaluate on the test split (else val) for the model card")
    eval_limit: int | None = opt(None, "evaluate on only the first N images")
    tensorboard: bool = opt(True, "also log to TensorBoard when it is installed")
    progress: bool = opt(True, "tqdm progress bars")
    # Publishing and benchmarking
    push_to_hub: str | None = opt(None, metavar="REPO_ID", help="after training, upload export/ to this Hub repo id "
                                        "(token from $HF_TOKEN or `huggingface-cli login`)")
    private: bool = opt(False, "create the Hub repo as private")
    benchmark: bool = opt(False, "print it/s and images/s of the baseline (fp32, eager, batch 1) and the fast "
                                 "path side by side on synthetic data, then exit")
    benchmark_steps: int = opt(20, "timed steps per benchmark setting (after warm-up)")
    benchmark_batch_size: int | None = opt(None, "fast-path batch size for --benchmark (default 16 on CUDA, 4 on CPU)")

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay

    @property
    def num_downs(self) -> int:
        return self.image_size.bit_length() - 1

    @property
    def resolved_load_size(self) -> int:
        return self.load_size or round(self.image_size * 286 / 256)

    def check(self) -> TrainConfig:
        if self.image_size < 32 or self.image_size & (self.image_size - 1):
            raise SystemExit(f"--image-size must be a power of two >= 32, got {self.image_size}")
        if self.resolved_load_size < self.image_size:
            raise SystemExit(f"--load-size ({self.resolved_load_size}) must be at least --image-size ({self.image_size})")
        if (self.data_a is None) != (self.data_b is None):
            raise SystemExit("--data-a and --data-b go together")
        if self.data and self.data_a:
            raise SystemExit("give either --data or --data-a/--data-b, not both")
        for name in ("epochs", "epochs_decay", "limit", "eval_limit"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise SystemExit(f"--{name.replace('_', '-')} must be >= 0")
        if self.total_epochs < 1:
            raise SystemExit("--epochs + --epochs-decay must be at least 1")
        for name in ("batch_size", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _base_type(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train",
        description="Train the pix2pix facades model (labels -> photo). Defaults are the paper's recipe: "
                    "U-Net 256 + 70x70 PatchGAN, GAN + 100 x L1, Adam 2e-4 (0.5, 0.999), 100 + 100 epochs, batch 1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kwargs = {"default": f.default, "help": f.metadata["help"]}
        tp = _base_type(hints[f.name])
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = tp
            kwargs["metavar"] = f.metadata.get("metavar", "STR" if tp is str else tp.__name__.upper())
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
        parser.add_argument(flag, dest=f.name, **kwargs)
    return parser


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    return TrainConfig(**vars(build_parser().parse_args(argv))).check()
