"""Layout fidelity: does every seed's facade follow the painted label map? (the pix2pix paper's FCN-score).

FID judges realism and seed diversity judges variety, but neither sees a seed that draws the same memorised
strip of balconies over whatever was painted. Here a small segmenter, trained on the real training photos
(photo -> the 12 CMP classes), reads each generated facade back into a label map, and its pixel accuracy
against the painted map is divided by its accuracy on the real photos of the same maps:

    fidelity(seed) = mean_maps acc(seg(G(map, seed)), map) / mean_maps acc(seg(photo), map)

1.0 means the facades of that seed follow the layout as well as real photos do (to this segmenter's eyes).
It is scored for seeds 0..31, each seed used for every map as a person who types it would, over the first 24
maps of the split; the report gives the median, the worst seed and the seeds under 0.90.

The whole-image score misses a seed that draws the same thing in one place on every map (a strip of balconies at
the right edge): a narrow band moves a whole-image accuracy by a few points. So each seed is also scored per
region: the facade is cut into a 4x4 grid, and a cell's accuracy over the maps is divided by the real photos'
accuracy in the same cell; the seed's *region fidelity* is its worst cell. A region that the seed fills with
the same memorised picture whatever is painted there scores far below the others (the bundled model's seeds 6
and 7: 0.52 and 0.62 at the right edge on test, where every other seed's worst cell is 0.77 or more). Over 24
maps a cell's ratio moves by about 0.05 from one set of maps to another, so the floor is 0.70, some four of those
below a cell at 0.90.

``python -m train.fidelity --data <facades>`` trains the segmenter (a few minutes on two cores) and caches it
under ``$PIX2PIX_CACHE/segmenter`` (default ``~/.cache/facade-pix2pix/segmenter``), never in git;
``python -m train.evaluate`` then reports fidelity beside FID.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

from pix2pix.export import cache_root
from pix2pix.images import image_to_tensor
from pix2pix.palette import NUM_CLASSES, PALETTE

#: The segmenter sees facades at this side (a window or a sill is still several pixels wide).
SEG_SIZE = 128
#: Seeds scored, each used for every map (people type, draw and vary to these).
FIDELITY_SEEDS = tuple(range(32))
#: Maps of the split scored (the first N).
FIDELITY_MAPS = 24
#: A seed under this share of the real photos' accuracy does not follow the layout well enough.
FIDELITY_FLOOR = 0.90
#: Regions: the facade (at ``SEG_SIZE``) is cut into this many rows and columns of cells.
REGION_GRID = 4
#: A seed whose worst cell is under this share of the real photos' accuracy there ignores that part of the map.
REGION_FLOOR = 0.70
WEIGHTS_FILE = "segmenter.safetensors"
CONFIG_FILE = "segmenter.json"


class SegmenterError(SystemExit):
    """No usable segmenter (printed without a traceback, with what to do)."""


# ----------------------------------------------------------------------------------------------- network
def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class Segmenter(nn.Module):
    """A small U-Net (4 levels, ``width`` channels at the top, doubling) from a photo in [-1, 1] to 12 class
    logits per pixel. Small on purpose: it only has to tell a window from a wall, and it is run on 768 facades
    per evaluation."""

    def __init__(self, width: int = 16, levels: int = 4):
        super().__init__()
        self.width, self.levels = width, levels
        chans = [width * 2**k for k in range(levels)]
        self.down = nn.ModuleList([_block(3, chans[0])] + [_block(chans[k - 1], chans[k]) for k in range(1, levels)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[k], chans[k - 1], 2, stride=2)
                                 for k in range(levels - 1, 0, -1)])
        self.merge = nn.ModuleList([_block(2 * chans[k - 1], chans[k - 1]) for k in range(levels - 1, 0, -1)])
        self.head = nn.Conv2d(chans[0], NUM_CLASSES, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, block in enumerate(self.down):
            x = block(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)


# ----------------------------------------------------------------------------------------------- labels
def to_classes(labels: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) label maps in [-1, 1] (palette colours) -> (N, H, W) class indices (nearest colour)."""
    rgb = (labels.float() + 1) * 127.5
    palette = torch.tensor(PALETTE.tolist(), dtype=torch.float32).view(1, NUM_CLASSES, 3, 1, 1)
    return (rgb.unsqueeze(1) - palette).pow(2).sum(2).argmin(1)


