"""facade-pix2pix in the browser: paint a CMP facade label map, watch the facade follow as you draw.

    python app.py [--weights W] [--device D] [--precision P] [--host H] [--port P] [--share] [--max-batch-size N]
                  [--threads N] [--cache-max-age MINUTES]

A thin Gradio layer over the ``pix2pix`` library, which owns the model, the palette, image decoding,
seeds and layouts. The page is declared once in ``build_demo``; every event handler is a plain method of
``FacadeApp`` (unit tests call them directly). The label-map canvas is our own (``assets/canvas/``: a
``gr.HTML`` with a template, CSS and ``js_on_load``): it paints on the model's 256x256 grid, and sends the
grid as a PNG data URL of a few KB with each update, so nothing is uploaded and nothing piles up on disk.

The page reflows for phones: the canvas, then the facade right under it (both fit one phone screen, so the
live preview is in view while painting), then the loaders and the seed controls. Facades are served as
lossless WebP (``encode_facade``), the very pixels the model made at a seventh of PNG's encoding cost.

Offline and private by default: no analytics (set GRADIO_ANALYTICS_ENABLED=True to opt in), binds
127.0.0.1, no share link unless ``--share``.

API (``gradio_client``), all on the queue, concurrent calls batched into shared forwards:
    /generate       (label image, seed, stochastic) -> facade (a lossless WebP file)
    /variations     (label image, seed, stochastic) -> 4 facades
    /random_layout  (seed) -> label map
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import io
import os
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Analytics stay off unless the user opts in through the environment (read when gradio is imported).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Gradio's queue recomputes a summary of the last 10,000 events (a pandas DataFrame) after every event, for
# its monitoring page, which this app does not enable: 1 ms of CPU per request at first, 6 ms once 10,000
# requests are on record. Once every 1,000 events, over the last 1,000, is plenty (read when the queue starts).
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from pix2pix import CLASSES, MAX_SEED, Pix2Pix, WeightsNotFoundError, check_seed, example_labels  # noqa: E402
from pix2pix.batcher import Batcher  # noqa: E402
from pix2pix.fast import PRECISION_HELP, PRECISIONS  # noqa: E402
from pix2pix.images import NotALabelMapError, image_to_tensor, label_grid, label_to_tensor  # noqa: E402
from pix2pix.layout import random_layout  # noqa: E402
from pix2pix.palette import BACKGROUND, class_index, hex_colors  # noqa: E402
from pix2pix.seeds import random_seed  # noqa: E402

TITLE = "facade-pix2pix"
NUM_VARIATIONS = 4
DEFAULT_MAX_BATCH_SIZE = 8
#: Uploads above this many bytes are refused by the server before they reach the app.
MAX_FILE_SIZE = "25mb"
#: A canvas update is a PNG data URL of a few KB; anything far larger is not from our canvas.
MAX_CANVAS_CHARS = 2_000_000
#: Gradio's cache (uploads, served images): files older than this many minutes are deleted (checked every
#: minute, or every age / 4 if that is shorter), so a long-running server's disk use levels off.
CACHE_MAX_AGE_MINUTES = 15.0
MODEL_QUEUE = "model"  # one concurrency group for every event that runs the model
CANVAS_DIR = Path(__file__).resolve().parent / "assets" / "canvas"
#: Keyboard keys of the 12 classes, in palette order (shown on the swatches' hover).
CLASS_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "-", "=")
BRUSH_SIZES = ({"name": "Small", "label": "S", "px": 3, "key": "["}, {"name": "Medium", "label": "M", "px": 8, "key": "[ ]"},
               {"name": "Large", "label": "L", "px": 20, "key": "]"})
#: The file name of a served facade (see ``encode_facade``).
FACADE_NAME = "facade.webp"
VARIATIONS_LABEL = f"Variations (same layout, seeds seed..seed+{NUM_VARIATIONS - 1})"
INTRO = (f"# {TITLE}\n"
         "Paint a facade label map, class by class: the pix2pix U-Net redraws the facade while you paint. "
         "Start from an example, a random layout or your own label map.")

#: The page's own layout rules (the canvas has its own, in assets/canvas/canvas.css), in the page's <head> as
#: they are: Gradio's ``css=`` would prefix every selector with its container, and these reach above it.
#: - The facade box is as tall as its square picture, never a fixed height.
#: - Galleries: their thumbnails fit the column (Gradio's grid wants 100 px a column, which cuts off a
#:   4th column on a phone), no empty band under them (Gradio's fixed minimum height), the first row
#:   clear of the gallery's label, and each caption under its picture, not over it.
#: - A phone (640 px or narrower): smaller page margins and title, and the board and the facade the same
#:   size, --p2p-side: the screen's width, or less on a short screen, so that with the tools and the
#:   swatches above them both fit one screen (270 px is what the title, tools, swatches, the line under the
#:   board and the gaps take, measured on a 390x844 phone), and the facade is in view while painting.
CSS = """
#canvas .html-container { padding: 0; }
#facade { height: auto !important; }
#facade .image-container, #facade .image-frame { height: auto !important; }
#facade .image-container > button, #facade .image-frame { width: 100%; justify-content: center; }
#facade img { display: block; width: 100%; height: auto; aspect-ratio: 1 / 1; object-fit: contain; margin: 0 auto; }
#examples .grid-container, #variations .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)); }
@media (max-width: 900px) { #examples .grid-container { grid-template-columns: repeat(4, minmax(0, 1fr)); } }
#examples .grid-wrap, #variations .grid-wrap {
  min-height: 0 !important; max-height: none !important; overflow-y: visible; padding-top: 30px;
}
#examples .thumbnail-item, #variations .thumbnail-item { aspect-ratio: auto; height: auto; display: flex; flex-direction: column; }
#examples .thumbnail-item > img, #variations .thumbnail-item > img { aspect-ratio: 1 / 1; height: auto; }
#examples .caption-label, #variations .caption-label {
  position: static; max-width: none; border: none; border-radius: 0; text-align: center; background: none;
}
@media (max-width: 640px) {
  :root { --p2p-side: min(100%, calc((100svh - 270px) / 2)); }
  .gradio-container .main.app { padding: 6px 8px; }
  #intro h1 { font-size: 1.3em; margin: 0 0 2px; }
  #intro p { font-size: 0.85em; line-height: 1.35; margin: 0; }
  #facade img { width: var(--p2p-side); }
}
"""


def _analytics_enabled() -> bool:
    return os.environ.get("GRADIO_ANALYTICS_ENABLED", "False").strip().lower() in ("1", "true", "yes")


def _zero_gpu(fn: Callable) -> Callable:
    """Run ``fn`` under ``spaces.GPU`` on a ZeroGPU Space; unchanged everywhere else (no hard dependency)."""
    if not os.environ.get("SPACES_ZERO_GPU"):
        return fn
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return fn
    return spaces.GPU(fn)


def _error(message: str) -> gr.Error:
    return gr.Error(message, title="Bad input", print_exception=False)


# ----------------------------------------------------------------------------------------------- conversion
def to_data_url(image: Image.Image) -> str:
    """A label map (already on the palette grid) as the canvas's value: a PNG data URL."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=False, compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def encode_facade(image: Image.Image) -> bytes:
    """A facade as the file the page and the API are served: lossless WebP at its fastest setting.

    Why not Gradio's PNG: at its default compression, PNG costs 13 ms of CPU per photo-like 256x256 facade,
    a quarter of what a request cost the server; lossless WebP costs 1.8 ms and keeps every pixel (the
    same image as the PNG, so a seed still reproduces it exactly), in a smaller file (106 KB against 119 KB,
    the examples' facades). Gradio's own ``format="webp"`` is lossy (quality 80: 3.7 grey levels off on
    average, 46 at worst), and JPEG quality 95 still moves them by 2.4 on average, 36 at worst.
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
    spin between and after forwards, on the very cores that work needs: on 2 cores a forward costs 54 ms of
    CPU with 2 threads against 34 ms with one, and concurrent requests contend. With one core left to
    Python, the model's threads do not compete with it.
    """
    if threads is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
        threads = max(1, cores - 1)
    torch.set_num_threads(max(1, int(threads)))
    return torch.get_num_threads()


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
        name = payload.get("orig_name") if isinstance(payload, dict) and payload.get("orig_name") else os.path.basename(path)
        message = message.replace(str(path), name)
    return message


