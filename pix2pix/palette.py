"""The 12 CMP facade classes and their colours: the only place the palette is defined.

The pix2pix facades release draws label maps with a jet colour ramp. Real label maps are JPEGs, so their
colour edges are blurred and every pixel has to be snapped to the nearest palette colour before use.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# (class name, RGB) in CMP's own class order; class index i (0-based) is CMP class i + 1.
CLASSES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("background", (0, 0, 223)),
    ("facade", (0, 48, 255)),
    ("window", (0, 128, 255)),
    ("door", (0, 208, 255)),
    ("cornice", (32, 255, 224)),
    ("sill", (112, 255, 144)),
    ("balcony", (192, 255, 64)),
    ("blind", (255, 240, 0)),
    ("deco", (255, 160, 0)),
    ("molding", (255, 80, 0)),
    ("pillar", (255, 0, 0)),
    ("shop", (176, 0, 0)),
)

CLASS_NAMES: tuple[str, ...] = tuple(name for name, _ in CLASSES)
PALETTE: np.ndarray = np.array([rgb for _, rgb in CLASSES], dtype=np.uint8)  # (12, 3)
PALETTE.setflags(write=False)
NUM_CLASSES = len(CLASSES)
BACKGROUND = CLASS_NAMES.index("background")


def class_index(name: str) -> int:
    """0-based index of a class by name (e.g. ``class_index("window") == 2``)."""
    try:
        return CLASS_NAMES.index(name)
    except ValueError:
        raise ValueError(f"unknown class {name!r}; the classes are: {', '.join(CLASS_NAMES)}") from None


def hex_colors() -> list[str]:
    """Palette colours as ``#rrggbb`` strings, in class order (for UI colour pickers)."""
    return ["#%02x%02x%02x" % tuple(int(c) for c in rgb) for rgb in PALETTE]


def index_to_rgb(index_map: np.ndarray) -> Image.Image:
    """Render an (H, W) array of 0-based class indices as an RGB label image."""
    index_map = np.asarray(index_map)
    if index_map.ndim != 2:
        raise ValueError(f"expected an (H, W) class-index map, got shape {index_map.shape}")
    if index_map.size and (index_map.min() < 0 or index_map.max() >= NUM_CLASSES):
        raise ValueError(f"class indices must lie in 0..{NUM_CLASSES - 1}")
    return Image.fromarray(PALETTE[index_map.astype(np.intp)], mode="RGB")


def _to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any PIL image or array to (H, W, 3) uint8, with fully transparent pixels set to background."""
    if isinstance(image, np.ndarray):
        array = image
        if array.dtype != np.uint8:
            if np.issubdtype(array.dtype, np.floating) and array.size and array.max() <= 1.0:
                array = array * 255.0
            array = np.clip(array, 0, 255).astype(np.uint8)
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
            raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {array.shape}")
        if array.shape[2] == 1:
            array = np.repeat(array, 3, axis=2)
        if array.shape[2] == 4:
            rgb, alpha = array[:, :, :3].copy(), array[:, :, 3]
            rgb[alpha == 0] = PALETTE[BACKGROUND]
            return rgb
        return array
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image or numpy array, got {type(image).__name__}")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return _to_rgb_array(np.asarray(image.convert("RGBA")))
    return np.asarray(image.convert("RGB"))


def rgb_to_index(image: Image.Image | np.ndarray) -> np.ndarray:
    """Nearest palette class for every pixel: an (H, W) uint8 array of 0-based class indices.

    Nearest in plain RGB distance, which is what undoes JPEG noise: palette colours are at least
    ~50 apart while JPEG moves flat areas by a few units.
    """
    rgb = _to_rgb_array(image).astype(np.int32)
    # Squared distance to each of the 12 colours, computed per colour to keep memory at O(H*W).
    best = np.zeros(rgb.shape[:2], dtype=np.uint8)
    best_dist = np.full(rgb.shape[:2], np.iinfo(np.int32).max, dtype=np.int32)
    for index, colour in enumerate(PALETTE.astype(np.int32)):
        dist = ((rgb - colour) ** 2).sum(axis=2)
        closer = dist < best_dist
        best[closer] = index
        best_dist[closer] = dist[closer]
    return best


def snap_to_palette(image: Image.Image | np.ndarray) -> Image.Image:
    """Map every pixel of any RGB/RGBA/L/P image (or array) to its nearest palette colour."""
    return index_to_rgb(rgb_to_index(image))