def seg_input(images: torch.Tensor) -> torch.Tensor:
    """Photos in [-1, 1] at any size -> the segmenter's input size (area downscale: no aliasing)."""
    images = images.float()
    if images.shape[-1] == SEG_SIZE and images.shape[-2] == SEG_SIZE:
        return images
    return F.interpolate(images, size=(SEG_SIZE, SEG_SIZE), mode="area")


def seg_target(labels: torch.Tensor) -> torch.Tensor:
    """Label maps in [-1, 1] at any size -> class indices at ``SEG_SIZE`` (nearest: classes stay classes)."""
    if labels.shape[-1] != SEG_SIZE or labels.shape[-2] != SEG_SIZE:
        labels = F.interpolate(labels.float(), size=(SEG_SIZE, SEG_SIZE), mode="nearest")
    return to_classes(labels)


@torch.no_grad()
def correct_pixels(segmenter: nn.Module, photos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N, SEG_SIZE, SEG_SIZE) bool: where the segmented class is the painted one."""
    return segmenter(seg_input(photos)).argmax(1) == seg_target(labels)


def pixel_accuracy(segmenter: nn.Module, photos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-image share of pixels whose segmented class is the painted one."""
    return correct_pixels(segmenter, photos, labels).float().flatten(1).mean(1)


