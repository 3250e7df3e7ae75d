"""Reading label images safely, and converting between PIL images and the model's [-1, 1] tensors.

Every input the library accepts (path, bytes, PIL image, numpy array) goes through ``load_image`` so a
corrupt, truncated, empty or huge file fails in one place with a message that names it.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .palette import snap_to_palette

#: Largest image accepted, in pixels (checked from the header, before decoding). 8192 x 8192.
MAX_PIXELS = 8192 * 8192
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


def load_image(source: ImageLike) -> Image.Image:
    """Open and fully decode an image from a path, bytes, PIL image or numpy array.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` naming the input for anything
    that is not a readable image of acceptable size.
    """
    name = _describe(source)
    if isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or (source.ndim == 3 and source.shape[2] not in (1, 3, 4)):
            raise ValueError(f"{name}: expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {source.shape}")
        check_size(source.shape[1], source.shape[0], name)
        return source  # type: ignore[return-value]  # arrays go straight to the palette snapper
    if isinstance(source, Image.Image):
        check_size(*source.size, name)
        return source
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
    except UnidentifiedImageError:
        raise ValueError(f"{name}: not an image (PNG, JPEG, WebP, BMP, ... expected)") from None
    except Image.DecompressionBombError:  # PIL's own limit is above MAX_PIXELS, so this is ours too
        raise ValueError(
            f"{name}: the image is too large (over {MAX_PIXELS:,} pixels). "
            f"Label maps are used at {SIZE}x{SIZE}: downscale it first."
        ) from None
    except (OSError, SyntaxError, EOFError) as e:
        raise ValueError(f"{name}: the image file is corrupt or truncated ({e}); re-export or re-download it") from None
    return image


def label_to_tensor(source: ImageLike, size: int = SIZE) -> tuple[torch.Tensor, tuple[int, int]]:
    """Load a label map, snap it to the palette, resize with NEAREST; returns (3, size, size) in [-1, 1]
    and the input's original (width, height)."""
    image = load_image(source)
    snapped = snap_to_palette(image)
    original_size = snapped.size
    if snapped.size != (size, size):
        snapped = snapped.resize((size, size), Image.NEAREST)
    return image_to_tensor(snapped), original_size


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) float tensor in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1).div(127.5).sub(1.0)


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """(3, H, W) tensor in [-1, 1] -> RGB PIL image."""
    array = tensor.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy(), mode="RGB")
