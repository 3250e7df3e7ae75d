"""``FacadeApp``: the model behind the page, and every handler of the page as a plain method (unit tests call
them directly). Page and API share one path from a label map to served facades: ``FacadeApp.render``.

Every page handler answers with a ``Reply``: the same outputs for every event (the canvas, the facade, the
status line, the seed box, the layout-seed box, the variations, the page's state, and the two message lines),
each left as it is unless the handler sets it. Page handlers never raise for bad input: a bad value is said
in the message line next to what caused it (the seed box, or the loaders), the box gets its last good value
back, and the next good action clears the message. (A raised ``gr.Error`` would be a toast in a corner of the
page, far from the cause, lingering and merging with the next one.)
"""

from __future__ import annotations

import html
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from pix2pix import MAX_SEED, Pix2Pix, check_seed, example_labels
from pix2pix.batcher import Batcher
from pix2pix.images import NotALabelMapError, image_to_tensor, label_grid, label_to_tensor
from pix2pix.layout import random_layout
from pix2pix.seeds import random_seed
from webapp.serving import encode_facade, facade_name, from_data_url, public_message, save_to_cache, to_data_url

NUM_VARIATIONS = 4
DEFAULT_MAX_BATCH_SIZE = 8
VARIATIONS_LABEL = "Variations of this layout"


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


def status_line(seconds: float, batch: int, seed: int, stochastic: bool, same: bool = False) -> str:
    """The line under the facade, in a visitor's words: which seed drew it, and how long it took."""
    took = f"drawn on the server in {seconds:.2f} s"
    if batch > 1:
        took += f", together with {batch - 1} other request{'s' if batch > 2 else ''}"
    what = f"Seed {seed}" if stochastic else "Variation off: the same facade for every seed"
    line = f"{what} · {took}"
    if same:
        line += (" · the same layout and seed always give this same facade: New seed draws another" if stochastic
                 else " · turn Vary with the seed on for other facades")
    return line


@dataclass(frozen=True)
class Shown:
    """What a page shows, kept per page (a ``gr.State``): the facade's seed (the last good seed, which a bad
    value in the seed box falls back to) and file, the seed of the random layout while the canvas holds it
    unchanged, and the variations as (file, seed) pairs."""

    seed: int = 0
    facade: str | None = None
    layout_seed: int | None = None
    variations: tuple[tuple[str, int], ...] = ()


