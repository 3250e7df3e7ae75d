"""Reading label images safely, and converting between PIL images and the model's [-1, 1] tensors.

Every input the library accepts (path, bytes, PIL image, numpy array) goes through ``load_image`` so a
corrupt, truncated, empty or huge file fails in one place with a message that names it, and comes out
the same way: EXIF orientation applied, 16-bit and float images scaled to 8 bits, NaN refused.

``label_grid`` (and ``label_to_tensor``) then shrinks to the model's 256x256 grid *before* snapping to
the palette (NEAREST picks source pixels, and snapping is per pixel, so the order does not change the
result), so a request costs the same whatever the size of the upload, once it is decoded. A non-square
label map is stretched to 256x256, as the facades data set's photos and label maps were; ``keep_size``
stretches the result back. A photo is refused there (``check_label_map``): snapped to the palette it
would become coloured noise, and the facade a smear, with nothing to say why.

The dependency is one-way: this module uses ``pix2pix.palette``, which knows nothing of files.
"""

from __future__ import annotations

import functools
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .palette import PALETTE, index_to_rgb, match_palette, to_rgb_array

#: Largest image accepted, in pixels (checked from the header, before decoding): 4096 x 4096, 16 times
#: the model's grid on each side. Decoding is the one cost that grows with the upload; this bounds it.
MAX_PIXELS = 4096 * 4096
#: The generator's working resolution.
SIZE = 256

#: What tells a photo from a label map, measured on the 256x256 grid. A label map has a handful of flat
#: colours, nearly all on or near the palette: even saved as a JPEG at quality 50, or blurred, at least
#: 78% of an example's pixels lie within ``NEAR_PALETTE`` of a palette colour, and a map with pixels of a
#: photo pasted beside it still half. A photo of a facade has none (0.0% for every example's photo; 6%
#: for random noise). So: under ``PHOTO_MAX_NEAR`` of the pixels near the palette, and not flat (its 16
#: commonest colours cover under ``PHOTO_MAX_FLAT`` of it: at most 19% for the photos, 39% in greyscale;
#: a flat image of any colours is a label map in some other colours, and is snapped as before).
NEAR_PALETTE = 40
PHOTO_MAX_NEAR = 0.25
PHOTO_MAX_FLAT = 0.6

ImageLike = str | os.PathLike | bytes | Image.Image | np.ndarray


class NotALabelMapError(ValueError):
    """The image looks like a photo, not a label map (see ``check_label_map``)."""


def _describe(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def check_size(width: int, height: int, name: str = "image") -> None:
    """Reject empty images and images over ``MAX_PIXELS`` with a message saying what to do."""
    if width <= 0 or height <= 0:
        raise ValueError(f"{name}: the image is empty ({width}x{height} pixels)")
    if width * height > MAX_PIXELS:
        raise ValueError(
            f"{name}: the image is too large ({width}x{height} = {width * height:,} pixels; "
            f"the limit is {MAX_PIXELS:,}). Label maps are used at {SIZE}x{SIZE}: downscale it first."
        )


def to_uint8(array: np.ndarray, name: str = "array") -> np.ndarray:
    """Any numeric image array as uint8: 16-bit scaled from 0..65535, floats from 0..1 (or clipped to
    0..255 when they go beyond 1), other integers clipped; NaN or infinity refused."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(f"{name}: the image holds NaN or infinite values")
        if array.size and array.max() <= 1.0 and array.min() >= 0.0:
            array = array * 255.0
        return np.clip(np.rint(array), 0, 255).astype(np.uint8)
    if array.dtype in (np.uint16, np.dtype(">u2"), np.dtype("<u2")):
        return np.rint(array.astype(np.float32) / 257.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        return np.clip(array, 0, 255).astype(np.uint8)
    raise ValueError(f"{name}: unsupported pixel type {array.dtype}")


def check_array(array: np.ndarray, name: str = "array") -> np.ndarray:
    """An image array of an accepted shape and size, as uint8 (``to_uint8``); ValueError naming the problem."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{name}: expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {array.shape}")
    check_size(array.shape[1], array.shape[0], name)
    return to_uint8(array, name)


