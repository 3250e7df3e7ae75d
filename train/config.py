"""Every training option in one dataclass; the command line is built from its fields and their help.

Defaults are the pix2pix paper's facades run (Isola et al. 2017, and the authors' PyTorch code). A recipe
(``--recipe``) is a named set of defaults on top of those; flags given explicitly always win.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import typing
from dataclasses import dataclass, field


def opt(default, help: str, **kwargs):
    return field(default=default, metadata={"help": help, **kwargs})


#: What each recipe changes from the field defaults below (which are the paper's).
RECIPES: dict[str, dict] = {
    # The authors' exact setting: U-Net ngf 64 (54.4M parameters), batch 1, 100 + 100 epochs. For a GPU.
    "paper": {},
    # For two CPU cores, chosen by the ablations in docs/results.md (val FID and seed diversity at equal time):
    # ngf/ndf 32 (a 13.8M-parameter generator, about 4x fewer FLOPs per image), bf16 where timed faster,
    # compiled, data in memory; an 8-number latent code with the mode-seeking term and L1 at 10 (seeds that
    # differ visibly, and a lower FID), batch 2 maps x 2 codes with the lr scaled by sqrt(4), and an EMA.
    # Then, by the equal-step ablations of docs/results.md (val FID at 4,000 steps 159 against 173-185 for the
    # recipe without them): pix2pixHD's feature matching on D's layers (weight 10) and training codes scaled by
    # up to 1.6x; and, at inference, codes longer than 2 shortened (seeds with long codes
    # follow the layout; 2 chosen on val on the 68,000-step run, the longest that leaves no seed under a floor).
    # Then, by issue 44's equal-step rows (6,000 steps, docs/results.md): the mode-seeking term measured on the
    # discriminator's features, where a new tint cannot satisfy it (val FID 138.8 against 141.6 and 145.9 for
    # the two training seeds of the recipe before it; detail sameness 0.20 against 0.33 and 0.13).
    "cpu": {"ngf": 32, "ndf": 32, "batch_size": 2, "lr": 4e-4, "compile": True, "num_workers": 0,
            "nz": 8, "lambda_ms": 1.0, "lambda_l1": 10.0, "ema": 0.999,
            "lambda_fm": 10.0, "code_scale_max": 1.6, "code_max_norm": 2.0, "ms_on": "dfeat"},
}

# Options that say which data to read; ``python -m train.evaluate`` takes the same ones.
DATA_OPTIONS = ("data", "data_a", "data_b", "direction", "snap_labels", "limit")


@dataclass
class TrainConfig:
    recipe: str = opt("paper", "named defaults: 'paper' = the authors' facades setting (ngf 64, batch 1; for a GPU); "
                               "'cpu' = ngf/ndf 32, a latent code (nz 8) with the mode-seeking term on D's "
                               "features, L1 weight 10, feature matching 10, training codes scaled up to 1.6x, "
                               "codes over 2 shortened "
                               "at inference, batch 2 x 2 codes, lr 4e-4, EMA 0.999, compiled (for two CPU cores; "
                               "a 13.8M- instead of 54.4M-parameter generator). Explicit flags override it",
                      choices=tuple(RECIPES), metavar="{" + ",".join(RECIPES) + "}")
    # Data
    data: str | None = opt(None, metavar="DIR",
                           help="folder with train/ (and val/, test/) of side-by-side image pairs (the pix2pix "
                                "layout); default: a local facades copy, else downloaded into --cache-dir")
    data_a: str | None = opt(None, metavar="DIR",
                             help="folder of A images (facades: photos); use with --data-b, paired by file name")
    data_b: str | None = opt(None, metavar="DIR", help="folder of B images (facades: label maps); use with --data-a")
    direction: str = opt("BtoA", "BtoA: input is the right half / --data-b (facades: labels -> photo); AtoB the "
                                 "reverse", choices=("BtoA", "AtoB"), metavar="{BtoA,AtoB}")
    snap_labels: bool = opt(True, "snap input images to the CMP facade palette, as the app does "
                                  "(turn off for data that is not facade label maps)")
    limit: int | None = opt(None, "use only the first N images (quick runs)")
    in_memory: str = opt("auto", "decode and resize the training set once and jitter it in memory (no loader "
                                 "workers, no per-step JPEG decoding); auto: when it takes under min(4 GiB, RAM/4)",
                         choices=("auto", "on", "off"), metavar="{auto,on,off}")
    cache_dir: str = opt(os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                                      "facade-pix2pix"), metavar="DIR",
                         help="where the facades archive is downloaded and unpacked when there is no local copy")
    # Model
    image_size: int = opt(256, "training crop size; must be a power of two (the U-Net has log2(size) levels)")
    load_size: int | None = opt(None, "resize before the random crop (default: image_size * 286 / 256)")
    flip: bool = opt(True, "random horizontal flip (the same for input and target)")
    ngf: int = opt(64, "generator width (channels of its first layer)")
    ndf: int = opt(64, "discriminator width")
    n_layers_d: int = opt(3, "discriminator depth: 3 is the 70x70 PatchGAN")
    nz: int = opt(0, "latent code size: nz numbers drawn per sample (from its seed at inference), fed to every "
                     "encoder block beside the label map; 0 is the paper's generator (dropout its only noise)")
    code_at: str = opt("encoder", "where the latent code enters the U-Net: every encoder block (BicycleGAN's 'add to "
                                  "all'), the innermost encoder block only, every decoder block, or all of both",
                       choices=("encoder", "bottleneck", "decoder", "all"), metavar="{encoder,bottleneck,decoder,all}")
    code_mod: bool = opt(False, "the code also scales and shifts every normalised decoder block's channels (a "
                                "per-channel affine computed from it); needs --nz > 0")
    upsample: str = opt("transpose", "the decoder's up-step: the paper's 4x4 stride-2 transposed convolution, or "
                                     "nearest upsampling + 3x3 convolution (no checkerboard)",
                        choices=("transpose", "resize"), metavar="{transpose,resize}")
    code_max_norm: float = opt(0.0, "at inference, shorten every latent code longer than this to this length (0: "
                                    "off; stored in config.json, so the app, CLI and browser apply it): seeds "
                                    "with long codes then follow the painted layout (docs/results.md)")
    # Optimisation
    epochs: int = opt(100, "epochs at the initial learning rate")
    epochs_decay: int = opt(100, "further epochs with the learning rate decaying linearly to 0")
    time_budget: str | None = opt(None, metavar="DURATION",
                                  help="fit the whole run (training, final evaluation, export) into this wall time, "
                                       "e.g. 140m, 2h, 1h30m: the first steps are timed, then --epochs and "
                                       "--epochs-decay are chosen (half and half; counted in steps when fewer than "
                                       "two epochs fit) to end on time with the learning rate decayed")
    batch_size: int = opt(1, "images per step (per process under torchrun); exact per sample thanks to instance "
                             "norm. For B > 1 try --lr 2e-4*sqrt(B) (see docs/training.md)")
    lr: float = opt(2e-4, "Adam learning rate for both networks (the discriminator's: see --lr-d)")
    lr_d: float | None = opt(None, "Adam learning rate of the discriminator (default: --lr). A higher one than the "
                                   "generator's (TTUR) lets a fresh discriminator keep up with a trained generator "
                                   "that is only being fine-tuned; it follows the same schedule")
    beta1: float = opt(0.5, "Adam beta1")
    beta2: float = opt(0.999, "Adam beta2")
    lambda_l1: float = opt(100.0, "weight of the L1 loss against the GAN loss")
    lambda_ms: float = opt(0.0, "weight of the mode-seeking term (MSGAN): each input is generated with two codes "
                                "and rewarded for their difference, so seeds differ visibly; needs --nz > 0, and a "
                                "step then runs the networks on 2 x --batch-size images")
    code_scale_max: float = opt(1.0, "scale each training code by a factor drawn uniformly from [1/M, M] (1: plain "
                                     "N(0, 1) codes), so that codes of large norm -- which seeds draw too -- are "
                                     "trained to follow the layout as well")
    ms_on: str = opt("pixel", "what the mode-seeking term measures the two codes' difference on: the pixels (MSGAN), "
                              "the fine detail (greyscale minus its Gaussian blur, sigma 3 px: a new tint does not "
                              "count), or the discriminator's features of the two facades",
                     choices=("pixel", "detail", "dfeat"), metavar="{pixel,detail,dfeat}")
    l1_downsample: int = opt(1, "compare the facade with the photo (L1) after a KxK box downscale (1: at full size, "
                                "the paper): the layout and the large masses must match the one photo, the details "
                                "are free to differ")
    code_maps: float = opt(0.0, "share of the mode-seeking pairs whose second code is a code map: the first code "
                                "outside a random box, a new one inside it; the mode-seeking term then counts the "
                                "difference inside the box only, and --lambda-keep holds the facade outside it "
                                "(trains codes that differ by region); needs --lambda-ms > 0")
    lambda_keep: float = opt(10.0, "with --code-maps: weight of L1 between the two facades of a code-map pair "
                                   "outside the box")
    lambda_fm: float = opt(0.0, "weight of pix2pixHD's feature-matching loss: L1 between the discriminator's "
                                "features of the fake and the real photo, over its layers (0: off, the paper)")
    diffaug: str = opt("", "differentiable augmentation of everything the discriminator sees (DiffAugment, Zhao et "
                           "al. 2020), comma-separated: translation and cutout (label map and photo together), "
                           "color (photos only); empty: off, the paper", metavar="POLICY")
    ema: float = opt(0.0, "decay of the exponential moving average of the generator's weights, which are then "
                          "the ones sampled, evaluated and exported (0: off, the paper; 0.999 averages about "
                          "the last 1000 steps)")
    init_from: str | None = opt(None, metavar="WEIGHTS",
                                help="start the generator from these weights (an export folder, .safetensors, "
                                     "official .pth or Hub repo id; same --ngf and --nz) instead of random ones: "
                                     "fine-tuning, or a second stage of a run whose folder is gone. The discriminator "
                                     "and the optimisers start fresh; a resumed run ignores it")
    d_warmup: int = opt(0, "steps at the start of the run in which only the discriminator trains (the generator and "
                           "its EMA stay still): with --init-from, a fresh discriminator first learns the trained "
                           "generator's faults before its gradients reach the generator")
    seed: int = opt(0, "seed for initialisation, data order, jitter and dropout (runs repeat exactly)")
    # Speed
    device: str = opt("auto", metavar="DEVICE", help="cuda, cpu, mps or auto (under torchrun: one GPU per process)")
    precision: str = opt("auto", "fp32 or bf16 autocast (the losses stay fp32); auto: bf16 on CUDA, and on the CPU "
                                 "whichever a few timed steps find faster here (said at start-up)",
                         choices=("auto", "fp32", "bf16"), metavar="{auto,fp32,bf16}")
    channels_last: bool = opt(True, "channels_last memory format (CUDA only)")
    fused_adam: bool = opt(True, "fused Adam kernels (CUDA only)")
    compile: bool = opt(False, "torch.compile both networks (the first step takes a minute or two while it compiles)")
    num_workers: int = opt(min(4, os.cpu_count() or 1), "data loader worker processes when the data is streamed "
                                                        "(0: load in the main process)")
    # Run folder, logging, checkpoints
    run_dir: str = opt("runs/facades", metavar="DIR",
                       help="run folder: checkpoints, samples, metrics.jsonl, index.html, export/")
    resume: bool = opt(True, "continue from <run_dir>/checkpoints/latest.pt when it exists (--no-resume: start over)")
    save_every: int = opt(10, "write a checkpoint every N epochs (and latest.pt; also at the end and on Ctrl-C)")
    keep_checkpoints: int = opt(3, "numbered checkpoints to keep (0: all); latest.pt is always kept")
    log_every: int = opt(50, "write a step line to metrics.jsonl every N steps")
    num_samples: int = opt(4, "fixed validation images in each epoch's sample grid")
    evaluate: bool = opt(True, "at the end, evaluate on the test split (else val) for the model card")
    eval_limit: int | None = opt(None, "evaluate on only the first N images")
    tensorboard: bool = opt(True, "also log to TensorBoard when it is installed")
    progress: bool = opt(True, "tqdm progress bars")
    # Publishing
    push_to_hub: str | None = opt(None, metavar="REPO_ID", help="after training, upload export/ to this Hub repo id "
                                        "(token from $HF_TOKEN or `huggingface-cli login`)")
    private: bool = opt(False, "create the Hub repo as private")

    @property
    def generator_kwargs(self) -> dict:
        """``UnetGenerator``'s arguments for this run."""
        kwargs = {"ngf": self.ngf, "num_downs": self.num_downs, "nz": self.nz, "code_at": self.code_at,
                  "upsample": self.upsample, "code_max_norm": self.code_max_norm}
        return {**kwargs, "code_mod": True} if self.code_mod else kwargs  # older exports' config.json unchanged

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay

    @property
    def resolved_lr_d(self) -> float:
        return self.lr if self.lr_d is None else self.lr_d

    @property
    def num_downs(self) -> int:
        return self.image_size.bit_length() - 1

    @property
    def resolved_load_size(self) -> int:
        return self.load_size or round(self.image_size * 286 / 256)

    @property
    def budget_seconds(self) -> float | None:
        return None if self.time_budget is None else parse_duration(self.time_budget)

    def check(self) -> TrainConfig:
        if self.image_size < 32 or self.image_size & (self.image_size - 1):
            raise SystemExit(f"--image-size must be a power of two >= 32, got {self.image_size}")
        if self.resolved_load_size < self.image_size:
            raise SystemExit(f"--load-size ({self.resolved_load_size}) must be at least --image-size "
                             f"({self.image_size})")
        if (self.data_a is None) != (self.data_b is None):
            raise SystemExit("--data-a and --data-b go together")
        if self.data and self.data_a:
            raise SystemExit("give either --data or --data-a/--data-b, not both")
        for name in ("epochs", "epochs_decay", "limit", "eval_limit", "d_warmup"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise SystemExit(f"--{name.replace('_', '-')} must be >= 0")
        if self.total_epochs < 1:
            raise SystemExit("--epochs + --epochs-decay must be at least 1")
        if self.lambda_ms > 0 and self.nz < 1:
            raise SystemExit("--lambda-ms needs a latent code to act on: add --nz 8 (the MSGAN and DSGAN value)")
        for name in ("lr", "lr_d", "code_max_norm"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise SystemExit(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        if (self.code_mod or self.ms_on != "pixel") and self.nz < 1:
            raise SystemExit("--code-mod and --ms-on need a latent code: add --nz 8")
        if not 0 <= self.code_maps <= 1:
            raise SystemExit(f"--code-maps is a share of the pairs, in [0, 1], got {self.code_maps}")
        if self.code_maps and not self.lambda_ms > 0:
            raise SystemExit("--code-maps trains with the mode-seeking pairs: add --lambda-ms 1")
        if self.l1_downsample < 1 or self.image_size % self.l1_downsample:
            raise SystemExit(f"--l1-downsample must divide --image-size, got {self.l1_downsample}")
        if self.lambda_keep < 0:
            raise SystemExit(f"--lambda-keep must be >= 0, got {self.lambda_keep}")
        if self.code_scale_max < 1:
            raise SystemExit(f"--code-scale-max must be at least 1 (1: off), got {self.code_scale_max}")
        if self.lambda_fm < 0:
            raise SystemExit(f"--lambda-fm must be >= 0, got {self.lambda_fm}")
        unknown = set(filter(None, self.diffaug.split(","))) - {"translation", "cutout", "color"}
        if unknown:
            raise SystemExit(f"--diffaug: unknown {', '.join(sorted(unknown))}; use translation, cutout, color")
        if not 0 <= self.ema < 1:
            raise SystemExit(f"--ema must be in [0, 1) (0: off), got {self.ema}")
        if self.nz < 0:
            raise SystemExit(f"--nz must be >= 0, got {self.nz}")
        for name in ("batch_size", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
        try:
            _ = self.budget_seconds
        except ValueError as e:
            raise SystemExit(f"--time-budget: {e}") from None
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)\s*s)?",
                       re.IGNORECASE)


def parse_duration(text: str) -> float:
    """'140m', '2h', '1h30m', '90s' or plain seconds ('600') -> seconds."""
    text = str(text).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        total = float(text)
    else:
        match = _DURATION.fullmatch(text)
        if not text or not match:
            total = 0.0
        else:
            h, m, s = (float(g) if g else 0.0 for g in match.groups())
            total = h * 3600 + m * 60 + s
    if total <= 0:
        raise ValueError(f"{text!r} is not a duration like 140m, 2h, 1h30m or 600s")
    return total


def _base_type(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def add_options(parser: argparse.ArgumentParser, names: typing.Iterable[str] | None = None) -> None:
    """Add ``TrainConfig``'s fields (all, or ``names``) to ``parser`` as ``--flags`` with their help."""
    hints = typing.get_type_hints(TrainConfig)
    wanted = None if names is None else set(names)
    for f in dataclasses.fields(TrainConfig):
        if wanted is not None and f.name not in wanted:
            continue
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train",
        description="Train the pix2pix facades model (labels -> photo). --recipe paper (the default) is the paper's "
                    "setting: U-Net 256 + 70x70 PatchGAN, GAN + 100 x L1, Adam 2e-4 (0.5, 0.999), 100 + 100 epochs, "
                    "batch 1, for a GPU. --recipe cpu trains a narrower model on a CPU; add --time-budget to fit it "
                    "into a wall time. `python -m train.benchmark` measures both.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_options(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = build_parser()
    recipe = parser.parse_known_args(argv)[0].recipe
    parser.set_defaults(**RECIPES[recipe])  # a recipe only moves defaults: explicit flags still win
    return TrainConfig(**vars(parser.parse_args(argv))).check()
