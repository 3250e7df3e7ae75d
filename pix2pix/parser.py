"""Reading a photo of a facade into a label map: the facade parser (photo -> the 12 CMP classes).

The generator draws photos from label maps; this goes the other way, so that a person with a photo of a real
building can start from it: its windows, doors and shop fronts as a map they can repaint. The network is a
small U-Net trained from scratch on the 400 training photos (``python -m train.parser``; weights in
``assets/parser``); ``InceptionParserNet`` is the option with a pretrained encoder (``--arch inception``), which
read test lower (docs/results.md). ``rectangles`` turns its raw per-pixel classes into the map a person would
paint: every element (window, door, balcony, shop ...) an axis-aligned rectangle, the facade and the background
the fill. Against the true maps that scores a hair under the raw classes (docs/results.md), so the raw classes are the
default and rectangles the option (``as_rectangles=True``, ``--rectangles``).

Loading only loads: ``PhotoParser.load`` reads the weights and nothing else.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .assets import ASSETS_DIR
from .images import SIZE, ImageLike, image_to_tensor, load_image
from .palette import BACKGROUND, CLASS_NAMES, NUM_CLASSES, class_index, index_to_rgb

PARSER_DIR = ASSETS_DIR / "parser"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FACADE = class_index("facade")


# ----------------------------------------------------------------------------------------------- network
def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


def level_channels(width: int, levels: int, cap: int) -> list[int]:
    """Channels per level: ``width`` doubling, at most ``cap`` (the deep levels see 16x16 and 8x8 cells)."""
    return [min(width * 2**k, cap) for k in range(levels)]


class ParserNet(nn.Module):
    """A U-Net that works at half the photo's side: a strided stem (256 -> 128), ``levels`` levels down to
    4x4 (a whole floor in one cell: a window is told from a shop by what is around it), and the logits
    upsampled back (bilinear) to the photo's side. Half the side costs a quarter of the compute and loses
    little: the classes are rectangles several pixels wide. The channels are capped (``cap``) where the cells
    are few: the deep levels hold most of the weights and little of the compute. The shipped 6 levels capped at
    192 (4.7 M parameters, under 10 MB in float16) cost 1.1x the time of 5 capped at 128 (1.6 M) and, trained
    twice as long, read val 1.4 points better (docs/results.md)."""

    def __init__(self, width: int = 24, levels: int = 6, cap: int = 192):
        super().__init__()
        self.width, self.levels, self.cap = width, levels, cap
        chans = level_channels(width, levels, cap)
        self.stem = nn.Sequential(nn.Conv2d(3, chans[0], 4, 2, 1, bias=False), nn.BatchNorm2d(chans[0]),
                                  nn.ReLU(True))
        self.down = nn.ModuleList([_block(chans[0], chans[0])] + [_block(chans[k - 1], chans[k])
                                                                   for k in range(1, levels)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[k], chans[k - 1], 2, stride=2)
                                 for k in range(levels - 1, 0, -1)])
        self.merge = nn.ModuleList([_block(2 * chans[k - 1], chans[k - 1]) for k in range(levels - 1, 0, -1)])
        self.head = nn.Conv2d(chans[0], NUM_CLASSES, 1)

    def config(self) -> dict:
        return {"arch": "unet", "width": self.width, "levels": self.levels, "cap": self.cap, "size": SIZE}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) photos in [-1, 1] (H, W divisible by 2**levels) -> (N, 12, H, W) logits."""
        size = x.shape[-2:]
        x = self.stem(x)
        skips = []
        for k, block in enumerate(self.down):
            x = block(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return F.interpolate(self.head(x).float(), size=size, mode="bilinear", align_corners=False)


def _cbr(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class InceptionParserNet(nn.Module):
    """The first layers of Inception-v3 (torchvision's blocks, to ``Mixed_6b``: 768 channels at 1/18 of the
    side) as the encoder, a pyramid pooling of its last map (the whole facade's context, as PSPNet), and a light
    decoder merging back the maps at 1/8, 1/4 and 1/2 (the thin sills and cornices). The trainer starts the
    encoder from the TF-FID Inception's ImageNet weights (``train.parser --arch inception``): 400 photos are too
    few to learn what a window looks like from scratch, and that network is already on every machine that
    computes FID. Its ``BasicConv2d`` layers load that file's convolutions and batch norms one to one."""

    POOLS = (1, 2, 3, 6)

    def __init__(self, ppm: int = 64, c4: int = 128, c3: int = 96, c2: int = 64, c1: int = 32):
        super().__init__()
        from torchvision.models.inception import Inception3

        self.widths = {"ppm": ppm, "c4": c4, "c3": c3, "c2": c2, "c1": c1}
        inc = Inception3(aux_logits=False, init_weights=False)
        self.stem1 = nn.Sequential(inc.Conv2d_1a_3x3, inc.Conv2d_2a_3x3, inc.Conv2d_2b_3x3)  # 64 at 1/2
        self.stem2 = nn.Sequential(inc.maxpool1, inc.Conv2d_3b_1x1, inc.Conv2d_4a_3x3)  # 192 at 1/4
        self.mix5 = nn.Sequential(inc.maxpool2, inc.Mixed_5b, inc.Mixed_5c, inc.Mixed_5d)  # 288 at 1/8
        self.mix6 = nn.Sequential(inc.Mixed_6a, inc.Mixed_6b)  # 768 at 1/18
        self.ppm = nn.ModuleList([_cbr(768, ppm, 1) for _ in self.POOLS])
        self.reduce = _cbr(768, c4, 1)
        self.fuse4 = _cbr(c4 + ppm * len(self.POOLS), c4, 1)
        self.fuse3 = _cbr(c4 + 288, c3)
        self.fuse2 = _cbr(c3 + 192, c2)
        self.lat1 = _cbr(64, c1, 1)
        self.fuse1 = _cbr(c2 + c1, c1)
        self.head = nn.Conv2d(c1, NUM_CLASSES, 1)

    def encoder(self) -> list[nn.Module]:
        """The Inception layers, in the order of the TF-FID file's convolutions."""
        return [self.stem1, self.stem2, self.mix5, self.mix6]

    def config(self) -> dict:
        return {"arch": "inception", **self.widths, "size": SIZE}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) photos in [-1, 1] -> (N, 12, H, W) logits."""
        def up(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, size=like.shape[-2:], mode="bilinear", align_corners=False)

        f1 = self.stem1(x)
        f2 = self.stem2(f1)
        f3 = self.mix5(f2)
        f4 = self.mix6(f3)
        context = [up(m(F.adaptive_avg_pool2d(f4, p)), f4) for m, p in zip(self.ppm, self.POOLS, strict=True)]
        y = self.fuse4(torch.cat([self.reduce(f4), *context], 1))
        y = self.fuse3(torch.cat([up(y, f3), f3], 1))
        y = self.fuse2(torch.cat([up(y, f2), f2], 1))
        y = self.fuse1(torch.cat([up(y, f1), self.lat1(f1)], 1))
        return F.interpolate(self.head(y).float(), size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_parser_net(config: dict) -> nn.Module:
    """The network a parser folder's ``config.json`` describes (``arch``: ``unet``, the default, or
    ``inception``), with fresh weights."""
    arch = config.get("arch", "unet")
    if arch == "unet":
        return ParserNet(config["width"], config["levels"], config["cap"])
    if arch == "inception":
        return InceptionParserNet(**{k: config[k] for k in ("ppm", "c4", "c3", "c2", "c1") if k in config})
    raise ValueError(f"unknown parser architecture {arch!r}: unet or inception (a folder from a newer version?)")


def save_parser(net: nn.Module, folder: Path, info: dict | None = None) -> Path:
    """``model.safetensors`` (float16: half the size; read back as float32) and ``config.json``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_NAME))
    (folder / CONFIG_NAME).write_text(json.dumps({**net.config(), **(info or {})}, indent=2) + "\n")
    return folder