def seed_or_default(value: Any, default: int) -> tuple[int, str]:
    """A seed from a number box: (seed, "") when valid, else (``default``, a note saying why it was replaced)."""
    try:
        return check_seed(value), ""
    except ValueError as e:
        return default, f" · **note:** {e}; using {default}"


def status_line(seconds: float, batch: int, seed: int, stochastic: bool, note: str = "") -> str:
    who = f"in a batch of {batch}" if batch > 1 else "alone"
    noise = f"seed {seed}" if stochastic else "dropout off (seed ignored)"
    return f"**model: {seconds * 1000:.0f} ms** ({who}) · {noise}{note}"


# ----------------------------------------------------------------------------------------------- handlers
class Versions:
    """The newest canvas update number seen per page (the last 10,000 pages)."""

    def __init__(self, pages: int = 10_000):
        self.latest: OrderedDict[str, int] = OrderedDict()
        self.pages = pages
        self.lock = threading.Lock()

    def note(self, page: str | None, version: Any) -> None:
        if page is None or not isinstance(version, int):
            return
        with self.lock:
            self.latest[page] = max(version, self.latest.get(page, version))
            self.latest.move_to_end(page)
            while len(self.latest) > self.pages:
                self.latest.popitem(last=False)

    def overtaken(self, page: str | None, version: Any) -> bool:
        if page is None or not isinstance(version, int):
            return False
        with self.lock:
            return self.latest.get(page, version) > version


