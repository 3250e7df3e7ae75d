"""The page: its layout and CSS, the label-map canvas, and which event runs which handler (``build_demo``).

The label-map canvas is our own (``assets/canvas/``: a ``gr.HTML`` with a template, CSS and ``js_on_load``):
it paints on the model's 256x256 grid, and sends the grid as a PNG data URL of a few KB with each update, so
nothing is uploaded and nothing piles up on disk. ``assets/canvas/page.js`` is the rest of the page's own
script: the busy state and the PNG downloads; it starts the page's controller (``assets/js/controller.js``),
which owns the seed, the variations and the status line and draws every facade (on the server through
``webapp.render``'s route, or in the browser). The Gradio events here are the loaders only.

Four areas, laid out by ``CSS`` (a grid over Gradio's row):
- a desktop (over 1000 px wide): the canvas with its loaders (examples, random layout, upload) under it, the
  facade with its seed controls, and the variations, side by side; the canvas and the facade are sized to the
  window's height, so that all of it is on the first screen and no action changes anything out of view;
- a phone (640 px or narrower): the canvas, then the facade right under it (both fit one phone screen, so
  the live preview is in view while painting), then the seed controls, the variations and the loaders;
- in between: the canvas and the facade side by side, the loaders and the variations under them.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from pix2pix import CLASSES, Pix2Pix
from pix2pix.assets import ASSETS_DIR
from pix2pix.palette import BACKGROUND, class_index, hex_colors
from webapp import analytics_enabled
from webapp.api import add_endpoints
from webapp.browser import BrowserModel, launch_app_kwargs
from webapp.cache import CACHE_MAX_AGE_MINUTES, delete_cache
from webapp.handlers import DEFAULT_MAX_BATCH_SIZE, NUM_VARIATIONS, FacadeApp, Reply

TITLE = "facade-pix2pix"
#: Uploads above this many bytes are refused by the server before they reach the app.
MAX_FILE_SIZE = "25mb"
MODEL_QUEUE = "model"  # one concurrency group for every event that runs the model
ASSETS = ASSETS_DIR / "canvas"  # the repository's assets/, or the copy an installed wheel carries
#: Keyboard keys of the 12 classes, in palette order (shown on the swatches' hover).
CLASS_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "-", "=")
BRUSH_SIZES = ({"name": "Small", "label": "S", "px": 3, "key": "["},
               {"name": "Medium", "label": "M", "px": 8, "key": "[ ]"},
               {"name": "Large", "label": "L", "px": 20, "key": "]"})
INTRO = (f"# {TITLE}\n"
         "Paint a facade label map, class by class, and the pix2pix model draws the facade as you paint. "
         "Start from an example, a random layout, your own label map or a photo of a building.")
SEED_HELP = ("A **seed** picks one of the many facades the model can draw for a layout: the same layout and seed "
             "always give the same facade. **Vary with the seed** off: one facade, whatever the seed.")

#: The page's own layout rules (assets/canvas/page.css; the canvas has its own, canvas.css), in the page's
#: <head> as they are: Gradio's ``css=`` would prefix every selector with its container, and these reach above it.
CSS = (ASSETS / "page.css").read_text()


def launch_kwargs() -> dict:
    """What ``demo.launch`` needs besides the address: the page's CSS and script, the upload limit, no run
    history, and the routes and headers of drawing in the browser (``webapp.browser``; new for each launch)."""
    return dict(head=f"<style>{CSS}</style>", js=(ASSETS / "page.js").read_text(), max_file_size=MAX_FILE_SIZE,
                run_history=False, app_kwargs=launch_app_kwargs())


def canvas_component(app: FacadeApp) -> gr.HTML:
    """Our label-map canvas: template, CSS and script from ``assets/canvas/``, the palette as its props."""
    classes = [{"name": name, "color": colour, "key": key}
               for (name, _), colour, key in zip(CLASSES, hex_colors(), CLASS_KEYS, strict=True)]
    return gr.HTML(
        value=app.start_canvas,
        html_template=(ASSETS / "canvas.html").read_text(),
        css_template=(ASSETS / "canvas.css").read_text(),
        js_on_load=(ASSETS / "canvas.js").read_text(),
        elem_id="canvas",
        apply_default_css=False,
        size=app.size,
        classes=classes,
        sizes=list(BRUSH_SIZES),
        background=BACKGROUND,
        plain=class_index("facade"),
        start_class=class_index("window"),
    )


@dataclass
class Widgets:
    """The page's components that the loaders read or write; ``outputs`` are those every loader answers, in
    the order of ``webapp.handlers.Reply.FIELDS``. The rest of the page is the controller's (page.js)."""

    canvas: gr.HTML
    layout_seed: gr.Number
    layout: gr.State
    load_error: gr.HTML
    random_btn: gr.Button
    upload_btn: gr.UploadButton
    examples: gr.Gallery
    photos: gr.Gallery | None  # "start from a photo" (None where the app has no facade parser)

    @property
    def outputs(self) -> list:
        return [getattr(self, name) for name in Reply.FIELDS]