def _read_config(folder: Path) -> dict:
    """A parser folder's ``config.json``; a ``FileNotFoundError`` naming what is missing."""
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"no facade parser in {folder} ({name} is missing): train one with "
                                    f"python -m train.parser --data <facades>")
    return json.loads((folder / CONFIG_NAME).read_text())


def _load_net(folder: Path, config: dict) -> nn.Module:
    from safetensors.torch import load_file

    net = build_parser_net(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(folder / WEIGHTS_NAME)).items()}
    net.load_state_dict(state)
    return net.eval()


def load_parser_net(folder: Path | str = PARSER_DIR) -> nn.Module:
    """The network saved in ``folder`` (float32, eval mode); a ``FileNotFoundError`` naming what is missing."""
    return _load_net(Path(folder), _read_config(Path(folder)))


#: Whether a photo is also read mirrored and the two readings' probabilities averaged (a facade's classes do not
#: change in a mirror), for a parser folder whose ``config.json`` does not say (``"flip"``, written by the
#: trainer's ``--flip/--no-flip``). The mirror adds 0.6 to 0.7 points of pixel accuracy (docs/results.md) for a
#: second forward: worth it where two forwards stay inside a parse's budget of two facades' ``generate()``.
FLIP = True


@torch.no_grad()
def classify(net: nn.Module, photos: torch.Tensor, flip: bool = FLIP) -> torch.Tensor:
    """(N, 3, H, W) photos in [-1, 1] -> (N, H, W) uint8 classes: the argmax of the network's probabilities, with
    ``flip`` averaged with those of the mirrored photos (one batch of 2N)."""
    if not flip:
        return net(photos).argmax(1).to(torch.uint8)
    n = photos.shape[0]
    probs = net(torch.cat([photos, photos.flip(-1)])).float().softmax(1)
    return (probs[:n] + probs[n:].flip(-1)).argmax(1).to(torch.uint8)


