"""Train the facade parser (photo -> the 12 CMP classes) that reads an uploaded photo into a label map.

``python -m train.parser --data <facades> --run-dir runs/parser`` trains ``pix2pix.parser.ParserNet`` from
scratch on the training photos, or with ``--arch inception`` ``InceptionParserNet``, its encoder started from
the TF-FID Inception's ImageNet weights (``train.fid``'s file) and trained at ``--encoder-lr`` of the rate:
cross-entropy, AdamW, a linear warm-up then a cosine decay, bf16 autocast on
the CPU where it pays (AMX). Each step's batch and augmentation (a random resized crop, a flip, brightness,
contrast and saturation) are drawn from a generator seeded by (seed, step), so a run stopped and started again
(the same command: it resumes from ``<run-dir>/last.pt``) is step-exact. Every ``--eval-every`` steps the
parser is scored on val (pixel accuracy, mean IoU); the best on val is kept as ``<run-dir>/best`` (the
shipped folder's layout), then scored on test. ``--export assets/parser`` copies it there.

This is not ``train.fidelity``'s segmenter: that one stays as it is so that fidelity figures stay comparable.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.inception import BasicConv2d
from torchvision.transforms.functional import pil_to_tensor

from pix2pix.images import SIZE, uint8_to_tensor
from pix2pix.palette import CLASS_NAMES, NUM_CLASSES, index_to_rgb, rgb_to_index
from pix2pix.parser import FLIP, InceptionParserNet, build_parser_net, classify, load_parser_net, save_parser

from .data import DataError, PairedDataset, check_pairs, find_pairs, split_folder


@dataclass
class ParserConfig:
    """Everything a run depends on (saved in the run folder; the command in the card gives each one)."""

    data: str = ""
    run_dir: str = "runs/parser"
    steps: int = 6000
    batch_size: int = 8
    arch: str = "unet"  # unet (from scratch) or inception (its encoder from the TF-FID Inception's ImageNet weights)
    width: int = 24  # unet only, as levels and cap
    levels: int = 6
    cap: int = 192
    encoder_lr: float = 0.1  # inception only: the pretrained encoder learns at this share of lr
    flip: bool = True  # read each photo and its mirror (val is scored so, and the parser's config says so)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 150
    min_scale: float = 0.5  # the random crop keeps this share of the photo's area at least
    jitter: float = 0.2  # brightness, contrast and saturation move by up to this much
    seed: int = 0
    threads: int = 1  # 1 was faster than 2 on a 2-core machine shared with other work
    bf16: bool = True
    eval_every: int = 250
    save_every: int = 50
    init: str | None = None  # start from this parser folder's weights (a second cycle), not from random ones
    synthetic: int = 0  # facades the generator draws per training map, mixed into the batches (0: real photos only)
    synthetic_share: float = 0.5  # the share of a batch's samples drawn from those facades
    generator: str | None = None  # the generator's weights for them (None: the bundled model)
    limit: int | None = None  # the first N training pairs only (tests, quick runs)
    eval_limit: int | None = None
    progress: bool = True


# ----------------------------------------------------------------------------------------------- data
def load_split(folder: Path, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, 256, 256) uint8 photos and (N, 256, 256) uint8 classes of a pix2pix folder (photo | labels)."""
    pairs, _ = check_pairs(find_pairs(folder, limit=limit))
    dataset = PairedDataset(pairs, SIZE, SIZE)  # BtoA: (labels snapped to the palette, photo)
    photos = torch.empty(len(pairs), 3, SIZE, SIZE, dtype=torch.uint8)
    classes = torch.empty(len(pairs), SIZE, SIZE, dtype=torch.uint8)
    for i in range(len(pairs)):
        labels, photo = dataset.resized(i, SIZE)
        photos[i] = pil_to_tensor(photo.convert("RGB"))
        classes[i] = torch.from_numpy(rgb_to_index(labels))
    return photos, classes