class FacadeApp:
    """The model behind the page and the API. Each request is checked and converted in its own thread
    (a bad one gets its own message), then joins the shared forwards of ``pix2pix.batcher.Batcher``.
    Facades leave as files in Gradio's cache (``cache_dir``), encoded by ``encode_facade``."""

    def __init__(self, model: Pix2Pix, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 cache_dir: str | os.PathLike | None = None):
        self.model = model
        self.size = model.image_size
        self.cache_dir = Path(cache_dir or gr.utils.get_upload_folder())
        self.batcher = Batcher(_zero_gpu(self._forward), max_batch_size=max(1, int(max_batch_size)))
        self.versions = Versions()
        self.examples = example_labels()
        start = label_grid(self.examples[0] if self.examples else random_layout(0, self.size), self.size)[0]
        self.start_canvas = to_data_url(start)
        # The first facade is made once here, not on every page view.
        [facade], self.start_seconds, _ = self.facades([image_to_tensor(start)], [0], True)
        self.start_facade = self.serve(facade)

    # -- the model ------------------------------------------------------------------------------------------
    def _forward(self, items: list[tuple]) -> list[tuple[Image.Image, int]]:
        """(tensor, seed, stochastic) items -> (image, batch size); mixed dropout settings: two forwards."""
        out: list = [None] * len(items)
        for flag in (True, False):
            idx = [i for i, item in enumerate(items) if item[2] == flag]
            if idx:
                images = self.model.generate_batch([items[i][0] for i in idx], [items[i][1] for i in idx],
                                                   stochastic=flag)
                for i, image in zip(idx, images):
                    out[i] = (image, len(items))
        return out

    def facades(self, tensors: list, seeds: list[int], stochastic: bool) -> tuple[list[Image.Image], float, int]:
        """(images, seconds waited, size of the largest forward they were part of)."""
        start = time.perf_counter()
        results = self.batcher.run([(t, s, bool(stochastic)) for t, s in zip(tensors, seeds)])
        return [image for image, _ in results], time.perf_counter() - start, max(b for _, b in results)

    def serve(self, image: Image.Image) -> str:
        """A facade as a file in Gradio's cache, which Gradio serves as it is (see ``encode_facade``)."""
        return save_to_cache(encode_facade(image), self.cache_dir, FACADE_NAME)

    def label(self, source: Any):
        """A label map (path, bytes, image) as the model's input tensor; ValueError for bad input."""
        try:
            return label_to_tensor(source, self.size)[0]
        except FileNotFoundError as e:
            raise ValueError(str(e)) from None

    # -- the page -------------------------------------------------------------------------------------------
    # Page events run with show_progress="hidden": a failed one says why in its message alone, and leaves no
    # "Error" badge on its outputs (the seed boxes, the galleries), which did nothing wrong.
    def generate(self, canvas: str, seed: Any, stochastic: bool, last_seed: int):
        """Generate button, seed box, stochastic box, and after a new layout: (facade, status, seed, last seed)."""
        try:
            tensor = self.label(from_data_url(canvas))
        except ValueError as e:
            raise _error(str(e)) from None
        seed, note = seed_or_default(seed, last_seed)
        [image], seconds, batch = self.facades([tensor], [seed], stochastic)
        return self.serve(image), status_line(seconds, batch, seed, stochastic, note), seed, seed

    def paint(self, canvas: str, seed: Any, stochastic: bool, last_seed: int, evt: gr.EventData = None,
              request: gr.Request = None):
        """A canvas update (live during a stroke, or final): ``generate``, and the layout seed and the variations,
        which described the layout before the stroke, are cleared. Updates carry the page's running number;
        one that a newer update of the same page overtook answers nothing (``gr.skip``), so the newest wins."""
        version = (getattr(evt, "_data", None) or {}).get("version") if evt is not None else None
        page = getattr(request, "session_hash", None)
        self.versions.note(page, version)
        result = (*self.generate(canvas, seed, stochastic, last_seed), None, no_variations())
        if self.versions.overtaken(page, version):
            return tuple(gr.skip() for _ in result)
        return result

    def variations(self, canvas: str, seed: Any, stochastic: bool, last_seed: int):
        """Four facades from seeds seed..seed+3: (gallery, status, seed, last seed). The seeds are in the
        gallery's label (captions would cover the thumbnails)."""
        try:
            tensor = self.label(from_data_url(canvas))
        except ValueError as e:
            raise _error(str(e)) from None
        seed, note = seed_or_default(seed, last_seed)
        seed = min(seed, MAX_SEED - NUM_VARIATIONS + 1)
        seeds = [seed + i for i in range(NUM_VARIATIONS)]
        images, seconds, batch = self.facades([tensor] * NUM_VARIATIONS, seeds, stochastic)
        if stochastic:
            label = f"Variations: seeds {', '.join(map(str, seeds))}, left to right"
        else:
            label = "Variations: dropout off, so all four are the same"
            note += " · turn stochastic on for different variations"
        gallery = gr.update(value=[self.serve(image) for image in images], label=label)
        return gallery, status_line(seconds, batch, seed, stochastic, note), seed, seed

    def load_example(self, evt: gr.SelectData):
        """An example from the gallery onto the canvas: (canvas, layout seed, variations)."""
        return to_data_url(label_grid(self.examples[evt.index], self.size)[0]), None, no_variations()

    def load_upload(self, path: str | None):
        """An uploaded label map onto the canvas, snapped to the palette: (canvas, layout seed, variations).
        A photo is refused, saying what to upload instead: snapped, it would be coloured noise."""
        if not path:
            raise _error("no file was uploaded")
        try:
            grid, (width, height) = label_grid(path, self.size)
        except NotALabelMapError:
            name = os.path.basename(path)
            raise gr.Error(
                f"{name}: this looks like a photo, not a label map. The model turns a label map into a photo, so "
                "upload a label map instead: a picture of flat areas in the 12 class colours of the swatches "
                "(facade, window, door, ...), like the examples; or paint one on the canvas.",
                title="Not a label map", print_exception=False) from None
        except (ValueError, FileNotFoundError) as e:
            raise _error(f"cannot use that file as a label map: {public_message(e, path)}") from None
        if width != height:
            gr.Info(f"The label map is {width}x{height}: it was stretched to {self.size}x{self.size}, as the "
                    "facades data set's label maps were.")
        return to_data_url(grid), None, no_variations()

    def random_layout(self):
        """Random layout: a new random layout and its seed: (canvas, layout seed, variations)."""
        seed = random_seed()
        return to_data_url(random_layout(seed, self.size)), seed, no_variations()

    def layout_from_seed(self, seed: Any):
        """The random layout of the seed in the layout-seed box: (canvas, layout seed, variations)."""
        try:
            seed = check_seed(seed, "layout seed")
        except ValueError as e:
            raise _error(str(e)) from None
        return to_data_url(random_layout(seed, self.size)), seed, no_variations()

    @staticmethod
    def new_seed() -> int:
        return random_seed(NUM_VARIATIONS)

    # -- the API --------------------------------------------------------------------------------------------
    def api_generate(self, label: Any, seed: Any, stochastic: bool) -> str:
        try:
            tensor = self.label(payload_source(label))
            seed = check_seed(seed)
        except ValueError as e:
            raise _error(public_message(e, label)) from None
        [image], _, _ = self.facades([tensor], [seed], stochastic)
        return self.serve(image)

    def api_variations(self, label: Any, seed: Any, stochastic: bool) -> list[tuple[str, str]]:
        try:
            tensor = self.label(payload_source(label))
            seed = check_seed(seed)
            if seed > MAX_SEED - NUM_VARIATIONS + 1:
                raise ValueError(f"the seed must be at most {MAX_SEED - NUM_VARIATIONS + 1} for {NUM_VARIATIONS} "
                                 "variations (they use seed..seed+3)")
        except ValueError as e:
            raise _error(public_message(e, label)) from None
        seeds = [seed + i for i in range(NUM_VARIATIONS)]
        images, _, _ = self.facades([tensor] * NUM_VARIATIONS, seeds, stochastic)
        return [(self.serve(image), f"seed {s}") for image, s in zip(images, seeds)]

    def api_random_layout(self, seed: Any) -> Image.Image:
        try:
            return random_layout(check_seed(seed, "layout seed"), self.size)
        except ValueError as e:
            raise _error(str(e)) from None


