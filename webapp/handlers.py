"""``FacadeApp``: the model behind the page, and every handler of the page as a plain method (unit tests call
them directly). Page and API share one path from a label map to served facades: ``FacadeApp.render``."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from pix2pix import MAX_SEED, Pix2Pix, check_seed, example_labels
from pix2pix.batcher import Batcher
from pix2pix.images import NotALabelMapError, image_to_tensor, label_grid, label_to_tensor
from pix2pix.layout import random_layout
from pix2pix.seeds import random_seed
from webapp.serving import FACADE_NAME, encode_facade, from_data_url, public_message, save_to_cache, to_data_url

NUM_VARIATIONS = 4
DEFAULT_MAX_BATCH_SIZE = 8
VARIATIONS_LABEL = f"Variations (same layout, seeds seed..seed+{NUM_VARIATIONS - 1})"


def bad_input(message: str) -> gr.Error:
    """The error a handler raises for bad input: shown to the user as it is, with no traceback logged."""
    return gr.Error(message, title="Bad input", print_exception=False)


def zero_gpu(fn: Callable) -> Callable:
    """Run ``fn`` under ``spaces.GPU`` on a ZeroGPU Space; unchanged everywhere else (no hard dependency)."""
    if not os.environ.get("SPACES_ZERO_GPU"):
        return fn
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return fn
    return spaces.GPU(fn)


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


def no_variations() -> dict:
    """The variations gallery emptied (an empty list: Gradio 6 leaves a gallery as it was for ``None`` in an
    update), with its label back to the default."""
    return gr.update(value=[], label=VARIATIONS_LABEL)


@dataclass
class Rendered:
    """Facades of one label map, served: their files, their seeds, how long the caller waited, and the size of
    the largest shared forward they were part of."""

    paths: list[str]
    seeds: list[int]
    seconds: float
    batch: int


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
    Facades leave as files in Gradio's cache (``cache_dir``), encoded by ``webapp.serving.encode_facade``."""

    def __init__(self, model: Pix2Pix, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 cache_dir: str | os.PathLike | None = None):
        self.model = model
        self.size = model.image_size
        self.cache_dir = Path(cache_dir or gr.utils.get_upload_folder())
        self.batcher = Batcher(zero_gpu(self._forward), max_batch_size=max(1, int(max_batch_size)))
        self.versions = Versions()
        self.examples = example_labels()
        start = label_grid(self.examples[0] if self.examples else random_layout(0, self.size), self.size)[0]
        self.start_canvas = to_data_url(start)
        # The first facade is made once here, not on every page view.
        first = self.render(image_to_tensor(start), 0, True)
        self.start_facade, self.start_seconds = first.paths[0], first.seconds

    # -- the model ------------------------------------------------------------------------------------------
    def _forward(self, items: list[tuple]) -> list[tuple[Image.Image, int]]:
        """(tensor, seed, stochastic) items -> (image, batch size); mixed dropout settings: two forwards."""
        out: list = [None] * len(items)
        for flag in (True, False):
            idx = [i for i, item in enumerate(items) if item[2] == flag]
            if idx:
                images = self.model.generate_batch([items[i][0] for i in idx], [items[i][1] for i in idx],
                                                   stochastic=flag)
                for i, image in zip(idx, images, strict=True):
                    out[i] = (image, len(items))
        return out

    def render(self, tensor, seed: int, stochastic: bool, count: int = 1) -> Rendered:
        """``count`` facades of one label map, from seeds seed..seed+count-1, served as files: the one path of
        every request that runs the model (the page's and the API's Generate and variations)."""
        seeds = [seed + i for i in range(count)]
        start = time.perf_counter()
        results = self.batcher.run([(tensor, s, bool(stochastic)) for s in seeds])
        seconds = time.perf_counter() - start
        paths = [save_to_cache(encode_facade(image), self.cache_dir, FACADE_NAME) for image, _ in results]
        return Rendered(paths, seeds, seconds, max(b for _, b in results))

    def label(self, source: Any):
        """A label map (path, bytes, image) as the model's input tensor; ValueError for bad input."""
        try:
            return label_to_tensor(source, self.size)[0]
        except FileNotFoundError as e:
            raise ValueError(str(e)) from None

    # -- the page -------------------------------------------------------------------------------------------
    # Page events run with show_progress="hidden": a failed one says why in its message alone, and leaves no
    # "Error" badge on its outputs (the seed boxes, the galleries), which did nothing wrong.
    def _page_request(self, canvas: str, seed: Any, last_seed: int, count: int) -> tuple[Any, int, str]:
        """The canvas as a tensor, and the seed to use (a bad one replaced by the last good one, with a note);
        the seeds of ``count`` facades stay in range."""
        try:
            tensor = self.label(from_data_url(canvas))
        except ValueError as e:
            raise bad_input(str(e)) from None
        seed, note = seed_or_default(seed, last_seed)
        return tensor, min(seed, MAX_SEED - count + 1), note

    def generate(self, canvas: str, seed: Any, stochastic: bool, last_seed: int):
        """Generate button, seed box, stochastic box, and after a new layout: (facade, status, seed, last seed)."""
        tensor, seed, note = self._page_request(canvas, seed, last_seed, 1)
        out = self.render(tensor, seed, stochastic)
        return out.paths[0], status_line(out.seconds, out.batch, seed, stochastic, note), seed, seed

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
        tensor, seed, note = self._page_request(canvas, seed, last_seed, NUM_VARIATIONS)
        out = self.render(tensor, seed, stochastic, NUM_VARIATIONS)
        if stochastic:
            label = f"Variations: seeds {', '.join(map(str, out.seeds))}, left to right"
        else:
            label = "Variations: dropout off, so all four are the same"
            note += " · turn stochastic on for different variations"
        gallery = gr.update(value=out.paths, label=label)
        return gallery, status_line(out.seconds, out.batch, seed, stochastic, note), seed, seed

    def load_example(self, evt: gr.SelectData):
        """An example from the gallery onto the canvas: (canvas, layout seed, variations)."""
        return to_data_url(label_grid(self.examples[evt.index], self.size)[0]), None, no_variations()

    def load_upload(self, path: str | None):
        """An uploaded label map onto the canvas, snapped to the palette: (canvas, layout seed, variations).
        A photo is refused, saying what to upload instead: snapped, it would be coloured noise."""
        if not path:
            raise bad_input("no file was uploaded")
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
            raise bad_input(f"cannot use that file as a label map: {public_message(e, path)}") from None
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
            raise bad_input(str(e)) from None
        return to_data_url(random_layout(seed, self.size)), seed, no_variations()

    @staticmethod
    def new_seed() -> int:
        return random_seed(NUM_VARIATIONS)