def augment(photos: torch.Tensor, classes: torch.Tensor, g: torch.Generator, min_scale: float,
            jitter: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A random resized crop (area ``min_scale``..1, aspect 3:4..4:3) and flip, the same for a photo and its
    classes (bilinear / nearest, in one ``grid_sample`` per batch), then colour jitter on the photo."""
    n = photos.shape[0]
    area = min_scale + (1 - min_scale) * torch.rand(n, generator=g)
    aspect = torch.exp((torch.rand(n, generator=g) - 0.5) * 2 * math.log(4 / 3))
    sx = torch.sqrt(area * aspect).clamp(max=1)  # half-widths in [-1, 1] coordinates
    sy = torch.sqrt(area / aspect).clamp(max=1)
    cx = (1 - sx) * (2 * torch.rand(n, generator=g) - 1)
    cy = (1 - sy) * (2 * torch.rand(n, generator=g) - 1)
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx * flip, cx, sy, cy
    grid = F.affine_grid(theta, [n, 3, SIZE, SIZE], align_corners=False)
    x = F.grid_sample(uint8_to_tensor(photos), grid, mode="bilinear", padding_mode="border", align_corners=False)
    y = F.grid_sample(classes[:, None].float(), grid, mode="nearest", padding_mode="border", align_corners=False)
    shape = (n, 1, 1, 1)
    bright = (torch.rand(shape, generator=g) * 2 - 1) * jitter
    contrast = 1 + (torch.rand(shape, generator=g) * 2 - 1) * jitter
    sat = 1 + (torch.rand(shape, generator=g) * 2 - 1) * jitter
    grey = x.mean(1, keepdim=True)
    x = (x - grey) * sat + grey
    mean = x.mean((1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean + bright).clamp(-1, 1)
    return x, y[:, 0].long()


@torch.no_grad()
def synthetic_pool(classes: torch.Tensor, per_map: int, weights: str | None, cache: Path,
                   progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_map`` facades the generator draws from each training map (seeds ``i * per_map + j``), with that map
    as their classes: pairs whose labels are exact, on the data set's layouts, in many buildings' looks. Kept in
    ``cache`` so that a resumed run reads the same pool (a new CPU's rounding would not redraw it bit for bit)."""
    if cache.is_file():
        pool = torch.load(cache, weights_only=True)
        if len(pool["classes"]) == len(classes) * per_map:  # else drawn for another --synthetic: draw again
            return pool["photos"], pool["classes"]
    from tqdm import tqdm

    from pix2pix import Pix2Pix

    model = Pix2Pix.load(weights)
    model.choose_fastest()
    maps = classes.repeat_interleave(per_map, 0)
    photos = torch.empty(len(maps), 3, SIZE, SIZE, dtype=torch.uint8)
    for start in tqdm(range(0, len(maps), 8), desc="drawing synthetic facades", unit="batch", disable=not progress):
        labels = [index_to_rgb(m.numpy()) for m in maps[start:start + 8]]
        images = model.generate_batch(labels, list(range(start, start + len(labels))))
        photos[start:start + len(images)] = torch.stack([pil_to_tensor(image) for image in images])
    torch.save({"photos": photos, "classes": maps}, cache)
    return photos, maps


def step_batch(photos: torch.Tensor, classes: torch.Tensor, config: ParserConfig, step: int,
               synthetic: tuple[torch.Tensor, torch.Tensor] | None = None):
    """Step ``step``'s batch: the same on every run and resume (its own generator, seeded by seed and step).
    With a ``synthetic`` pool, each sample comes from it with probability ``synthetic_share``."""
    g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    idx = torch.randint(0, len(photos), (config.batch_size,), generator=g)
    x, y = photos[idx], classes[idx]
    if synthetic is not None:
        use = torch.rand(config.batch_size, generator=g) < config.synthetic_share
        pick = torch.randint(0, len(synthetic[0]), (config.batch_size,), generator=g)
        x = torch.where(use[:, None, None, None], synthetic[0][pick], x)
        y = torch.where(use[:, None, None], synthetic[1][pick], y)
    return augment(x, y, g, config.min_scale, config.jitter)


# ----------------------------------------------------------------------------------------------- scores
@torch.no_grad()
def predict(net: torch.nn.Module, photos: torch.Tensor, bf16: bool = False, batch_size: int = 16,
            flip: bool = FLIP) -> torch.Tensor:
    """(N, 3, H, W) uint8 photos -> (N, H, W) uint8 classes, read as the app reads them (``classify``)."""
    net.eval()
    out = []
    for start in range(0, len(photos), batch_size):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out.append(classify(net, uint8_to_tensor(photos[start:start + batch_size]), flip))
    return torch.cat(out)


def confusion(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor) -> np.ndarray:
    """(12, 12) pixel counts, rows the true class, columns the predicted one."""
    pred, true = np.asarray(pred, np.int64).ravel(), np.asarray(true, np.int64).ravel()
    return np.bincount(true * NUM_CLASSES + pred, minlength=NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)


def scores(conf: np.ndarray) -> dict:
    """Pixel accuracy, per-class IoU (None for a class in neither map) and their mean over the classes present."""
    inter = np.diag(conf).astype(float)
    union = conf.sum(0) + conf.sum(1) - np.diag(conf)
    iou = {name: (float(inter[k] / union[k]) if union[k] else None) for k, name in enumerate(CLASS_NAMES)}
    present = [v for v in iou.values() if v is not None]
    return {"pixel_accuracy": float(inter.sum() / conf.sum()), "mean_iou": float(np.mean(present)), "iou": iou}


def evaluate(net: torch.nn.Module, photos: torch.Tensor, classes: torch.Tensor, bf16: bool = False,
             flip: bool = FLIP) -> dict:
    return scores(confusion(predict(net, photos, bf16, flip=flip), classes))


# ----------------------------------------------------------------------------------------------- training
def lr_factor(step: int, config: ParserConfig) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to zero at ``steps``."""
    if step < config.warmup:
        return (step + 1) / config.warmup
    return 0.5 * (1 + math.cos(math.pi * (step - config.warmup) / max(1, config.steps - config.warmup)))


def make_state(config: ParserConfig):
    torch.manual_seed(config.seed)
    net = build_parser_net(asdict(config))
    groups = [{"params": list(net.parameters())}]
    if config.init:
        net.load_state_dict(load_parser_net(config.init).state_dict())
    if config.arch == "inception":
        if not config.init:
            load_inception_encoder(net)
        encoder = [p for m in net.encoder() for p in m.parameters()]
        ids = {id(p) for p in encoder}
        groups = [{"params": [p for p in net.parameters() if id(p) not in ids]},
                  {"params": encoder, "lr": config.lr * config.encoder_lr}]
    opt = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, config))
    return net, opt, sched


def load_inception_encoder(net: InceptionParserNet) -> int:
    """Copy the TF-FID Inception's convolutions and batch norms (``train.fid``; the file has no batch-norm scale:
    1) into ``net``'s encoder, one to one in order, each shape checked; returns how many layers were copied."""
    from train.fid import load_inception

    state = load_inception().state_dict()
    layers = [tuple(state[k[:-len("weight")] + name] for name in ("weight", "beta", "mean", "var"))
              for k in state if k.endswith(".weight")]
    ours = [m for part in net.encoder() for m in part.modules() if isinstance(m, BasicConv2d)]
    for m, (weight, beta, mean, var) in zip(ours, layers):  # the file goes on past Mixed_6b: the rest is unused
        if m.conv.weight.shape != weight.shape:
            raise RuntimeError(f"the Inception file does not match the encoder: {tuple(weight.shape)} for "
                               f"{tuple(m.conv.weight.shape)}")
        with torch.no_grad():
            m.conv.weight.copy_(weight)
            m.bn.weight.fill_(1.0)
            m.bn.bias.copy_(beta)
            m.bn.running_mean.copy_(mean)
            m.bn.running_var.copy_(var)
    return len(ours)


