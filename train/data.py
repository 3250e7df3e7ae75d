"""Paired images for training: finding them, checking them, and the paper's paired jitter.

Two layouts: the pix2pix one (``DIR/train/*.jpg`` with A on the left half and B on the right; facades:
photo | labels) or two folders of separate A and B files paired by name. Every file is decoded once up
front: an unreadable one is skipped with a warning naming it, a wrong layout or an empty folder stops
before training starts.
"""

from __future__ import annotations

import os
import re
import signal
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from pix2pix import load_image, snap_to_palette
from pix2pix.images import image_to_tensor, uint8_to_tensor

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
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                  key=natural_key)


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


@dataclass
class Splits:
    """A run's image pairs, each split listed and checked once: the training pairs, the fixed pairs of the sample
    grids (from val, else train) and the final evaluation's (from ``eval_split``: test, else val, else none)."""

    desc: str  # where they came from
    train: list[Pair]
    skipped: list[str]  # the unreadable training files' messages
    sample_split: str
    samples: list[Pair]
    eval_split: str | None
    eval: list[Pair]  # empty when the run does not evaluate


def load_splits(desc: str, folders: dict[str, tuple], limit: int | None = None, num_samples: int = 4,
                eval_limit: int | None = None, evaluate: bool = True) -> Splits:
    """List and check the splits a run reads. ``folders``: per split name, the arguments of ``find_pairs``
    (train required, val and test optional). Only as many val/test files are checked as the samples and the
    evaluation take (``num_samples``, ``eval_limit``); a bad layout stops here, before training."""
    sample_split = "val" if "val" in folders else "train"
    eval_split = "test" if "test" in folders else "val" if "val" in folders else None
    wanted: dict[str, int | None] = {}  # how far val/test are read (as find_pairs' limit: 0 or None is all)
    if sample_split == "val":
        wanted["val"] = num_samples
    if evaluate and eval_split:
        wanted[eval_split] = eval_limit and max(eval_limit, wanted.get(eval_split) or 0)
    train, skipped = check_pairs(find_pairs(*folders["train"], limit=limit))
    checked = {"train": train, **{s: check_pairs(find_pairs(*folders[s], limit=n))[0] for s, n in wanted.items()}}
    first = lambda pairs, n: pairs[:n] if n else pairs  # noqa: E731  (find_pairs' meaning of a limit)
    return Splits(desc, train, skipped, sample_split, first(checked[sample_split], num_samples), eval_split,
                  first(checked[eval_split], eval_limit) if evaluate and eval_split else [])


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

    def resized(self, i: int, size: int) -> tuple[Image.Image, Image.Image]:
        """(input, target) resized to ``size`` x ``size``: label maps (the input when snapping) with NEAREST
        so they stay in the palette, photos with BICUBIC."""
        source, target = self.load(i)
        src_mode = InterpolationMode.NEAREST if self.snap_labels else InterpolationMode.BICUBIC
        return (TF.resize(source, [size, size], interpolation=src_mode),
                TF.resize(target, [size, size], interpolation=InterpolationMode.BICUBIC))

    def jitter(self, epoch: int, i: int) -> tuple[int, int, bool]:
        """(top, left, flip) of image ``i``'s random crop in ``epoch``: the same on every run, worker and resume."""
        g = torch.Generator().manual_seed(seed_for(self.seed, epoch, i))
        top, left = torch.randint(0, self.load_size - self.image_size + 1, (2,), generator=g).tolist()
        return top, left, self.flip and torch.rand((), generator=g).item() < 0.5

    def __getitem__(self, key):
        epoch, i, jitter = (*key, True) if isinstance(key, tuple) else (0, key, False)
        source, target = self.resized(i, self.load_size if jitter else self.image_size)
        if jitter:
            top, left, flip = self.jitter(epoch, i)
            source, target = (TF.crop(im, top, left, self.image_size, self.image_size) for im in (source, target))
            if flip:
                source, target = TF.horizontal_flip(source), TF.horizontal_flip(target)
        return image_to_tensor(source), image_to_tensor(target)


class InMemoryPairs:
    """The training set decoded and resized to ``load_size`` once, held as uint8 tensors.

    ``batch`` applies the same paired jitter as ``PairedDataset[(epoch, i)]`` -- the same crop offsets and
    flips, from the same per-image generators -- with tensor slicing in the main process: no worker
    processes competing for the cores and no JPEG decoding per step, and the batches are identical.
    """

    def __init__(self, dataset: PairedDataset, progress: bool = False):
        from tqdm import tqdm

        self.dataset = dataset
        size = dataset.load_size
        n = len(dataset)
        self.inputs = torch.empty(n, 3, size, size, dtype=torch.uint8)
        self.targets = torch.empty_like(self.inputs)
        for i in tqdm(range(n), desc="decoding into memory", disable=not progress, leave=False):
            source, target = dataset.resized(i, size)
            self.inputs[i] = TF.pil_to_tensor(source.convert("RGB"))
            self.targets[i] = TF.pil_to_tensor(target.convert("RGB"))

    @staticmethod
    def nbytes(num_pairs: int, load_size: int) -> int:
        return num_pairs * 2 * 3 * load_size * load_size

    def batch(self, keys: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.dataset.image_size
        xs, ys = [], []
        for epoch, i in keys:
            top, left, flip = self.dataset.jitter(epoch, i)
            x = self.inputs[i, :, top:top + s, left:left + s]
            y = self.targets[i, :, top:top + s, left:left + s]
            if flip:
                x, y = x.flip(-1), y.flip(-1)
            xs.append(x)
            ys.append(y)
        return uint8_to_tensor(torch.stack(xs)), uint8_to_tensor(torch.stack(ys))

    def batches(self, sampler: EpochSampler, batch_size: int):
        """The epoch's batches in the sampler's order (after its ``skip``), like a ``DataLoader`` would."""
        keys = list(sampler)
        for start in range(0, len(keys), batch_size):
            yield self.batch(keys[start:start + batch_size])


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


def fits_in_memory(num_pairs: int, load_size: int) -> bool:
    """Whether the decoded training set takes under min(4 GiB, a quarter of this machine's RAM)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 * 2**30
    return InMemoryPairs.nbytes(num_pairs, load_size) <= min(4 * 2**30, ram // 4)


def _ignore_sigint(_worker_id: int) -> None:
    # Workers leave Ctrl-C to the main process, which saves and then shuts them down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_batches(dataset: PairedDataset, sampler: EpochSampler, batch_size: int, mode: str = "auto",
                 num_workers: int = 0, pin_memory: bool = False, seed: int = 0,
                 progress: bool = False) -> tuple[Callable[[], Iterable], str]:
    """A function that returns one epoch's ``(input, target)`` batches, and a description of the source.

    ``mode`` 'on' holds the set in memory (``InMemoryPairs``), 'off' streams it through a ``DataLoader``
    (for sets larger than memory), 'auto' picks memory when ``fits_in_memory``. Both give the same batches.
    """
    if mode == "on" or (mode == "auto" and fits_in_memory(len(dataset), dataset.load_size)):
        memory = InMemoryPairs(dataset, progress=progress)
        mb = InMemoryPairs.nbytes(len(dataset), dataset.load_size) / 2**20
        return (lambda: memory.batches(sampler, batch_size)), f"in memory ({mb:.1f} MiB of uint8)"
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                        pin_memory=pin_memory, persistent_workers=num_workers > 0, drop_last=False,
                        worker_init_fn=_ignore_sigint, generator=torch.Generator().manual_seed(seed))
    return (lambda: loader), f"streamed from disk ({num_workers} loader workers)"