def _paint_area(app: FacadeApp) -> tuple:
    """The canvas, and under it what fills it: the loaders and the examples, with their message line."""
    with gr.Column(elem_id="paint", min_width=0):
        canvas = canvas_component(app)
    with gr.Column(elem_id="loaders", min_width=0):
        with gr.Row(elem_id="loader-row"):
            random_btn = gr.Button("Random layout", size="md", elem_id="random-layout", min_width=0)
            layout_seed = gr.Number(value=None, precision=0, elem_id="layout-seed", show_label=False,
                                    label="Layout seed", placeholder="seed", min_width=0, container=False)
            upload_btn = gr.UploadButton("Upload a label map", file_types=["image"], type="filepath", size="md",
                                         elem_id="upload", min_width=0)
        load_error = gr.HTML("", elem_id="load-error")
        examples = gr.Gallery(value=[(str(p), p.stem.split("_", 1)[-1]) for p in app.examples],
                              label="Examples: click one to load it", columns=8, height="auto", allow_preview=False,
                              object_fit="contain", format="png", elem_id="examples", min_width=0, buttons=[])
    return canvas, random_btn, layout_seed, upload_btn, load_error, examples


def _result_area(app: FacadeApp, initial_seed: int) -> None:
    """The facade, its status line and the line under it (which renderer draws: the controller fills both;
    their room is kept from the start, so nothing moves when they are written), and the seed's controls."""
    with gr.Column(elem_id="result", min_width=0):
        gr.Image(value=app.start_facade, label="Facade", type="filepath", interactive=False, elem_id="facade",
                 buttons=["fullscreen"], min_width=0)
        gr.HTML('<div id="status" aria-live="polite"></div><p id="backend" aria-live="polite"></p>',
                elem_id="lines", padding=False)
        with gr.Row(elem_id="seed-row"):
            gr.Number(label="Seed", value=initial_seed, precision=0, elem_id="seed", min_width=0, container=False)
            gr.Button("New seed", size="md", elem_id="new-seed", min_width=0)
            gr.Button("Generate", variant="primary", size="md", elem_id="generate", min_width=0)
        gr.HTML("", elem_id="seed-error")
        gr.Checkbox(label="Vary with the seed", value=True, elem_id="stochastic", min_width=0, container=False)
        gr.Markdown(SEED_HELP, elem_id="seed-help")
        gr.Button("Save facade (PNG)", size="md", elem_id="save-facade", min_width=0)


def _variations_area(app: FacadeApp) -> gr.Gallery | None:
    """The variations: their button, the four (the controller puts them in #variations), how to use them; under
    them "start from a photo" (where the app has a facade parser): the canvas's column has no room left for it on
    a desktop's first screen, this one has."""
    with gr.Column(elem_id="more", min_width=0):
        gr.Button(f"{NUM_VARIATIONS} variations", size="md", elem_id="variations-btn", min_width=0)
        gr.HTML("", elem_id="variations", padding=False)
        gr.Markdown("Four seeds from the seed on. Click one to make it the facade, and its seed the seed.",
                    elem_id="variations-help")
        gr.Button(f"Save the {NUM_VARIATIONS} (PNG)", size="md", elem_id="save-variations", min_width=0)
        if not app.photo_examples:
            return None
        return gr.Gallery(value=[(str(p), p.stem.split("_")[1]) for p in app.photo_examples],
                          label="Start from a photo: click one",
                          columns=4, height="auto", allow_preview=False, object_fit="cover", format="jpeg",
                          elem_id="photo-examples", min_width=0, buttons=[])


