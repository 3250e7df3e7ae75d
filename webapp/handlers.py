"""``FacadeApp``: the model behind the page and the API, and the page's loaders as plain methods (unit tests
call them directly). Page and API share one path from a label map to facades: ``FacadeApp.draw``.

The page's own controller (``assets/js/controller.js``) owns the seed, the variations, the status line and
"the newest wins", and asks ``webapp.render``'s route for facades; the handlers here only put a label map on
the canvas (an example, a random layout, an upload). Each answers with a ``Reply``: the canvas, the layout-seed
box, the page's layout-seed state and the loaders' message line, each left as it is unless the handler sets it.
They never raise for bad input: a bad file or layout seed is said in the message line next to the loaders,
the canvas stays as it was, and the next good load clears the message. (A raised ``gr.Error`` would be a toast
in a corner of the page, far from the cause.)
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from pix2pix import Pix2Pix, check_seed, example_labels, example_photo
from pix2pix.batcher import Batcher
from pix2pix.images import NotALabelMapError, image_to_tensor, label_grid, label_to_tensor
from pix2pix.layout import random_layout
from pix2pix.parser import PhotoParser
from pix2pix.seeds import random_seed
from webapp.serving import encode_facade, facade_name, from_data_url, public_message, save_to_cache, to_data_url

NUM_VARIATIONS = 4
DEFAULT_MAX_BATCH_SIZE = 8


def bad_input(message: str) -> gr.Error:
    """The API's error for bad input: shown to the caller as it is, with no traceback logged."""
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


def sentence(error: Exception) -> str:
    """An error's message as the start of a sentence."""
    text = str(error)
    return text[:1].upper() + text[1:]


def message(text: str) -> str:
    """A message line's HTML (empty: no message, the line takes no room)."""
    return f'<p class="p2p-message" role="alert">{html.escape(text)}</p>' if text else ""


class Reply(tuple):
    """A loader's answer: one value per output of every loader event, in ``FIELDS`` order (the page wires the
    outputs in the same order); a field not given is left as it is on the page (``gr.skip()``).
    ``layout`` is the page's state: the seed of the random layout the canvas was loaded with, or None."""

    FIELDS = ("canvas", "layout_seed", "layout", "load_error")

    def __new__(cls, **fields: Any) -> Reply:
        unknown = set(fields) - set(cls.FIELDS)
        if unknown:
            raise TypeError(f"no such output: {sorted(unknown)}")
        return super().__new__(cls, tuple(fields[f] if f in fields else gr.skip() for f in cls.FIELDS))

    def __getattr__(self, name: str) -> Any:
        if name not in Reply.FIELDS:
            raise AttributeError(name)
        return self[Reply.FIELDS.index(name)]


@dataclass
class Drawn:
    """Facades of one label map: the pictures, their seeds, how long the caller waited, and the size of the
    largest shared forward they were part of."""

    images: list[Image.Image]
    seeds: list[int]
    seconds: float
    batch: int


@dataclass
class Rendered:
    """Facades of one label map served as files (the API's): their paths, seeds, time and batch size."""

    paths: list[str]
    seeds: list[int]
    seconds: float
    batch: int