def no_variations() -> dict:
    """The variations gallery emptied (an empty list: Gradio 6 leaves a gallery as it was for ``None`` in an
    update), with its label back to the default."""
    return gr.update(value=[], label=VARIATIONS_LABEL)


# ----------------------------------------------------------------------------------------------- the page
def canvas_component(app: FacadeApp) -> gr.HTML:
    """Our label-map canvas: template, CSS and script from ``assets/canvas/``, the palette as its props."""
    classes = [{"name": name, "color": colour, "key": key}
               for (name, _), colour, key in zip(CLASSES, hex_colors(), CLASS_KEYS)]
    return gr.HTML(
        value=app.start_canvas,
        html_template=(CANVAS_DIR / "canvas.html").read_text(),
        css_template=(CANVAS_DIR / "canvas.css").read_text(),
        js_on_load=(CANVAS_DIR / "canvas.js").read_text(),
        elem_id="canvas",
        apply_default_css=False,
        size=app.size,
        classes=classes,
        sizes=list(BRUSH_SIZES),
        background=BACKGROUND,
        plain=class_index("facade"),
        start_class=class_index("window"),
    )


def delete_cache(max_age_minutes: float) -> tuple[int, int]:
    """Gradio's ``delete_cache`` (every how many seconds, of files older than how many seconds)."""
    age = max(1, round(max_age_minutes * 60))
    return max(1, min(60, age // 4)), age


def clean_cache(demo: gr.Blocks, max_age_s: float) -> int:
    """Delete the files this app put in Gradio's cache more than ``max_age_s`` ago; returns how many.

    Gradio's own schedule (``delete_cache``) does this by iterating the live sets of cached files while
    request threads add to them: under steady traffic it soon dies of "Set changed size during iteration"
    and the cache then grows without bound (the soak test's 665 MB in 10 minutes). This is the same
    work on snapshots (copying a set is atomic under the GIL), and it keeps what Gradio keeps: the
    page's own values (``keep_in_cache``). Emptied hash folders go too. A file leaves its set before it
    leaves the disk, so a listed file is always there.
    """
    keep = set().union(*(getattr(block, "keep_in_cache", ()) for block in list(demo.blocks.values())))
    now, removed = time.time(), 0
    for files in list(demo.temp_file_sets):
        for path in list(files):
            if path in keep:
                continue
            try:
                if now - os.lstat(path).st_ctime <= max_age_s:
                    continue
            except FileNotFoundError:
                files.discard(path)  # gone already: stop listing it
                removed += 1
                continue
            # Out of the set first, then off the disk: at no moment is a file listed that is not there.
            files.discard(path)
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            except OSError:
                files.add(path)  # could not delete it (permissions, ...): keep it listed for the next round
                continue
            removed += 1
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(path))  # only if empty
    return removed


def start_cache_cleaner(demo: gr.Blocks, max_age_minutes: float) -> threading.Event:
    """Run ``clean_cache`` on ``delete_cache``'s schedule in a daemon thread until the event is set."""
    every, age = delete_cache(max_age_minutes)
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every):
            try:
                clean_cache(demo, age)
            except Exception as e:  # noqa: BLE001 - a failed round is reported; the next one runs anyway
                print(f"warning: cleaning the cache failed: {e!r}", file=sys.stderr, flush=True)

    threading.Thread(target=run, name="cache-cleaner", daemon=True).start()
    return stop


