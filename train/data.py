"""Paired images for training: finding them, checking them, and the paper's paired jitter.

Two layouts: the pix2pix one (``DIR/train/*.jpg`` with A on the left half and B on the right; facades:
photo | labels) or two folders of separate A and B files paired by name. Every file is decoded once up
front: an unreadable one is skipped with a warning naming it, a wrong layout or an empty folder stops
before training starts.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from pix2pix import load_image, snap_to_palette
from pix2pix.images import image_to_tensor

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class DataError(SystemExit):
    """A data problem that must stop the run before training (printed without a traceback)."""

    def __init__(self, message: str):
        super().__init__(f"error: {message}")


@dataclass(frozen=True)
class Pair:
    """Either one side-by-side file (``ab``) or two files (``a``, ``b``)."""

    ab: Path | None = None
    a: Path | None = None
    b: Path | None = None

    @property
    def name(self) -> str:
        return str(self.ab or self.b)


def natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()), key=natural_key)


def split_folder(root: Path, split: str) -> Path | None:
    """``root/split`` if it exists; for ``train`` also ``root`` itself when it holds the images directly."""
    if (root / split).is_dir():
        return root / split
    if split == "train" and root.is_dir() and list_images(root):
        return root
    return None


def find_pairs(folder: Path | None = None, a: Path | None = None, b: Path | None = None,
               limit: int | None = None) -> list[Pair]:
    if folder is not None:
        pairs = [Pair(ab=p) for p in list_images(folder)]
        where = str(folder)
    else:
        b_files = {p.stem: p for p in list_images(b)}
        a_files = list_images(a)
        pairs = [Pair(a=p, b=b_files[p.stem]) for p in a_files if p.stem in b_files]
        where = f"{a} + {b}"
        unmatched = len(a_files) - len(pairs) + len(b_files) - len(pairs)
        if unmatched:
            warnings.warn(f"{unmatched} files in {a} / {b} have no partner of the same name and are ignored",
                          stacklevel=2)
    if not pairs:
        raise DataError(f"{where}: no images found ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return pairs[:limit] if limit else pairs


def check_pairs(pairs: list[Pair]) -> tuple[list[Pair], list[str]]:
    """Decode every file: skip (with a warning) the unreadable ones, stop on a wrong layout.

    Returns the good pairs and the skipped files' messages.
    """
    good, skipped = [], []
    for pair in pairs:
        try:
            if pair.ab is not None:
                w, h = load_image(pair.ab).size
                if w != 2 * h:
                    raise DataError(
                        f"{pair.ab}: {w}x{h} pixels is not two side-by-side square halves (width = 2 x height, "
                        "e.g. 512x256: A on the left, B on the right). For separate A and B files use "
                        "--data-a DIR --data-b DIR.")
            else:
                load_image(pair.a)
                load_image(pair.b)
        except (ValueError, OSError) as e:
            message = str(e).splitlines()[0]
            warnings.warn(f"skipping unreadable image: {message}", stacklevel=2)
            skipped.append(message)
            continue
        good.append(pair)
    if not good:
        raise DataError(f"none of the {len(pairs)} images could be read")
    return good, skipped


def seed_for(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch) * 1_000_003 + index & 0x7FFF_FFFF_FFFF_FFFF


class PairedDataset(Dataset):
    """Yields ``(input, target)`` in [-1, 1], input = B for ``BtoA`` (facades: labels -> photo).

    Index with ``(epoch, i)`` for the paper's jitter (resize to ``load_size`` -- bicubic for the photo,
    nearest for a label map -- then the same random crop and flip for both), drawn from a generator
    seeded by (seed, epoch, i): the same on every run, worker and resume. Index with ``i`` for the
    plain resize used by samples and evaluation.
    """

    def __init__(self, pairs: list[Pair], image_size: int, load_size: int, direction: str = "BtoA",
                 snap_labels: bool = True, flip: bool = True, seed: int = 0):
        self.pairs, self.image_size, self.load_size = pairs, image_size, load_size
        self.direction, self.snap_labels, self.flip, self.seed = direction, snap_labels, flip, seed

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, i: int) -> tuple[Image.Image, Image.Image]:
        """(input, target) PIL images, the input snapped to the palette when asked."""
        pair = self.pairs[i]
        if pair.ab is not None:
            ab = load_image(pair.ab).convert("RGB")
            w, h = ab.size
            a, b = ab.crop((0, 0, w // 2, h)), ab.crop((w // 2, 0, w, h))
        else:
            a, b = load_image(pair.a).convert("RGB"), load_image(pair.b).convert("RGB")
        source, target = (b, a) if self.direction == "BtoA" else (a, b)
        if self.snap_labels:
            source = snap_to_palette(source)
        return source, target

    def __getitem__(self, key):
        epoch, i, jitter = (*key, True) if isinstance(key, tuple) else (0, key, False)
        source, target = self.load(i)
        size = self.load_size if jitter else self.image_size
        # Label maps (the input when snapping) resize with NEAREST so they stay in the palette.
        src_mode = InterpolationMode.NEAREST if self.snap_labels else InterpolationMode.BICUBIC
        source = TF.resize(source, [size, size], interpolation=src_mode)
        target = TF.resize(target, [size, size], interpolation=InterpolationMode.BICUBIC)
        if jitter:
            g = torch.Generator().manual_seed(seed_for(self.seed, epoch, i))
            top, left = torch.randint(0, size - self.image_size + 1, (2,), generator=g).tolist()
            flip = self.flip and torch.rand((), generator=g).item() < 0.5
            source, target = (TF.crop(im, top, left, self.image_size, self.image_size) for im in (source, target))
            if flip:
                source, target = TF.horizontal_flip(source), TF.horizontal_flip(target)
        return image_to_tensor(source), image_to_tensor(target)


class EpochSampler(DistributedSampler):
    """A ``DistributedSampler`` (shuffled by seed + epoch, sharded by rank) that yields ``(epoch, index)``
    keys for the jitter and can skip the steps already done when resuming mid-epoch."""

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.skip = 0

    def __iter__(self):
        indices = list(super().__iter__())[self.skip:]
        return iter([(self.epoch, i) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.skip