def _layout(app: FacadeApp, initial_seed: int) -> Widgets:
    """The title, then the four areas (see the module's docstring for where each goes)."""
    gr.Markdown(INTRO, elem_id="intro")
    layout = gr.State(None)
    with gr.Row(elem_id="workspace", equal_height=False):
        canvas, random_btn, layout_seed, upload_btn, load_error, examples = _paint_area(app)
        _result_area(app, initial_seed)
        photos = _variations_area(app)
    return Widgets(canvas, layout_seed, layout, load_error, random_btn, upload_btn, examples, photos)


def _busy(target: str, inputs: int) -> dict:
    """An event's browser-side start: ``target`` (the facade or the variations) shows it is busy at once, before
    the request leaves; the inputs go on unchanged. See ``_wire`` for the end."""
    return dict(js=f"(...a) => {{ window.p2pBusy && window.p2pBusy('{target}'); return a.slice(0, {inputs}); }}")


def _wire(demo: gr.Blocks, app: FacadeApp, w: Widgets, model_queue: dict) -> None:
    """Which event runs which handler: the loaders, which put a label map on the canvas (one request each; the
    controller then draws its facade). Each hides Gradio's progress overlay (the page has its own busy state:
    ``_busy``, and page.js) and keeps a name of its own (the API's are /generate, /variations, /random_layout).
    One that fails (a photo, a bad layout seed) leaves the canvas as it was and says why next to the loaders."""
    quiet = dict(show_progress="hidden", api_visibility="private")
    queue = dict(**quiet, **model_queue)

    def on(triggers: list, fn, inputs: list, name: str) -> None:
        event = gr.on(triggers, fn, inputs, w.outputs, api_name=name, **_busy("facade", len(inputs)), **queue)
        event.then(None, js="() => window.p2pDone && window.p2pDone('facade')", queue=False, **quiet)

    on([w.examples.select], app.load_example, [], "page_example")
    if w.photos is not None:
        on([w.photos.select], app.load_photo_example, [], "page_photo_example")
    on([w.upload_btn.upload], app.load_upload, [w.upload_btn], "page_upload")
    on([w.random_btn.click], app.random_layout, [], "page_random_layout")
    on([w.layout_seed.submit], app.layout_from_seed, [w.layout_seed, w.canvas, w.layout], "page_layout")
    # The canvas opens on an example, not a random layout: the layout seed box is empty (Gradio's number box
    # shows 0 for an empty first value, so it is emptied in the browser once the page is up; no request).
    demo.load(None, None, w.layout_seed, js="() => null", queue=False, **quiet)


def build_demo(model: Pix2Pix, *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, initial_seed: int = 0,
               cache_max_age: float = CACHE_MAX_AGE_MINUTES) -> gr.Blocks:
    """The page and the API around a loaded model (``max_batch_size`` 1 turns batching off), its queue set up;
    launch with ``demo.launch(server_name=..., server_port=..., **launch_kwargs())`` (see ``app.main``, which also
    starts the cache cleaner). The generator is exported for the page's browser mode here (``webapp.browser``;
    built once and cached).

    Every model event, the page's and the API's, shares one concurrency group: up to 2 x max_batch_size
    requests are converted in parallel threads, and their forwards are batched by the app's Batcher."""
    app = FacadeApp(model, max_batch_size, start_seed=initial_seed)
    model_queue = dict(concurrency_limit=2 * max(1, max_batch_size), concurrency_id=MODEL_QUEUE)
    with gr.Blocks(title=TITLE, analytics_enabled=analytics_enabled(), fill_width=True,
                   delete_cache=delete_cache(cache_max_age)) as demo:
        widgets = _layout(app, initial_seed)
        add_endpoints(app, model_queue)
        _wire(demo, app, widgets, model_queue)
    demo.queue(max_size=64)
    demo.app_state = app  # for tests and benchmarks: the handlers and the batcher behind this page
    demo.p2p_browser = BrowserModel.of(model)  # the ONNX file webapp.browser's routes serve
    return demo
