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
    return ["#" + "".join(f"{int(c):02x}" for c in rgb) for rgb in PALETTE]


def index_to_rgb(index_map: np.ndarray) -> Image.Image:
    """Render an (H, W) array of 0-based class indices as an RGB label image."""
    index_map = np.asarray(index_map)
    if index_map.ndim != 2:
        raise ValueError(f"expected an (H, W) class-index map, got shape {index_map.shape}")
    if index_map.size and (index_map.min() < 0 or index_map.max() >= NUM_CLASSES):
        raise ValueError(f"class indices must lie in 0..{NUM_CLASSES - 1}")
    return Image.fromarray(PALETTE[index_map.astype(np.intp)], mode="RGB")


def to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """An 8-bit PIL image or uint8 array as (H, W, 3) uint8, with fully transparent pixels set to background.

    This module sits below ``pix2pix.images`` (which imports it, never the reverse): it takes 8-bit
    pixels only. ``pix2pix.images.load_image`` turns any file, 16-bit or float image into those first.
    """
    if isinstance(image, np.ndarray):
        array = np.asarray(image)
        if array.dtype == np.bool_:
            array = array.astype(np.uint8) * 255
        if array.dtype != np.uint8:
            raise ValueError(f"expected 8-bit pixels (uint8), got {array.dtype}: pix2pix.images.load_image "
                             "scales 16-bit and float images to 8 bits")
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
            raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {image.shape}")
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
        return to_rgb_array(np.asarray(image.convert("RGBA")))
    return np.asarray(image.convert("RGB"))


def _keys(rgb: np.ndarray) -> np.ndarray:
    """One uint32 per colour: 0xRRGGBB."""
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


_PALETTE_KEYS = _keys(PALETTE)
_KEY_ORDER = np.argsort(_PALETTE_KEYS)
_SORTED_KEYS = _PALETTE_KEYS[_KEY_ORDER]


def nearest_class(rgb: np.ndarray) -> np.ndarray:
    """Nearest palette class of each row of an (N, 3) array, by squared RGB distance (ties: lower index)."""
    return _nearest(rgb)[0]


def _nearest(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nearest class, squared distance to it) of each row of an (N, 3) array."""
    diff = rgb.astype(np.int32)[:, None, :] - PALETTE.astype(np.int32)[None, :, :]
    dist = (diff * diff).sum(axis=2)
    index = dist.argmin(axis=1)
    return index.astype(np.uint8), np.take_along_axis(dist, index[:, None], axis=1)[:, 0]


def match_palette(image: Image.Image | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest palette class of every pixel, and how far it is: two (H, W) arrays, the class indices
    (uint8) and the squared RGB distance to that class's colour (int32; 0 for an exact palette colour).

    The distance is what tells a label map from a photo (``pix2pix.images.check_label_map``); computing
    both at once costs no more than the classes alone. Pixels that are exactly a palette colour (all of
    a painted map) are looked up; only the others are measured, once per distinct colour.
    """
    rgb = to_rgb_array(image)
    keys = _keys(rgb)
    pos = np.minimum(np.searchsorted(_SORTED_KEYS, keys), len(_SORTED_KEYS) - 1)
    exact = _SORTED_KEYS[pos] == keys
    index = _KEY_ORDER[pos].astype(np.uint8)
    distance = np.zeros(keys.shape, np.int32)
    if not exact.all():
        colours, inverse = np.unique(keys[~exact], return_inverse=True)
        as_rgb = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1)
        nearest, dist = _nearest(as_rgb)
        index[~exact] = nearest[inverse.reshape(-1)]
        distance[~exact] = dist[inverse.reshape(-1)]
    return index, distance


def rgb_to_index(image: Image.Image | np.ndarray) -> np.ndarray:
    """Nearest palette class for every pixel: an (H, W) uint8 array of 0-based class indices.

    Nearest in plain RGB distance, which is what undoes JPEG noise: palette colours are at least
    ~50 apart while JPEG moves flat areas by a few units.
    """
    return match_palette(image)[0]


def snap_to_palette(image: Image.Image | np.ndarray) -> Image.Image:
    """Map every pixel of any 8-bit RGB/RGBA/L/P image (or uint8 array) to its nearest palette colour."""
    return index_to_rgb(rgb_to_index(image))