class Reply(tuple):
    """A page handler's answer: one value per output of every page event, in ``FIELDS`` order (the page wires
    the outputs in the same order); a field not given is left as it is on the page (``gr.skip()``)."""

    FIELDS = ("canvas", "facade", "status", "seed", "layout_seed", "variations", "shown", "seed_error",
              "load_error")

    def __new__(cls, **fields: Any) -> Reply:
        unknown = set(fields) - set(cls.FIELDS)
        if unknown:
            raise TypeError(f"no such output: {sorted(unknown)}")
        return super().__new__(cls, tuple(fields[f] if f in fields else gr.skip() for f in cls.FIELDS))

    def __getattr__(self, name: str) -> Any:
        if name not in Reply.FIELDS:
            raise AttributeError(name)
        return self[Reply.FIELDS.index(name)]


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

    def start_shown(self, seed: int = 0) -> Shown:
        """What a fresh page shows (the first example's facade is seed 0's)."""
        return Shown(seed=seed, facade=self.start_facade if seed == 0 else None)

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
        every request that runs the model (the page's and the API's facades and variations)."""
        seeds = [seed + i for i in range(count)]
        start = time.perf_counter()
        results = self.batcher.run([(tensor, s, bool(stochastic)) for s in seeds])
        seconds = time.perf_counter() - start
        paths = [save_to_cache(encode_facade(image), self.cache_dir, facade_name(s, stochastic))
                 for (image, _), s in zip(results, seeds, strict=True)]
        return Rendered(paths, seeds, seconds, max(b for _, b in results))

    def label(self, source: Any):
        """A label map (path, bytes, image) as the model's input tensor; ValueError for bad input."""
        try:
            return label_to_tensor(source, self.size)[0]
        except FileNotFoundError as e:
            raise ValueError(str(e)) from None

    # -- the page: the facade -------------------------------------------------------------------------------
    def _facade(self, tensor, seed: int, stochastic: bool, shown: Shown, /, *, say_same: bool = False,
                **fields: Any) -> Reply:
        """The facade of ``seed`` on the page, its status line (``say_same``: saying so when it is the facade
        the page showed already), the state, both message lines cleared; ``fields`` set other outputs."""
        out = self.render(tensor, seed, stochastic)
        same = say_same and out.paths[0] == shown.facade
        return Reply(**{"facade": out.paths[0], "status": status_line(out.seconds, out.batch, seed, stochastic, same),
                        "shown": replace(shown, seed=seed, facade=out.paths[0]), "seed_error": "",
                        "load_error": "", **fields})

    def _canvas(self, canvas: str) -> tuple[Any, Reply | None]:
        """The canvas as the model's input, or a reply that says why it cannot be (only a page that was
        tampered with sends a bad canvas)."""
        try:
            return self.label(from_data_url(canvas)), None
        except ValueError as e:
            return None, Reply(status=f"Cannot read the canvas: {e}")

    @staticmethod
    def _seed(value: Any, shown: Shown) -> tuple[int, dict]:
        """The seed in the seed box, or the last good one with the box set back to it and the message said
        next to the box: (seed, outputs)."""
        try:
            return check_seed(value), {}
        except ValueError as e:
            return shown.seed, {"seed": shown.seed,
                                "seed_error": message(f"{sentence(e)}: the seed is back to {shown.seed}.")}

    def generate(self, canvas: str, seed: Any, stochastic: bool, shown: Shown) -> Reply:
        """Generate, and the variation switch: the canvas's facade for the seed in the box."""
        tensor, failed = self._canvas(canvas)
        if failed:
            return failed
        seed, fixed = self._seed(seed, shown)
        return self._facade(tensor, seed, stochastic, shown, say_same=True, **{"seed": seed, **fixed})

    def seed_typed(self, canvas: str, seed: Any, stochastic: bool, shown: Shown) -> Reply:
        """A keystroke or an arrow in the seed box: a valid new seed applies at once; anything else waits for
        the box to be left (a half-typed number is no error). The box is not written: the person is typing."""
        try:
            seed = check_seed(seed)
        except ValueError:
            return Reply()
        tensor, failed = self._canvas(canvas)
        if failed or seed == shown.seed:
            return failed or Reply()
        return self._facade(tensor, seed, stochastic, shown)

    def seed_entered(self, canvas: str, seed: Any, stochastic: bool, shown: Shown) -> Reply:
        """Enter in the seed box, or leaving it: a bad value is replaced by the last good seed, said next to
        the box; a new good one applies (one typed already applied is not drawn again)."""
        value, fixed = self._seed(seed, shown)
        if fixed:
            return Reply(**fixed)
        if value == shown.seed:
            return Reply()  # the box shows it already; writing it could overwrite a newer seed (New seed)
        return self.generate(canvas, value, stochastic, shown)

    def new_seed(self, canvas: str, stochastic: bool, shown: Shown) -> Reply:
        """New seed: a random seed (with room for the variations after it), and its facade."""
        return self.generate(canvas, random_seed(NUM_VARIATIONS), stochastic, shown)

    def paint(self, canvas: str, seed: Any, stochastic: bool, shown: Shown, evt: gr.EventData = None,
              request: gr.Request = None) -> Reply:
        """A canvas update (live during a stroke, or final): its facade, and the layout seed and the variations,
        which described the layout before the stroke, are cleared. Updates carry the page's running number;
        one that a newer update of the same page overtook answers nothing, so the newest wins."""
        version = (getattr(evt, "_data", None) or {}).get("version") if evt is not None else None
        page = getattr(request, "session_hash", None)
        self.versions.note(page, version)
        tensor, failed = self._canvas(canvas)
        if failed:
            return failed
        seed, _ = self._seed(seed, shown)  # a bad value in the box is dealt with when the box is left
        cleared = replace(shown, layout_seed=None, variations=())
        reply = self._facade(tensor, seed, stochastic, cleared, layout_seed=None, variations=no_variations())
        return Reply() if self.versions.overtaken(page, version) else reply

    # -- the page: variations -------------------------------------------------------------------------------
    def variations(self, canvas: str, seed: Any, stochastic: bool, shown: Shown) -> Reply:
        """Four facades from seeds seed..seed+3, captioned with their seeds; the facade stays as it is."""
        tensor, failed = self._canvas(canvas)
        if failed:
            return failed
        seed, fixed = self._seed(seed, shown)
        seed = min(seed, MAX_SEED - NUM_VARIATIONS + 1)
        out = self.render(tensor, seed, stochastic, NUM_VARIATIONS)
        if stochastic:
            label = f"Seeds {out.seeds[0]} to {out.seeds[-1]}"
        else:
            label = "Variation off: all four are the same"
        captions = [f"seed {s}" if stochastic else "any seed" for s in out.seeds]
        gallery = gr.update(value=list(zip(out.paths, captions, strict=True)), label=label)
        pairs = tuple(zip(out.paths, out.seeds, strict=True)) if stochastic else ()
        return Reply(**{"variations": gallery, "shown": replace(shown, variations=pairs), "seed_error": "",
                        "load_error": "", "seed": seed, **fixed})

    def pick_variation(self, shown: Shown, evt: gr.SelectData) -> Reply:
        """A click on a variation: it becomes the facade (the very image, no new forward) and its seed the seed."""
        if not 0 <= evt.index < len(shown.variations):
            return Reply()
        path, seed = shown.variations[evt.index]
        return Reply(facade=path, seed=seed, status=f"Seed {seed} · picked from the variations",
                     shown=replace(shown, seed=seed, facade=path), seed_error="", load_error="")

    # -- the page: loaders ----------------------------------------------------------------------------------
    def _load(self, grid: Image.Image, stochastic: bool, shown: Shown, layout_seed: int | None,
              note: str = "") -> Reply:
        """A new label map on the canvas and its facade at the page's seed, in one answer."""
        cleared = replace(shown, layout_seed=layout_seed, variations=())
        return self._facade(image_to_tensor(grid), shown.seed, stochastic, cleared, canvas=to_data_url(grid),
                            layout_seed=layout_seed, variations=no_variations(), load_error=note)

    def load_example(self, stochastic: bool, shown: Shown, evt: gr.SelectData) -> Reply:
        """An example from the gallery onto the canvas, and its facade."""
        return self._load(label_grid(self.examples[evt.index], self.size)[0], stochastic, shown, None)

    def load_upload(self, path: str | None, stochastic: bool, shown: Shown) -> Reply:
        """An uploaded label map onto the canvas, snapped to the palette, and its facade. A photo is refused,
        saying what to upload instead: snapped, it would be coloured noise. The message goes next to the
        Upload button; the canvas stays as it was."""
        if not path:
            return Reply(load_error=message("No file was uploaded."))
        name = os.path.basename(path)
        try:
            grid, (width, height) = label_grid(path, self.size)
        except NotALabelMapError:
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
        return self._load(grid, stochastic, shown, None, note)

    def random_layout(self, stochastic: bool, shown: Shown) -> Reply:
        """Random layout: a new random layout, its seed in the layout-seed box, and its facade."""
        seed = random_seed()
        return self._load(random_layout(seed, self.size), stochastic, shown, seed)

    def layout_from_seed(self, value: Any, stochastic: bool, shown: Shown) -> Reply:
        """The random layout of the seed in the layout-seed box, and its facade. A bad value is said next to the
        box, and the box shows the canvas's layout seed again (empty when the canvas is not a random layout)."""
        try:
            seed = check_seed(value, "layout seed")
        except ValueError as e:
            return Reply(layout_seed=shown.layout_seed, load_error=message(f"{sentence(e)}."))
        return self._load(random_layout(seed, self.size), stochastic, shown, seed)