def build_demo(model: Pix2Pix, *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, initial_seed: int = 0,
               cache_max_age: float = CACHE_MAX_AGE_MINUTES) -> gr.Blocks:
    """The page around a loaded model (``max_batch_size`` 1 turns batching off). The queue is set up;
    launch with ``demo.launch(server_name=..., server_port=..., **LAUNCH_KWARGS)`` (see ``main``).

    A row of two columns, the canvas and the facade (with the seed controls and variations under it), then
    the loaders and the examples. On a wide screen the canvas is on the left and the facade on the right;
    on a phone the columns stack, so the facade comes right under the canvas."""
    app = FacadeApp(model, max_batch_size)
    with gr.Blocks(title=TITLE, analytics_enabled=_analytics_enabled(),
                   delete_cache=delete_cache(cache_max_age)) as demo:
        gr.Markdown(INTRO, elem_id="intro")
        last_seed = gr.State(initial_seed)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                canvas = canvas_component(app)
            with gr.Column(scale=1, min_width=300):
                facade = gr.Image(value=app.start_facade, label="Generated facade", type="filepath",
                                  interactive=False, elem_id="facade", buttons=["download", "fullscreen"])
                status = gr.Markdown(status_line(app.start_seconds, 1, initial_seed, True), elem_id="status")
                with gr.Row():
                    seed = gr.Number(label="Seed", value=initial_seed, precision=0, elem_id="seed", min_width=120)
                    seed_btn = gr.Button("New seed", elem_id="new-seed")
                    stochastic = gr.Checkbox(label="stochastic (dropout on)", value=True, elem_id="stochastic")
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                    variations_btn = gr.Button(f"{NUM_VARIATIONS} variations", elem_id="variations-btn")
                variations = gr.Gallery(label=VARIATIONS_LABEL, columns=NUM_VARIATIONS, height="auto",
                                        object_fit="contain", elem_id="variations")
                gr.Markdown("Same layout + same seed = same image. With stochastic off, dropout is off and the seed "
                            "does not matter. The download button on the facade saves it (a lossless WebP).")
        with gr.Row():
            random_btn = gr.Button("Random layout", variant="secondary", elem_id="random-layout")
            layout_seed = gr.Number(label="Layout seed", value=None, precision=0, elem_id="layout-seed",
                                    placeholder="none", min_width=120)
            upload_btn = gr.UploadButton("Upload a label map", file_types=["image"], type="filepath",
                                         elem_id="upload")
        gallery = gr.Gallery(value=[(str(p), p.stem.split("_", 1)[-1]) for p in app.examples],
                             label="Examples (click one to load it)", columns=8, height="auto",
                             allow_preview=False, object_fit="contain", format="png", elem_id="examples")
        # Hidden inputs and outputs of the API endpoints, which take a plain label image.
        with gr.Row(visible=False):
            api_label = gr.Image(label="label map", type="filepath", image_mode=None, format="png")
            api_seed = gr.Number(label="seed", value=0, precision=0)
            api_stochastic = gr.Checkbox(label="stochastic", value=True)
            api_out = gr.Image(label="facade", type="filepath")
            api_gallery = gr.Gallery(label="facades")
            api_layout = gr.Image(label="label map", format="png")
            api_btn, api_var_btn, api_layout_btn = gr.Button("g"), gr.Button("v"), gr.Button("r")

        # ---- events ---------------------------------------------------------------------------------------
        # Every model event shares one concurrency group: up to 2 x max_batch_size requests are converted in
        # parallel threads, and their forwards are batched by the app's Batcher. Page events hide their progress
        # (and so any "Error" badge on their outputs: a failure is said in its message alone).
        quiet = dict(show_progress="hidden")
        model_queue = dict(concurrency_limit=2 * max(1, max_batch_size), concurrency_id=MODEL_QUEUE,
                           api_visibility="private", **quiet)
        page_in, page_out = [canvas, seed, stochastic, last_seed], [facade, status, seed, last_seed]
        # The page's events keep names of their own: /generate and /variations are the API's.
        generate = dict(fn=app.generate, inputs=page_in, outputs=page_out, api_name="page_generate", **model_queue)
        # Live updates during a stroke: "once", at most one in flight per page. The final canvas of a stroke or an
        # edit: at once ("always_last" among its kind). FacadeApp.paint lets only the newest canvas answer.
        painted = [*page_out, layout_seed, variations]
        canvas.input(app.paint, page_in, painted, trigger_mode="once", api_name="page_paint_live", **model_queue)
        canvas.submit(app.paint, page_in, painted, trigger_mode="always_last", api_name="page_paint", **model_queue)
        gr.on([generate_btn.click, stochastic.input, seed.submit], trigger_mode="always_last", **generate)
        seed_btn.click(app.new_seed, outputs=seed, queue=False, api_visibility="private", **quiet).then(**generate)
        variations_btn.click(app.variations, page_in, [variations, status, seed, last_seed], api_name="page_variations",
                             **model_queue)
        # A loader that fails (a photo, a bad seed) leaves the canvas as it was, and nothing is generated.
        loaded = [canvas, layout_seed, variations]
        gallery.select(app.load_example, None, loaded, queue=False, api_visibility="private", **quiet).success(**generate)
        upload_btn.upload(app.load_upload, upload_btn, loaded, api_visibility="private", **quiet).success(**generate)
        random_btn.click(app.random_layout, None, loaded, queue=False, api_name="page_random_layout",
                         api_visibility="private", **quiet).success(**generate)
        layout_seed.submit(app.layout_from_seed, layout_seed, loaded, api_name="page_layout",
                           api_visibility="private", **quiet).success(**generate)

        api_queue = dict(concurrency_limit=2 * max(1, max_batch_size), concurrency_id=MODEL_QUEUE)
        api_btn.click(app.api_generate, [api_label, api_seed, api_stochastic], api_out, api_name="generate",
                      preprocess=False, **api_queue)
        api_var_btn.click(app.api_variations, [api_label, api_seed, api_stochastic], api_gallery,
                          api_name="variations", preprocess=False, **api_queue)
        api_layout_btn.click(app.api_random_layout, layout_seed, api_layout, api_name="random_layout")
        # The canvas opens on an example, not a random layout: the layout seed box is empty (Gradio's number box
        # shows 0 for an empty first value, so it is emptied in the browser once the page is up; no request).
        demo.load(None, None, layout_seed, js="() => null", queue=False, api_visibility="private", **quiet)
    demo.queue(max_size=64)
    demo.app_state = app  # for tests and benchmarks: the handlers and the batcher behind this page
    return demo


