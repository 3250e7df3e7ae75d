"""``python -m train.sketches --weights W --out sketches.png``: the model on what people paint, not only on the
data set's maps.

The CMP maps are clean, axis-aligned rectangles. A person's canvas has wobbly brush edges, rectangles of
uneven size and spacing, strokes instead of boxes, uploads of odd sizes and JPEG-compressed maps. This builds
one of each from a seed (plus the data set's own example for comparison) and writes a grid: the label map as
the model sees it | four seeds. Look at it: every painted window, door, shop and balcony should be there,
where it was painted.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.utils import make_grid, save_image

from pix2pix import Pix2Pix, example_labels
from pix2pix.images import image_to_tensor, label_grid, to_unit
from pix2pix.layout import BALCONY, DOOR, FACADE, SHOP, WINDOW, random_layout_indices
from pix2pix.palette import PALETTE, index_to_rgb


def wobbly(seed: int, size: int = 256, amplitude: float = 4.0) -> Image.Image:
    """A random layout whose edges wander by a few pixels, as a hand with a brush draws them: the index map
    is resampled through a smooth random displacement field."""
    rng = np.random.default_rng(seed)
    index = random_layout_indices(seed, size)
    coarse = torch.from_numpy(rng.normal(0, amplitude, (1, 2, 9, 9))).float()
    field = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)[0].numpy()
    yy, xx = np.mgrid[0:size, 0:size]
    sy = np.clip(np.round(yy + field[0]), 0, size - 1).astype(int)
    sx = np.clip(np.round(xx + field[1]), 0, size - 1).astype(int)
    return index_to_rgb(index[sy, sx])


def uneven(seed: int, size: int = 256) -> Image.Image:
    """A facade painted box by box: windows of uneven size and spacing, a door and a shop, a balcony."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (size, size), tuple(PALETTE[FACADE]))
    draw = ImageDraw.Draw(im)
    for row, top in enumerate(range(20, 150, 42)):
        x = int(rng.integers(8, 24))
        while x < size - 30:
            w, h = int(rng.integers(16, 30)), int(rng.integers(20, 32))
            dy = int(rng.integers(-4, 5))
            draw.rectangle([x, top + dy, x + w, top + dy + h], fill=tuple(PALETTE[WINDOW]))
            if row == 1:
                draw.rectangle([x - 3, top + dy + h - 6, x + w + 3, top + dy + h + 2], fill=tuple(PALETTE[BALCONY]))
            x += w + int(rng.integers(12, 34))
    draw.rectangle([20, 190, 110, 250], fill=tuple(PALETTE[SHOP]))
    draw.rectangle([150, 180, 185, 255], fill=tuple(PALETTE[DOOR]))
    return im


def strokes(seed: int, size: int = 256) -> Image.Image:
    """Windows as round-ended brush strokes (the canvas's brush), not boxes."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (size, size), tuple(PALETTE[FACADE]))
    draw = ImageDraw.Draw(im)
    for top in range(24, 200, 48):
        for left in range(18, size - 30, 46):
            x0, y0 = left + int(rng.integers(-4, 5)), top + int(rng.integers(-4, 5))
            x1, y1 = x0 + int(rng.integers(-3, 4)), y0 + int(rng.integers(18, 30))
            draw.line([(x0 + 10, y0), (x1 + 10, y1)], fill=tuple(PALETTE[WINDOW]), width=int(rng.integers(14, 22)),
                      joint="curve")
    draw.line([(128, 205), (130, 255)], fill=tuple(PALETTE[DOOR]), width=26)
    return im


def odd_size(label: Path) -> Image.Image:
    """An upload of another shape: the example stretched to 300x420 (the model stretches it back)."""
    return Image.open(label).convert("RGB").resize((300, 420), Image.NEAREST)


def jpeg(label: Path, quality: int = 40) -> bytes:
    """The example saved as a low-quality JPEG: ringing and colour bleeding at every edge."""
    buf = io.BytesIO()
    Image.open(label).convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def sketches(seed: int = 0) -> dict[str, object]:
    example = example_labels()[0]
    return {"data set example": example, "wobbly edges": wobbly(seed), "uneven boxes": uneven(seed),
            "brush strokes": strokes(seed), "odd size (300x420)": odd_size(example), "JPEG q40": jpeg(example)}


def sketch_grid(model: Pix2Pix, out: Path, seed: int = 0, facade_seeds: Sequence[int] = (0, 1, 2, 3)) -> list[str]:
    """One sketch a row: the 256x256 label grid the model sees | a facade for each of ``facade_seeds`` (pick seeds
    such as 6 and 7 to see whether a seed follows what is painted). Returns the row names."""
    tiles, names = [], []
    for name, source in sketches(seed).items():
        grid, _ = label_grid(source)
        fakes = model.generate_batch([source] * len(facade_seeds), facade_seeds)
        tiles += [to_unit(image_to_tensor(im)) for im in (grid, *fakes)]
        names.append(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid(torch.stack(tiles), nrow=len(facade_seeds) + 1, padding=4, pad_value=1.0), out)
    return names


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m train.sketches", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="weights to check (default: the bundled ones)")
    p.add_argument("--out", type=Path, default=Path("runs/sketches.png"), help="the grid to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sketches")
    p.add_argument("--facade-seeds", type=int, nargs="+", default=[0, 1, 2, 3], metavar="S",
                   help="the facade seeds of the columns")
    args = p.parse_args(argv)
    names = sketch_grid(Pix2Pix.load(args.weights, device="cpu"), args.out, args.seed, args.facade_seeds)
    print(f"wrote {args.out}: rows {', '.join(names)}; columns: the label map as the model sees it, seeds "
          f"{', '.join(map(str, args.facade_seeds))}")


if __name__ == "__main__":
    main()