def cell_hits(correct: torch.Tensor, grid: int = REGION_GRID) -> torch.Tensor:
    """(N, H, W) bool -> (grid, grid): the correct pixels in each cell, summed over the images (H, W divisible
    by ``grid``, so every cell has as many pixels and the cells' mean is the whole image's)."""
    n, h, w = correct.shape
    return correct.float().view(n, grid, h // grid, grid, w // grid).sum((0, 2, 4))


# ----------------------------------------------------------------------------------------------- scoring
@torch.no_grad()
def layout_fidelity(model, segmenter: nn.Module, inputs: Sequence[torch.Tensor], reals: Sequence[torch.Tensor],
                    seeds: Sequence[int] = FIDELITY_SEEDS, batch_size: int = 8, bar=None) -> dict:
    """Fidelity of each seed over ``inputs`` (label maps in [-1, 1]) against the real photos ``reals``.

    ``model``: anything with ``generate_batch(inputs, seeds) -> PIL images`` (``pix2pix.Pix2Pix``). Returns
    ``fidelity`` (median over the seeds), ``fidelity_worst`` and ``fidelity_worst_seed``, ``fidelity_under``
    (the seeds under ``FIDELITY_FLOOR``), ``fidelity_seeds`` ({seed: score}) and ``fidelity_real_acc``; and per
    region (the worst of ``REGION_GRID`` x ``REGION_GRID`` cells, each relative to the real photos there):
    ``region_seeds`` ({seed: score}), ``region_cells`` ({seed: [row, column] of that cell}), ``region``
    (median), ``region_worst``, ``region_worst_seed``, ``region_worst_cell`` and ``region_under`` (the seeds
    under ``REGION_FLOOR``).
    """
    segmenter.eval()
    labels = torch.stack(list(inputs))
    real = cell_hits(correct_pixels(segmenter, torch.stack(list(reals)), labels))
    real_acc = real.sum().item() / (len(labels) * SEG_SIZE**2)
    if real_acc <= 0:
        raise SegmenterError("the segmenter gets no pixel of the real photos right: retrain it "
                             "(python -m train.fidelity --data <facades>)")
    whole, regions, cells = {}, {}, {}
    for seed in seeds:
        hits = torch.zeros_like(real)
        for start in range(0, len(inputs), batch_size):
            chunk = list(inputs[start:start + batch_size])
            fakes = torch.stack([image_to_tensor(f) for f in model.generate_batch(chunk, [seed] * len(chunk))])
            hits += cell_hits(correct_pixels(segmenter, fakes, labels[start:start + len(chunk)]))
            if bar is not None:
                bar.update(len(chunk))
        ratio = torch.where(real > 0, hits / real, torch.inf)  # a cell no real photo gets right judges nothing
        whole[seed] = (hits.sum() / real.sum()).item()
        regions[seed] = ratio.min().item()
        cells[seed] = divmod(int(ratio.argmin()), REGION_GRID)
    return {**_summary("fidelity", whole, FIDELITY_FLOOR), "fidelity_real_acc": real_acc,
            "fidelity_maps": len(inputs), **_summary("region", regions, REGION_FLOOR),
            "region_cells": {s: list(c) for s, c in cells.items()},
            "region_worst_cell": list(cells[min(regions, key=regions.get)])}


def _summary(key: str, scores: dict, floor: float) -> dict:
    worst = min(scores, key=scores.get)
    return {key: statistics.median(scores.values()), f"{key}_worst": scores[worst], f"{key}_worst_seed": worst,
            f"{key}_under": [s for s, v in scores.items() if v < floor], f"{key}_seeds": scores}


def _under(result: dict, key: str, floor: float) -> str:
    under = result[f"{key}_under"]
    return (f"{len(under)} of {len(result[f'{key}_seeds'])} seeds under {floor:.2f}"
            + (f" ({', '.join(map(str, under))})" if under else ""))


def fidelity_line(result: dict) -> str:
    """``fidelity median 0.94, worst seed 7 (0.77), 10 of 32 seeds under 0.90 ...``: the line the CLI prints."""
    return (f"fidelity median {result['fidelity']:.3f}, worst seed {result['fidelity_worst_seed']} "
            f"({result['fidelity_worst']:.3f}), {_under(result, 'fidelity', FIDELITY_FLOOR)}"
            f"  (segmenter accuracy on the real photos {result['fidelity_real_acc']:.3f}, "
            f"{result['fidelity_maps']} maps)")


def region_line(result: dict) -> str:
    """``region fidelity (worst of 4x4 cells) median 0.87, worst seed 6 (0.52, row 3 column 4), ...``."""
    row, col = result["region_worst_cell"]
    return (f"region fidelity (each seed's worst of {REGION_GRID}x{REGION_GRID} cells) median {result['region']:.3f}, "
            f"worst seed {result['region_worst_seed']} ({result['region_worst']:.3f}, row {row + 1} column "
            f"{col + 1}), {_under(result, 'region', REGION_FLOOR)}")


# ----------------------------------------------------------------------------------------------- cache
def default_dir() -> Path:
    """``$PIX2PIX_CACHE/segmenter`` or ``~/.cache/facade-pix2pix/segmenter``."""
    return cache_root() / "segmenter"


def save_segmenter(segmenter: Segmenter, folder: Path, info: dict) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(segmenter, str(folder / WEIGHTS_FILE))
    config = {"width": segmenter.width, "levels": segmenter.levels, "size": SEG_SIZE, **info}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def load_segmenter(folder: Path | None = None) -> Segmenter:
    """The cached segmenter, in eval mode; ``SegmenterError`` saying how to make one when it is missing or broken."""
    folder = Path(folder) if folder is not None else default_dir()
    how = f"train one with: python -m train.fidelity --data <facades> --out {folder}"
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
        raise SegmenterError(f"no layout segmenter in {folder}: {how}")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
        segmenter = Segmenter(config["width"], config["levels"])
        load_model(segmenter, str(folder / WEIGHTS_FILE))
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same advice
        raise SegmenterError(f"the layout segmenter in {folder} cannot be read ({e}): {how}") from None
    return segmenter.eval()



def find_segmenter(folder: Path | None = None) -> tuple[Segmenter | None, str | None]:
    """``load_segmenter``, or (None, why not) where there is none: the callers score fidelity when they can."""
    try:
        return load_segmenter(folder), None
    except SegmenterError as e:
        return None, str(e)

# ----------------------------------------------------------------------------------------------- training
def train_segmenter(pairs_in_memory, steps: int = 1500, batch_size: int = 8, width: int = 16, lr: float = 2e-3,
                    seed: int = 0, progress: bool = False) -> Segmenter:
    """Train on ``pairs_in_memory`` (``train.data.InMemoryPairs`` of (labels, photo) at ``SEG_SIZE`` with the
    paired jitter): cross-entropy, Adam with a cosine decay. Deterministic for a seed on one machine."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    net = Segmenter(width).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    n = len(pairs_in_memory.dataset)
    g = torch.Generator().manual_seed(seed)
    with tqdm(range(steps), desc="training the segmenter", unit="step", disable=not progress) as bar:
        for step in bar:
            keys = [(step, int(i)) for i in torch.randint(0, n, (batch_size,), generator=g)]
            labels, photos = pairs_in_memory.batch(keys)
            loss = F.cross_entropy(net(seg_input(photos)), seg_target(labels))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    return net.eval()


def split_accuracy(segmenter: nn.Module, dataset) -> float:
    """Mean pixel accuracy on a ``PairedDataset`` (plain resize) of (labels, photo)."""
    accs = []
    for start in range(0, len(dataset), 16):
        labels, photos = zip(*(dataset[i] for i in range(start, min(start + 16, len(dataset)))), strict=True)
        accs.append(pixel_accuracy(segmenter, torch.stack(photos), torch.stack(labels)))
    return torch.cat(accs).mean().item()


def main(argv: list[str] | None = None) -> Path:
    from .data import DataError, InMemoryPairs, PairedDataset, check_pairs, find_pairs, split_folder

    p = argparse.ArgumentParser(prog="python -m train.fidelity", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="facades folder with train/ (and val/, scored at the end)")
    p.add_argument("--out", default=str(default_dir()), help="where the segmenter is kept")
    p.add_argument("--steps", type=int, default=1500, help="training steps")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--width", type=int, default=16, help="channels of the first level (doubling per level)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training pairs (quick runs)")
    args = p.parse_args(argv)
    root = Path(args.data)
    train_dir = split_folder(root, "train") or root
    pairs, skipped = check_pairs(find_pairs(train_dir, limit=args.limit))
    if not pairs:
        raise DataError(f"{train_dir}: no readable image pairs (the pix2pix layout: photo | label map side by side)")
    started = time.monotonic()
    load = math.ceil(SEG_SIZE * 286 / 256)
    memory = InMemoryPairs(PairedDataset(pairs, SEG_SIZE, load, seed=args.seed), progress=True)
    net = train_segmenter(memory, args.steps, args.batch_size, args.width, seed=args.seed, progress=True)
    info = {"data": str(train_dir), "pairs": len(pairs), "steps": args.steps, "batch_size": args.batch_size,
            "seed": args.seed, "train_accuracy": split_accuracy(net, PairedDataset(pairs, SEG_SIZE, SEG_SIZE)),
            "minutes": round((time.monotonic() - started) / 60, 1)}
    val_dir = split_folder(root, "val")
    if val_dir is not None:
        val_pairs, _ = check_pairs(find_pairs(val_dir))
        info["val_accuracy"] = split_accuracy(net, PairedDataset(val_pairs, SEG_SIZE, SEG_SIZE))
    out = save_segmenter(net, Path(args.out), info)
    print(f"segmenter: {len(pairs)} pairs{f' ({len(skipped)} unreadable skipped)' if skipped else ''}, "
          f"{args.steps} steps in {info['minutes']} min; pixel accuracy on the real photos: train "
          f"{info['train_accuracy']:.3f}" + (f", val {info['val_accuracy']:.3f}" if "val_accuracy" in info else "")
          + f"; saved to {out}")
    return out


if __name__ == "__main__":
    main()