def save_checkpoint(path: Path, step: int, net, opt, sched, best: dict, config: ParserConfig) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"step": step, "net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "best": best, "config": asdict(config)}, tmp)
    tmp.replace(path)  # a run killed mid-save keeps its previous checkpoint


def train(config: ParserConfig, stop_at: int | None = None) -> dict:
    """Train (or resume) the run in ``config.run_dir``; returns the best val scores and where the best is.
    ``stop_at``: stop (saved) after that step, as an interrupted run would; the same command goes on from there."""
    from tqdm import tqdm

    torch.set_num_threads(config.threads)
    root, run = Path(config.data), Path(config.run_dir)
    train_dir, val_dir = split_folder(root, "train"), split_folder(root, "val")
    if train_dir is None:
        raise DataError(f"{root}: no training photos (train/ with photo | label map side by side)")
    run.mkdir(parents=True, exist_ok=True)
    photos, classes = load_split(train_dir, config.limit)
    val = load_split(val_dir, config.eval_limit) if val_dir is not None else (photos, classes)
    synthetic = (synthetic_pool(classes, config.synthetic, config.generator, run / "synthetic.pt", config.progress)
                 if config.synthetic else None)
    net, opt, sched = make_state(config)
    step, best = 0, {"step": None, "pixel_accuracy": -1.0}
    last = run / "last.pt"
    if last.is_file():
        ckpt = torch.load(last, weights_only=False)
        saved = {**asdict(ParserConfig()), **ckpt["config"]}  # an option added since takes its default
        if {k: v for k, v in saved.items() if k != "progress"} != {
                k: v for k, v in asdict(config).items() if k != "progress"}:
            raise SystemExit(f"error: {last} was made with another configuration: use another --run-dir")
        net.load_state_dict(ckpt["net"])
        opt.load_state_dict(ckpt["opt"])
        sched.load_state_dict(ckpt["sched"])
        step, best = ckpt["step"], ckpt["best"]
    (run / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    started = time.monotonic()
    with tqdm(total=config.steps, initial=step, desc="training the parser", unit="step",
              disable=not config.progress) as bar:
        while step < min(config.steps, stop_at or config.steps):
            net.train()
            x, y = step_batch(photos, classes, config, step, synthetic)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                logits = net(x)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if step % config.eval_every == 0 or step == config.steps:
                result = evaluate(net, *val, bf16=config.bf16, flip=config.flip)
                with (run / "metrics.jsonl").open("a") as f:
                    f.write(json.dumps({"step": step, "loss": loss.item(), "minutes": round(
                        (time.monotonic() - started) / 60, 2), **result}) + "\n")
                bar.write(f"step {step}: val pixel accuracy {result['pixel_accuracy']:.3f}, "
                          f"mean IoU {result['mean_iou']:.3f}")
                if result["pixel_accuracy"] > best["pixel_accuracy"]:
                    best = {"step": step, "pixel_accuracy": result["pixel_accuracy"], "mean_iou": result["mean_iou"]}
                    save_parser(net, run / "best", {"flip": config.flip, "step": step, "val": result})
            if step % config.save_every == 0 or step in (config.steps, stop_at):
                save_checkpoint(last, step, net, opt, sched, best, config)
    return best


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m train.parser", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    defaults = ParserConfig()
    for f in fields(ParserConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "data":
            p.add_argument(flag, required=True, help="facades folder with train/ (val/ and test/ are scored)")
        elif f.type in ("bool", bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=getattr(defaults, f.name))
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" ")[0], int)
            p.add_argument(flag, type=kind, default=getattr(defaults, f.name))
    p.add_argument("--export", default=None, help="copy the best parser (weights and config) to this folder")
    args = vars(p.parse_args(argv))
    export = args.pop("export")
    config = ParserConfig(**args)
    best = train(config)
    run = Path(config.run_dir)
    test_dir = split_folder(Path(config.data), "test")
    if test_dir is not None and best["step"] is not None:
        best["test"] = evaluate(load_parser_net(run / "best"), *load_split(test_dir, config.eval_limit),
                                flip=config.flip)
        (run / "test.json").write_text(json.dumps(best["test"], indent=2) + "\n")
    print(f"parser: best on val at step {best['step']} (pixel accuracy {best['pixel_accuracy']:.3f})"
          + (f"; test pixel accuracy {best['test']['pixel_accuracy']:.3f}, mean IoU {best['test']['mean_iou']:.3f}"
             if "test" in best else ""))
    if export:
        Path(export).mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "model.safetensors"):
            shutil.copy(run / "best" / name, Path(export) / name)
    return best


if __name__ == "__main__":
    main()