LAUNCH_KWARGS = dict(head=f"<style>{CSS}</style>", max_file_size=MAX_FILE_SIZE, run_history=False)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="app.py", description="Paint a facade label map, get a facade (pix2pix) - a local Gradio app."
    )
    parser.add_argument("--weights", help="save_pretrained folder, .safetensors, official .pth or Hub repo id "
                        "(default: $PIX2PIX_WEIGHTS, then assets/weights)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to bind (default 127.0.0.1, or $GRADIO_SERVER_NAME; 0.0.0.0 for the network)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="port (default 7860, or $GRADIO_SERVER_PORT)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    parser.add_argument("--max-batch-size", type=int, default=DEFAULT_MAX_BATCH_SIZE,
                        help=f"most concurrent requests batched into one forward (default {DEFAULT_MAX_BATCH_SIZE}; "
                        "1 turns batching off)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads for the model (default: all cores but one, at least 1; see serving_threads)")
    parser.add_argument("--cache-max-age", type=float, default=CACHE_MAX_AGE_MINUTES, metavar="MINUTES",
                        help=f"delete uploads and served images older than this (default {CACHE_MAX_AGE_MINUTES:g})")
    args = parser.parse_args(argv)
    if args.max_batch_size < 1 or args.cache_max_age <= 0 or (args.threads is not None and args.threads < 1):
        parser.error("--max-batch-size and --threads must be at least 1 and --cache-max-age above 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    threads = serving_threads(args.threads)  # before loading: precision="auto" is timed with these threads
    try:
        model = Pix2Pix.load(args.weights, device=args.device, precision=args.precision)
    except WeightsNotFoundError as e:
        print(e, file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: cannot load the weights: {e}", file=sys.stderr)
        return 1
    demo = build_demo(model, max_batch_size=args.max_batch_size, cache_max_age=args.cache_max_age)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, quiet=True,
                prevent_thread_lock=True, **LAUNCH_KWARGS)
    start_cache_cleaner(demo, args.cache_max_age)
    print(f"facade-pix2pix on {demo.local_url} (model on {model.device}, {model.precision}, {threads} torch "
          f"thread{'s' if threads > 1 else ''}; Ctrl+C to stop)", flush=True)
    if demo.share_url:
        print(f"public link: {demo.share_url}", flush=True)
    elif args.host in ("127.0.0.1", "localhost", "::1"):
        print("private: only this machine can connect; --host 0.0.0.0 serves the network, --share a public link",
              flush=True)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