# ----------------------------------------------------------------------------------------------- rectangles
#: The classes a person paints as rectangles on the fill (every class but the background and the facade).
ELEMENTS: tuple[int, ...] = tuple(k for k, name in enumerate(CLASS_NAMES) if name not in ("background", "facade"))
#: A part smaller than this many pixels (of 256x256) is a speck: it is dropped (the fill takes its place).
MIN_AREA = 12
#: A part's rectangle keeps the rows and columns of its bounding box with at least this share of the pixels of
#: its fullest row (column): chosen on val (docs/results.md), against the whole bounding box (0).
TRIM = 0.35
#: Whether a photo is read into rectangles by default, or into the parser's raw classes. Chosen on val by pixel
#: accuracy and mean IoU against the true maps: the raw classes scored higher on both, by a hair (0.679 / 0.390
#: against 0.676 / 0.387; docs/results.md), so they are the default and rectangles the option.
AS_RECTANGLES = False


def _runs(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of one class along the rows of ``classes``: where each starts (flat index) and each pixel's run."""
    change = np.ones(classes.shape, bool)
    change[:, 1:] = classes[:, 1:] != classes[:, :-1]
    flat = change.ravel()
    return np.flatnonzero(flat), np.cumsum(flat) - 1


def components(classes: np.ndarray) -> np.ndarray:
    """(H, W) class map -> (H, W) int64 ids of its 4-connected parts of one class (each part's id is the flat
    index of one of its pixels). Each pass gives every run of one class along a row, then along a column, the
    smallest id in it, then jumps each id to its id's id; a handful of numpy passes for a facade's map (its
    parts are nearly rectangles), no dependency beyond numpy."""
    h, w = classes.shape
    row_starts, row_run = _runs(classes)
    col_starts, col_run = _runs(np.ascontiguousarray(classes.T))
    label = np.arange(h * w, dtype=np.int64)
    while True:
        new = np.minimum.reduceat(label, row_starts)[row_run]
        new = np.minimum.reduceat(new.reshape(h, w).T.ravel(), col_starts)[col_run].reshape(w, h).T.ravel()
        for _ in range(3):  # pointer jumping: an id moves to its own pixel's id (the same part, no larger)
            new = new[new]
        if np.array_equal(new, label):
            return label.reshape(h, w)
        label = new


def _parts(classes: np.ndarray) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """The part ids (``components``) and (class, pixels, top, left, bottom, right, id) of every part (bottom and
    right inclusive)."""
    h, w = classes.shape
    parts = components(classes)
    ids, inverse, counts = np.unique(parts.ravel(), return_inverse=True, return_counts=True)
    rows, cols = np.divmod(np.arange(h * w), w)
    top = np.full(len(ids), h)
    left = np.full(len(ids), w)
    bottom = np.zeros(len(ids), np.int64)
    right = np.zeros(len(ids), np.int64)
    np.minimum.at(top, inverse, rows)
    np.minimum.at(left, inverse, cols)
    np.maximum.at(bottom, inverse, rows)
    np.maximum.at(right, inverse, cols)
    first = classes.ravel()[ids]
    return parts, [tuple(int(v) for v in t) for t in zip(first, counts, top, left, bottom, right, ids)]


def _core(mask: np.ndarray, trim: float) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a part's rectangle within its bounding box: the rows and columns holding at
    least ``trim`` of its fullest row's (column's) pixels, so that a stray arm of a few pixels does not stretch it."""
    rows, cols = mask.sum(1), mask.sum(0)
    ys, xs = np.flatnonzero(rows >= trim * rows.max()), np.flatnonzero(cols >= trim * cols.max())
    return int(ys[0]), int(xs[0]), int(ys[-1]), int(xs[-1])


def rectangles(classes: np.ndarray, min_area: int = MIN_AREA, trim: float = TRIM) -> np.ndarray:
    """The label map a person would paint from a parser's raw classes: the fill (background where the parser
    saw background, facade elsewhere; parts of either under ``min_area`` pixels go to the other), then every
    part of an element class of at least ``min_area`` pixels as one rectangle (its bounding box, less the rows
    and columns with under ``trim`` of its fullest one's pixels), the largest first, so that a sill or a small
    window on a shop front stays on top of it."""
    classes = np.asarray(classes)
    fill = np.where(classes == BACKGROUND, BACKGROUND, FACADE).astype(np.uint8)
    out = fill.copy()
    _, inverse, counts = np.unique(components(fill).ravel(), return_inverse=True, return_counts=True)
    small = (counts < min_area)[inverse].reshape(fill.shape)
    out[small] = np.where(fill[small] == BACKGROUND, FACADE, BACKGROUND)
    parts, found = _parts(classes)
    boxes = []
    for cls, count, top, left, bottom, right, part in found:
        if cls in ELEMENTS and count >= min_area:
            y0, x0, y1, x1 = _core(parts[top:bottom + 1, left:right + 1] == part, trim)
            boxes.append((cls, top + y0, left + x0, top + y1, left + x1))
    for cls, top, left, bottom, right in sorted(boxes, key=lambda b: -(b[3] - b[1] + 1) * (b[4] - b[2] + 1)):
        out[top:bottom + 1, left:right + 1] = cls
    return out


# ----------------------------------------------------------------------------------------------- the parser
@dataclass
class ParsedPhoto:
    """A photo read into a label map: the map (``SIZE`` x ``SIZE``, palette colours), the raw per-pixel classes
    it was made from, and the photo's own (width, height): a photo that was not square was squeezed to the
    square grid, as label maps are."""

    labels: Image.Image
    raw: np.ndarray
    size: tuple[int, int]

    @property
    def squeezed(self) -> bool:
        return self.size[0] != self.size[1]


class PhotoParser:
    """The facade parser: ``PhotoParser.load()`` (the bundled one, or a folder written by ``python -m
    train.parser``), then ``parse(photo)``. Thread-safe: the network is only read."""

    def __init__(self, net: nn.Module, flip: bool = FLIP):
        self.net, self.flip = net.eval(), flip

    @classmethod
    def load(cls, folder: str | Path = PARSER_DIR, flip: bool | None = None) -> PhotoParser:
        """The parser in ``folder``; ``flip`` None: as its ``config.json`` says (``FLIP`` where it says nothing)."""
        config = _read_config(Path(folder))
        return cls(_load_net(Path(folder), config), config.get("flip", FLIP) if flip is None else flip)

    @staticmethod
    def fit(photo: ImageLike) -> tuple[Image.Image, tuple[int, int]]:
        """Any photo (path, bytes, image, array; ``load_image``'s checks and messages) as RGB at ``SIZE`` x
        ``SIZE`` (squeezed if not square, as label maps are; an antialiased bicubic resize), and its size."""
        image = load_image(photo)
        if isinstance(image, np.ndarray):
            image = Image.fromarray(
                image if image.ndim == 3 and image.shape[2] != 1 else image.reshape(image.shape[:2]))
        size = image.size
        image = image.convert("RGB")
        return (image if image.size == (SIZE, SIZE) else image.resize((SIZE, SIZE), Image.BICUBIC)), size

    @torch.inference_mode()
    def classes(self, photo: Image.Image) -> np.ndarray:
        """An RGB ``SIZE`` x ``SIZE`` photo -> its raw (H, W) uint8 classes (``classify``)."""
        return classify(self.net, image_to_tensor(photo)[None], self.flip)[0].numpy()

    def parse(self, photo: ImageLike, as_rectangles: bool = AS_RECTANGLES) -> ParsedPhoto:
        """A photo read into a label map: the parser's raw classes, or with ``as_rectangles=True`` the elements as
        rectangles on the fill (``rectangles``). The default is the one that scored higher (``AS_RECTANGLES``)."""
        fitted, size = self.fit(photo)
        raw = self.classes(fitted)
        return ParsedPhoto(index_to_rgb(rectangles(raw) if as_rectangles else raw), raw, size)


@functools.lru_cache(maxsize=1)
def bundled_parser() -> PhotoParser:
    """The parser in ``assets/parser``, loaded once."""
    return PhotoParser.load(PARSER_DIR)


def parse_photo(photo: ImageLike, as_rectangles: bool = AS_RECTANGLES) -> Image.Image:
    """A photo of a facade (any size: squeezed to 256x256) read into an editable label map by the bundled parser.

    >>> from pix2pix import parse_photo
    >>> labels = parse_photo("building.jpg")      # a 256x256 label map; Pix2Pix.generate(labels) draws facades
    """
    return bundled_parser().parse(photo, as_rectangles).labels
