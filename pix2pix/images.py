"""Reading label images safely, and converting between PIL images and the model's [-1, 1] tensors.

Every input the library accepts (path, bytes, PIL image, numpy array) goes through ``load_image`` so a
corrupt, truncated, empty or huge file fails in one place with a message that names it, and comes out
the same way: EXIF orientation applied, 16-bit and float images scaled to 8 bits, NaN refused.

``label_to_tensor`` then shrinks to the model's 256x256 grid *before* snapping to the palette (NEAREST
picks source pixels, and snapping is per pixel, so the order does not change the result), so a request
costs the same whatever the size of the upload, once it is decoded. A non-square label map is stretched
to 256x256, as the facades data set's photos and label maps were; ``keep_size`` stretches the result back.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .palette import snap_to_palette

#: Largest image accepted, in pixels (checked from the header, before decoding): 4096 x 4096, 16 times
#: the model's grid on each side. Decoding is the one cost that grows with the upload; this bounds it.
MAX_PIXELS = 4096 * 4096
#: The generator's working resolution.
SIZE = 256

ImageLike = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]


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


def label_grid(source: ImageLike, size: int = SIZE) -> tuple[Image.Image, tuple[int, int]]:
    """A label map on the model's ``size`` x ``size`` grid, every pixel a palette colour, and the input's
    (width, height). Shrinks (NEAREST) before snapping, so the snapping costs the same for any upload."""
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
    return snap_to_palette(image), original_size


def label_to_tensor(source: ImageLike, size: int = SIZE) -> tuple[torch.Tensor, tuple[int, int]]:
    """``label_grid`` as a (3, size, size) tensor in [-1, 1], and the input's original (width, height)."""
    grid, original_size = label_grid(source, size)
    return image_to_tensor(grid), original_size


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