class FacadeApp:
    """The model behind the page and the API. Each request is checked and converted in its own thread
    (a bad one gets its own message), then joins the shared forwards of ``pix2pix.batcher.Batcher``."""

    num_variations = NUM_VARIATIONS

    def __init__(self, model: Pix2Pix, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 cache_dir: str | os.PathLike | None = None, start_seed: int = 0):
        self.model = model
        self.size = model.image_size
        self.cache_dir = Path(cache_dir or gr.utils.get_upload_folder())
        self.batcher = Batcher(zero_gpu(self._forward), max_batch_size=max(1, int(max_batch_size)))
        self.examples = example_labels()
        # The facade parser reads an uploaded photo into a label map (None where it is not installed: a photo is
        # then refused, as before). Loading it only loads: some 3 MB, read once.
        try:
            self.parser: PhotoParser | None = PhotoParser.load()
        except FileNotFoundError:
            self.parser = None
        # "Start from a photo": the examples' own photos (test photos, read into label maps by the parser).
        photos = [example_photo(p) for p in self.examples]
        self.photo_examples = [p for p in photos if p.is_file()] if self.parser else []
        start = label_grid(self.examples[0] if self.examples else random_layout(0, self.size), self.size)[0]
        self.start_canvas = to_data_url(start)
        # The first facade is made once here, not on every page view.
        self.start_seed = start_seed
        first = self.render(image_to_tensor(start), start_seed, True)
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

    def draw(self, tensor, seed: int, stochastic: bool, count: int = 1) -> Drawn:
        """``count`` facades of one label map, from seeds seed..seed+count-1: the one path of every request
        that runs the model (the page's and the API's)."""
        seeds = [seed + i for i in range(count)]
        start = time.perf_counter()
        results = self.batcher.run([(tensor, s, bool(stochastic)) for s in seeds])
        seconds = time.perf_counter() - start
        return Drawn([image for image, _ in results], seeds, seconds, max(b for _, b in results))

    def render(self, tensor, seed: int, stochastic: bool, count: int = 1) -> Rendered:
        """``draw``, served as files in Gradio's cache (the API's answers), named by their seeds."""
        out = self.draw(tensor, seed, stochastic, count)
        paths = [save_to_cache(encode_facade(image), self.cache_dir, facade_name(s, stochastic))
                 for image, s in zip(out.images, out.seeds, strict=True)]
        return Rendered(paths, out.seeds, out.seconds, out.batch)

    def label(self, source: Any):
        """A label map (path, bytes, image) as the model's input tensor; ValueError for bad input."""
        try:
            return label_to_tensor(source, self.size)[0]
        except FileNotFoundError as e:
            raise ValueError(str(e)) from None

    # -- the page: loaders ----------------------------------------------------------------------------------
    def _load(self, grid: Image.Image, layout_seed: int | None, note: str = "") -> Reply:
        """A new label map on the canvas (the page's controller then draws its facade), the layout seed (None:
        not a random layout) in its box and the page's state, the message line cleared or a note in it."""
        return Reply(canvas=to_data_url(grid), layout_seed=layout_seed, layout=layout_seed, load_error=note)

    def load_example(self, evt: gr.SelectData) -> Reply:
        """An example from the gallery onto the canvas."""
        return self._load(label_grid(self.examples[evt.index], self.size)[0], None)

    def load_upload(self, path: str | None) -> Reply:
        """An uploaded label map onto the canvas, snapped to the palette. A photo is refused, saying what to
        upload instead: snapped, it would be coloured noise. The message goes next to the Upload button; the
        canvas stays as it was."""
        if not path:
            return Reply(load_error=message("No file was uploaded."))
        name = os.path.basename(path)
        try:
            grid, (width, height) = label_grid(path, self.size)
        except NotALabelMapError:
            if self.parser is not None:
                return self.load_photo(path, name)
            return Reply(load_error=message(
                f"{name}: this looks like a photo, not a label map. The model turns a label map into a photo, so "
                "upload a label map instead: a picture of flat areas in the 12 class colours of the swatches "
                "(facade, window, door, ...), like the examples; or paint one on the canvas."))
        except (ValueError, FileNotFoundError) as e:
            return Reply(load_error=message(f"Cannot use that file as a label map: {public_message(e, path)}"))
        note = ""
        if width != height:
            note = (f'<p class="p2p-note">{html.escape(name)} is {width}x{height}: it was stretched to '
                    f"{self.size}x{self.size}, as the facades data set's label maps were.</p>")
        return self._load(grid, None, note)

    def load_photo(self, source: Any, name: str) -> Reply:
        """A photo read into a label map on the canvas by the facade parser (``pix2pix.parser``): its windows,
        doors, shops ... as the parser's classes (``pix2pix.parser.AS_RECTANGLES`` says whether as rectangles) to
        repaint, with a note saying so (and when the photo was squeezed).
        The canvas takes it as any load: one Undo step brings back the map before."""
        try:
            parsed = self.parser.parse(source)
        except (ValueError, FileNotFoundError) as e:
            return Reply(load_error=message(f"Cannot read that photo: {public_message(e, str(source))}"))
        text = f"{name} looks like a photo: it was read into a label map. Paint over it to edit it; Undo goes back."
        if parsed.squeezed:
            text += f" The photo is {parsed.size[0]}x{parsed.size[1]}: it was squeezed to {self.size}x{self.size}."
        return self._load(parsed.labels, None, f'<p class="p2p-note">{html.escape(text)}</p>')

    def load_photo_example(self, evt: gr.SelectData) -> Reply:
        """A "start from a photo" example: its photo read into a label map on the canvas."""
        photo = self.photo_examples[evt.index]
        return self.load_photo(photo, photo.name)

    def random_layout(self) -> Reply:
        """Random layout: a new random layout onto the canvas, its seed in the layout-seed box."""
        seed = random_seed()
        return self._load(random_layout(seed, self.size), seed)

    def _holds(self, canvas: str, layout: int | None) -> bool:
        """Whether the canvas holds the random layout of seed ``layout``."""
        if layout is None:
            return False
        try:
            grid = np.asarray(label_grid(from_data_url(canvas), self.size)[0])
        except ValueError:
            return False
        return np.array_equal(grid, np.asarray(random_layout(layout, self.size).convert("RGB")))

    def layout_from_seed(self, value: Any, canvas: str, layout: int | None) -> Reply:
        """The random layout of the seed in the layout-seed box. A bad value is said next to the loaders, and
        the box shows the canvas's layout seed again: ``layout`` if the canvas still holds that layout (no
        stroke since), else nothing."""
        try:
            seed = check_seed(value, "layout seed")
        except ValueError as e:
            shown = layout if self._holds(canvas, layout) else None
            return Reply(layout_seed=shown, load_error=message(f"{sentence(e)}."))
        return self._load(random_layout(seed, self.size), seed)