def _to_8bit(image: Image.Image, name: str) -> Image.Image:
    """PIL's 16-bit ("I;16*", "I") and float ("F") modes as 8-bit greyscale, scaled, not clipped."""
    if image.mode.startswith("I;16") or image.mode == "I":
        array = np.asarray(image).astype(np.float64)
        return Image.fromarray(np.clip(np.rint(array / 257.0), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "F":
        return Image.fromarray(to_uint8(np.asarray(image), name), mode="L")
    return image


def load_image(source: ImageLike) -> Image.Image | np.ndarray:
    """Open and fully decode an image from a path, bytes, PIL image or numpy array.

    Returns an 8-bit image (PIL, or a uint8 array for an array input), upright per its EXIF orientation.
    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` naming the input for anything
    that is not a readable image of acceptable size.
    """
    name = _describe(source)
    if isinstance(source, np.ndarray):
        return check_array(source, name)
    if isinstance(source, Image.Image):
        check_size(*source.size, name)
        return _to_8bit(ImageOps.exif_transpose(source), name)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        if path.is_dir():
            raise ValueError(f"{path}: is a folder, not an image")
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: the file is empty (0 bytes)")
        data = path.read_bytes()
    elif isinstance(source, bytes):
        if not source:
            raise ValueError("the image data is empty (0 bytes)")
        data = source
    else:
        raise TypeError(f"expected a path, bytes, PIL image or numpy array, got {type(source).__name__}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            check_size(*image.size, name)  # from the header: nothing is decoded yet
            image.load()
            image = ImageOps.exif_transpose(image)
    except UnidentifiedImageError:
        raise ValueError(f"{name}: not an image (PNG, JPEG, WebP, BMP, ... expected)") from None
    except Image.DecompressionBombError:  # PIL's own limit is above MAX_PIXELS, so this is ours too
        raise ValueError(
            f"{name}: the image is too large (over {MAX_PIXELS:,} pixels). "
            f"Label maps are used at {SIZE}x{SIZE}: downscale it first."
        ) from None
    except (OSError, SyntaxError, EOFError) as e:
        raise ValueError(f"{name}: the image file is corrupt or truncated ({e}); re-export or re-download it") from None
    return _to_8bit(image, name)


def check_label_map(image: Image.Image | np.ndarray, distance: np.ndarray, name: str = "image") -> None:
    """Refuse a photo (``NotALabelMapError``, saying what to give instead): few of its pixels near the
    palette (``distance``: the squared RGB distance of each to its nearest palette colour, as
    ``pix2pix.palette.match_palette`` gives it) and no handful of flat colours. Cheap for a label map: a
    painted one is all on the palette, and the flatness is only measured when the palette test fails."""
    near = float((distance <= NEAR_PALETTE * NEAR_PALETTE).mean()) if distance.size else 1.0
    if near >= PHOTO_MAX_NEAR:
        return
    rgb = to_rgb_array(image).reshape(-1, 3).astype(np.uint32)
    _, counts = np.unique((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2], return_counts=True)
    if np.sort(counts)[::-1][:16].sum() >= PHOTO_MAX_FLAT * len(rgb):
        return
    raise NotALabelMapError(
        f"{name}: this looks like a photo, not a label map (only {near:.0%} of its pixels are near one of the "
        f"{len(PALETTE)} facade class colours, and it has no handful of flat colours). The model turns a label "
        "map into a photo: give it a picture of flat areas in the CMP class colours (pix2pix.palette.CLASSES), "
        "like the label maps in assets/examples/."
    )


def _label_index(source: ImageLike, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The class index of every pixel of a label map on the ``size`` x ``size`` grid, and the input's
    (width, height): decoding, the shrink (NEAREST) before the snapping, and the photo check."""
    image = load_image(source)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image if image.ndim == 3 and image.shape[2] != 1 else image.reshape(image.shape[:2]))
    original_size = image.size
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "PA"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    if image.size != (size, size):
        if image.mode == "P":  # keep a transparent palette entry visible to the snapper
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        image = image.resize((size, size), Image.NEAREST)
    index, distance = match_palette(image)
    check_label_map(image, distance, _describe(source))
    return index, original_size


def label_grid(source: ImageLike, size: int = SIZE) -> tuple[Image.Image, tuple[int, int]]:
    """A label map on the model's ``size`` x ``size`` grid, every pixel a palette colour, and the input's
    (width, height). Shrinks (NEAREST) before snapping, so the snapping costs the same for any upload.
    A photo is refused with ``NotALabelMapError`` (a ``ValueError``): see ``check_label_map``."""
    index, original_size = _label_index(source, size)
    return index_to_rgb(index), original_size


def label_to_tensor(source: ImageLike, size: int = SIZE) -> tuple[torch.Tensor, tuple[int, int]]:
    """``label_grid`` as a (3, size, size) tensor in [-1, 1], and the input's original (width, height).

    Straight from the class indices through a 12-colour table (the same numbers as ``image_to_tensor`` of
    the grid, without drawing the grid as an image first): a served request's decoding, a millisecond less."""
    index, original_size = _label_index(source, size)
    return _palette_tensor()[torch.from_numpy(index).long()].permute(2, 0, 1), original_size


@functools.lru_cache(maxsize=1)
def _palette_tensor() -> torch.Tensor:
    """The palette as a (12, 3) float table in [-1, 1]."""
    return uint8_to_tensor(torch.from_numpy(PALETTE.copy()))


def uint8_to_tensor(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (..., 3, H, W) -> float in [-1, 1]: the one place this scaling is written."""
    return pixels.float().div(127.5).sub(1.0)


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) float tensor in [-1, 1]."""
    return uint8_to_tensor(torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1))


def to_unit(tensor: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] (for metrics and ``torchvision.utils.save_image``)."""
    return tensor.float().add(1).div(2).clamp(0, 1)


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """(3, H, W) tensor in [-1, 1] -> RGB PIL image."""
    array = tensor.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy(), mode="RGB")
