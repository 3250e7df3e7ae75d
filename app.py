"""facade-pix2pix in the browser: paint a CMP facade label map, watch the facade follow as you draw.

    python app.py [--weights W] [--device D] [--precision P] [--host H] [--port P] [--share] [--max-batch-size N]

A thin Gradio layer over the ``pix2pix`` library, which owns the model, the palette, image decoding,
seeds and layouts. The page is declared once in ``build_demo``; every event handler is a plain method of
``FacadeApp`` (unit tests call them directly). The label-map canvas is our own (``assets/canvas/``: a
``gr.HTML`` with a template, CSS and ``js_on_load``): it paints on the model's 256x256 grid, and sends the
grid as a PNG data URL of a few KB with each update, so nothing is uploaded and nothing piles up on disk.

Offline and private by default: no analytics (set GRADIO_ANALYTICS_ENABLED=True to opt in), binds
127.0.0.1, no share link unless ``--share``.

API (``gradio_client``), all on the queue, concurrent calls batched into shared forwards:
    /generate       (label image, seed, stochastic) -> facade
    /variations     (label image, seed, stochastic) -> 4 facades
    /random_layout  (seed) -> label map
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import io
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Analytics stay off unless the user opts in through the environment (read when gradio is imported).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402
from PIL import Image  # noqa: E402

from pix2pix import CLASSES, MAX_SEED, Pix2Pix, WeightsNotFoundError, check_seed, example_labels  # noqa: E402
from pix2pix.batcher import Batcher  # noqa: E402
from pix2pix.fast import PRECISION_HELP, PRECISIONS  # noqa: E402
from pix2pix.images import image_to_tensor, label_grid  # noqa: E402
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

CSS = """
#facade img {width: 100%; height: 100%; object-fit: contain;}
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
        return default, f" · ⚠️ {e}; using {default}"


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
    (a bad one gets its own message), then joins the shared forwards of ``pix2pix.batcher.Batcher``."""

    def __init__(self, model: Pix2Pix, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE):
        self.model = model
        self.size = model.image_size
        self.batcher = Batcher(_zero_gpu(self._forward), max_batch_size=max(1, int(max_batch_size)))
        self.versions = Versions()
        self.examples = example_labels()
        start = label_grid(self.examples[0] if self.examples else random_layout(0, self.size), self.size)[0]
        self.start_canvas = to_data_url(start)
        # The first facade is made once here, not on every page view.
        self.start_facade, self.start_seconds, _ = self.facades([image_to_tensor(start)], [0], True)

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

    def label(self, source: Any):
        """A label map (path, bytes, image) as the model's input tensor; ValueError for bad input."""
        try:
            grid, _ = label_grid(source, self.size)
        except FileNotFoundError as e:
            raise ValueError(str(e)) from None
        return image_to_tensor(grid)

    # -- the page -------------------------------------------------------------------------------------------
    def generate(self, canvas: str, seed: Any, stochastic: bool, last_seed: int):
        """Generate button, seed box, stochastic box, and after a new layout: (facade, status, seed, last seed)."""
        try:
            tensor = self.label(from_data_url(canvas))
        except ValueError as e:
            raise _error(str(e)) from None
        seed, note = seed_or_default(seed, last_seed)
        [image], seconds, batch = self.facades([tensor], [seed], stochastic)
        return image, status_line(seconds, batch, seed, stochastic, note), seed, seed

    def paint(self, canvas: str, seed: Any, stochastic: bool, last_seed: int, evt: gr.EventData = None,
              request: gr.Request = None):
        """A canvas update (live during a stroke, or final): ``generate``, and the layout seed and the variations,
        which described the layout before the stroke, are cleared. Updates carry the page's running number;
        one that a newer update of the same page overtook answers nothing (``gr.skip``), so the newest wins."""
        version = (getattr(evt, "_data", None) or {}).get("version") if evt is not None else None
        page = getattr(request, "session_hash", None)
        self.versions.note(page, version)
        result = (*self.generate(canvas, seed, stochastic, last_seed), None, None)
        if self.versions.overtaken(page, version):
            return tuple(gr.skip() for _ in result)
        return result

    def variations(self, canvas: str, seed: Any, stochastic: bool, last_seed: int):
        """Four facades from seeds seed..seed+3: (gallery, status, seed, last seed)."""
        try:
            tensor = self.label(from_data_url(canvas))
        except ValueError as e:
            raise _error(str(e)) from None
        seed, note = seed_or_default(seed, last_seed)
        seed = min(seed, MAX_SEED - NUM_VARIATIONS + 1)
        seeds = [seed + i for i in range(NUM_VARIATIONS)]
        images, seconds, batch = self.facades([tensor] * NUM_VARIATIONS, seeds, stochastic)
        gallery = [(image, f"seed {s}" if stochastic else "dropout off") for image, s in zip(images, seeds)]
        if not stochastic:
            note += " · turn stochastic on for different variations"
        return gallery, status_line(seconds, batch, seed, stochastic, note), seed, seed

    def load_example(self, evt: gr.SelectData):
        """An example from the gallery onto the canvas: (canvas, layout seed, variations)."""
        return to_data_url(label_grid(self.examples[evt.index], self.size)[0]), None, None

    def load_upload(self, path: str | None):
        """An uploaded label map onto the canvas, snapped to the palette: (canvas, layout seed, variations)."""
        if not path:
            raise _error("no file was uploaded")
        try:
            grid, (width, height) = label_grid(path, self.size)
        except (ValueError, FileNotFoundError) as e:
            raise _error(f"cannot use that file as a label map: {public_message(e, path)}") from None
        if width != height:
            gr.Info(f"The label map is {width}x{height}: it was stretched to {self.size}x{self.size}, as the "
                    "facades data set's label maps were.")
        return to_data_url(grid), None, None

    def random_layout(self):
        """🎲: a new random layout and its seed: (canvas, layout seed, variations)."""
        seed = random_seed()
        return to_data_url(random_layout(seed, self.size)), seed, None

    def layout_from_seed(self, seed: Any):
        """The random layout of the seed in the layout-seed box: (canvas, layout seed, variations)."""
        try:
            seed = check_seed(seed, "layout seed")
        except ValueError as e:
            raise _error(str(e)) from None
        return to_data_url(random_layout(seed, self.size)), seed, None

    @staticmethod
    def new_seed() -> int:
        return random_seed(NUM_VARIATIONS)

    # -- the API --------------------------------------------------------------------------------------------
    def api_generate(self, label: Any, seed: Any, stochastic: bool) -> Image.Image:
        try:
            tensor = self.label(payload_source(label))
            seed = check_seed(seed)
        except ValueError as e:
            raise _error(public_message(e, label)) from None
        [image], _, _ = self.facades([tensor], [seed], stochastic)
        return image

    def api_variations(self, label: Any, seed: Any, stochastic: bool) -> list[tuple[Image.Image, str]]:
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
        return [(image, f"seed {s}") for image, s in zip(images, seeds)]

    def api_random_layout(self, seed: Any) -> Image.Image:
        try:
            return random_layout(check_seed(seed, "layout seed"), self.size)
        except ValueError as e:
            raise _error(str(e)) from None


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
    page's own values (``keep_in_cache``). Emptied hash folders go too.
    """
    keep = set().union(*(getattr(block, "keep_in_cache", ()) for block in list(demo.blocks.values())))
    now, removed = time.time(), 0
    for files in list(demo.temp_file_sets):
        gone = set()
        for path in list(files):
            if path in keep:
                continue
            try:
                if now - os.lstat(path).st_ctime > max_age_s:
                    os.remove(path)
                    gone.add(path)
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.dirname(path))  # only if empty
            except FileNotFoundError:
                gone.add(path)
        files.difference_update(gone)
        removed += len(gone)
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
    launch with ``demo.launch(server_name=..., server_port=..., **LAUNCH_KWARGS)`` (see ``main``)."""
    app = FacadeApp(model, max_batch_size)
    with gr.Blocks(title=TITLE, analytics_enabled=_analytics_enabled(),
                   delete_cache=delete_cache(cache_max_age)) as demo:
        gr.Markdown(f"# 🏛️ {TITLE}\nPaint a facade label map on the left, class by class; the pix2pix U-Net "
                    "redraws the facade while you paint. Hover a button to see its shortcut.")
        last_seed = gr.State(initial_seed)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=360):
                canvas = canvas_component(app)
                with gr.Row():
                    random_btn = gr.Button("🎲 Random layout", variant="secondary", elem_id="random-layout")
                    layout_seed = gr.Number(label="Layout seed", value=None, precision=0, elem_id="layout-seed",
                                            min_width=120)
                    upload_btn = gr.UploadButton("📂 Upload a label map", file_types=["image"], type="filepath",
                                                 elem_id="upload")
                gallery = gr.Gallery(value=[(str(p), p.stem.split("_", 1)[-1]) for p in app.examples],
                                     label="Examples (click to load)", columns=4, height=300, allow_preview=False,
                                     object_fit="contain", format="png", elem_id="examples")
            with gr.Column(scale=1, min_width=360):
                facade = gr.Image(value=app.start_facade[0], label="Generated facade", type="pil", format="png",
                                  interactive=False, height=560, elem_id="facade", buttons=["download", "fullscreen"])
                status = gr.Markdown(status_line(app.start_seconds, 1, initial_seed, True), elem_id="status")
                with gr.Row():
                    seed = gr.Number(label="Seed", value=initial_seed, precision=0, elem_id="seed", min_width=120)
                    seed_btn = gr.Button("🎲 New seed", elem_id="new-seed")
                    stochastic = gr.Checkbox(label="stochastic (dropout on)", value=True, elem_id="stochastic")
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                    variations_btn = gr.Button(f"{NUM_VARIATIONS} variations", elem_id="variations-btn")
                variations = gr.Gallery(label="Variations (same layout, seeds seed..seed+3)", columns=NUM_VARIATIONS,
                                        height="auto", format="png", elem_id="variations")
                gr.Markdown("Same layout + same seed = same image. With stochastic off, dropout is off and the seed "
                            "does not matter. Use the ↓ button on the image to download it.")
        # Hidden inputs and outputs of the API endpoints, which take a plain label image.
        with gr.Row(visible=False):
            api_label = gr.Image(label="label map", type="filepath", image_mode=None, format="png")
            api_seed = gr.Number(label="seed", value=0, precision=0)
            api_stochastic = gr.Checkbox(label="stochastic", value=True)
            api_out = gr.Image(label="facade", format="png")
            api_gallery = gr.Gallery(label="facades", format="png")
            api_layout = gr.Image(label="label map", format="png")
            api_btn, api_var_btn, api_layout_btn = gr.Button("g"), gr.Button("v"), gr.Button("r")

        # ---- events ---------------------------------------------------------------------------------------
        # Every model event shares one concurrency group: up to 2 x max_batch_size requests are converted in
        # parallel threads, and their forwards are batched by the app's Batcher.
        model_queue = dict(concurrency_limit=2 * max(1, max_batch_size), concurrency_id=MODEL_QUEUE,
                           api_visibility="private")
        page_in, page_out = [canvas, seed, stochastic, last_seed], [facade, status, seed, last_seed]
        # The page's events keep names of their own: /generate and /variations are the API's.
        generate = dict(fn=app.generate, inputs=page_in, outputs=page_out, show_progress="hidden",
                        api_name="page_generate", **model_queue)
        # Live updates during a stroke: "once", at most one in flight per page. The final canvas of a stroke or an
        # edit: at once ("always_last" among its kind). FacadeApp.paint lets only the newest canvas answer.
        painted = [*page_out, layout_seed, variations]
        canvas.input(app.paint, page_in, painted, trigger_mode="once", show_progress="hidden",
                     api_name="page_paint_live", **model_queue)
        canvas.submit(app.paint, page_in, painted, trigger_mode="always_last", show_progress="hidden",
                      api_name="page_paint", **model_queue)
        gr.on([generate_btn.click, stochastic.input, seed.submit], trigger_mode="always_last", **generate)
        seed_btn.click(app.new_seed, outputs=seed, queue=False, api_visibility="private").then(**generate)
        variations_btn.click(app.variations, page_in, [variations, status, seed, last_seed], api_name="page_variations",
                             **model_queue)
        loaded = [canvas, layout_seed, variations]
        gallery.select(app.load_example, None, loaded, queue=False, api_visibility="private").then(**generate)
        upload_btn.upload(app.load_upload, upload_btn, loaded, api_visibility="private").then(**generate)
        random_btn.click(app.random_layout, None, loaded, queue=False, api_name="page_random_layout",
                         api_visibility="private").then(**generate)
        layout_seed.submit(app.layout_from_seed, layout_seed, loaded, api_name="page_layout",
                           api_visibility="private").then(**generate)

        api_queue = dict(concurrency_limit=2 * max(1, max_batch_size), concurrency_id=MODEL_QUEUE)
        api_btn.click(app.api_generate, [api_label, api_seed, api_stochastic], api_out, api_name="generate",
                      preprocess=False, **api_queue)
        api_var_btn.click(app.api_variations, [api_label, api_seed, api_stochastic], api_gallery,
                          api_name="variations", preprocess=False, **api_queue)
        api_layout_btn.click(app.api_random_layout, layout_seed, api_layout, api_name="random_layout")
    demo.queue(max_size=64)
    demo.app_state = app  # for tests and benchmarks: the handlers and the batcher behind this page
    return demo


LAUNCH_KWARGS = dict(css=CSS, max_file_size=MAX_FILE_SIZE, run_history=False)


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
    parser.add_argument("--cache-max-age", type=float, default=CACHE_MAX_AGE_MINUTES, metavar="MINUTES",
                        help=f"delete uploads and served images older than this (default {CACHE_MAX_AGE_MINUTES:g})")
    args = parser.parse_args(argv)
    if args.max_batch_size < 1 or args.cache_max_age <= 0:
        parser.error("--max-batch-size must be at least 1 and --cache-max-age above 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
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
    print(f"facade-pix2pix on {demo.local_url} (model on {model.device}, {model.precision}; Ctrl+C to stop)", flush=True)
    if demo.share_url:
        print(f"public link: {demo.share_url}", flush=True)
    elif args.host in ("127.0.0.1", "localhost", "::1"):
        print("private: only this machine can connect; --host 0.0.0.0 serves the network, --share a public link",
              flush=True)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
