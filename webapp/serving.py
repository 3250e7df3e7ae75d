"""What crosses the wire: the canvas's PNG data URLs, the API's image payloads, facades as served files, and
the torch threads a server leaves to Python."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from PIL import Image

#: A canvas update is a PNG data URL of a few KB; anything far larger is not from our canvas.
MAX_CANVAS_CHARS = 2_000_000


def to_data_url(image: Image.Image) -> str:
    """A label map (already on the palette grid) as the canvas's value: a PNG data URL."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=False, compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def from_data_url(value: Any) -> bytes:
    """The PNG bytes of a canvas value; ValueError for anything that is not a modest image data URL."""
    if not isinstance(value, str) or not value.startswith("data:image/") or "," not in value:
        raise ValueError("the canvas is empty: pick an example, draw a random layout or upload a label map")
    if len(value) > MAX_CANVAS_CHARS:
        raise ValueError(f"the canvas data is too large ({len(value):,} characters; at most {MAX_CANVAS_CHARS:,})")
    try:
        return base64.b64decode(value.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the canvas data is not valid base64") from None


def payload_source(payload: Any) -> str | bytes:
    """The file behind an API image payload (a FileData dict, as the queue hands it over unprocessed)."""
    if payload is None:
        raise ValueError("no label image was given")
    if isinstance(payload, dict):
        if payload.get("path"):
            return str(payload["path"])
        url = payload.get("url") or ""
        if url.startswith("data:"):
            return from_data_url(url)
    if isinstance(payload, str) and os.path.isfile(payload):
        return payload
    raise ValueError("the label image must be an uploaded image file (use gradio_client.handle_file)")


def public_message(error: Exception, payload: Any = None) -> str:
    """An error message fit for the user: the server's cache path of an upload becomes its file name."""
    message = str(error)
    path = payload.get("path") if isinstance(payload, dict) else payload if isinstance(payload, str) else None
    if path and len(path) < 4096:
        named = isinstance(payload, dict) and payload.get("orig_name")
        name = payload["orig_name"] if named else os.path.basename(path)
        message = message.replace(str(path), name)
    return message


#: A facade's file name without its extension, which says how to make it again: ``facade-seed42``, or
#: ``facade-any-seed`` with the variation off (dropout off: every seed gives that facade). The one home of the
#: names: the page's controller gets them from /p2p/page.json (``webapp.render``) and saves ``.png`` files.
SEED_NAME = "facade-seed{seed}"
ANY_SEED_NAME = "facade-any-seed"


def facade_name(seed: int, stochastic: bool = True) -> str:
    """A served facade's file name: ``facade-seed42.webp``, or ``facade-any-seed.webp`` with the variation off."""
    return (SEED_NAME.format(seed=seed) if stochastic else ANY_SEED_NAME) + ".webp"


def encode_facade(image: Image.Image) -> bytes:
    """A facade as the file the page and the API are served: lossless WebP at its fastest setting.

    Why not Gradio's PNG: encoding a photo-like facade as PNG at Gradio's default compression is a large
    share of what a request costs the server, and lossless WebP at its fastest setting costs a fraction of
    it while keeping every pixel (the same image as the PNG, so a seed still reproduces it exactly), in a
    file no larger. Why not Gradio's own ``format="webp"`` or JPEG: both are lossy, and move grey levels
    (docs/serving.md has the measurements).
    """
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", lossless=True, quality=0, method=0)
    return buffer.getvalue()


def save_to_cache(data: bytes, cache_dir: str | os.PathLike, name: str) -> str:
    """Write a served file into Gradio's cache as Gradio does (a folder named by a hash of the bytes), so
    Gradio serves it as it is, with no copy; the cache cleaner deletes it when it is old. Written under a
    temporary name and renamed, so a reader never sees half a file and the file's age starts now."""
    folder = Path(cache_dir) / hashlib.sha256(data).hexdigest()
    for attempt in range(2):
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        except FileNotFoundError:  # the cleaner removed the (emptied) folder in between: once more
            if attempt:
                raise
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(staging, folder / name)
        break
    return str(folder / name)


def serving_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads for serving, and return how many: ``threads``, or all cores but one.

    Why not torch's default (every core): a served request is the forward plus Python work (decoding,
    encoding, Gradio's HTTP and queue), which holds the GIL and so runs on one core. Torch's idle threads
    spin between and after forwards, on the very cores that work needs, so a forward costs more CPU with
    every core than with one fewer, and concurrent requests contend. With one core left to Python, the
    model's threads do not compete with it.
    """
    if threads is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
        threads = max(1, cores - 1)
    torch.set_num_threads(max(1, int(threads)))
    return torch.get_num_threads()
