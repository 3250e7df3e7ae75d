"""The page: its layout and CSS, the label-map canvas, and which event runs which handler (``build_demo``).

The label-map canvas is our own (``assets/canvas/``: a ``gr.HTML`` with a template, CSS and ``js_on_load``):
it paints on the model's 256x256 grid, and sends the grid as a PNG data URL of a few KB with each update, so
nothing is uploaded and nothing piles up on disk.

The page reflows for phones: the canvas, then the facade right under it (both fit one phone screen, so the
live preview is in view while painting), then the loaders and the seed controls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from pix2pix import CLASSES, Pix2Pix
from pix2pix.palette import BACKGROUND, class_index, hex_colors
from webapp import analytics_enabled
from webapp.api import add_endpoints
from webapp.cache import CACHE_MAX_AGE_MINUTES, delete_cache
from webapp.handlers import DEFAULT_MAX_BATCH_SIZE, NUM_VARIATIONS, VARIATIONS_LABEL, FacadeApp, status_line

TITLE = "facade-pix2pix"
#: Uploads above this many bytes are refused by the server before they reach the app.
MAX_FILE_SIZE = "25mb"
MODEL_QUEUE = "model"  # one concurrency group for every event that runs the model
CANVAS_DIR = Path(__file__).resolve().parent.parent / "assets" / "canvas"
#: Keyboard keys of the 12 classes, in palette order (shown on the swatches' hover).
CLASS_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "-", "=")
BRUSH_SIZES = ({"name": "Small", "label": "S", "px": 3, "key": "["},
               {"name": "Medium", "label": "M", "px": 8, "key": "[ ]"},
               {"name": "Large", "label": "L", "px": 20, "key": "]"})
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
#:   board and the gaps take on a 390x844 phone), and the facade is in view while painting.
CSS = """
#canvas .html-container { padding: 0; }
#facade { height: auto !important; }
#facade .image-container, #facade .image-frame { height: auto !important; }
#facade .image-container > button, #facade .image-frame { width: 100%; justify-content: center; }
#facade img {
  display: block; width: 100%; height: auto; aspect-ratio: 1 / 1; object-fit: contain; margin: 0 auto;
}
#examples .grid-container, #variations .grid-container {
  grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr));
}
@media (max-width: 900px) { #examples .grid-container { grid-template-columns: repeat(4, minmax(0, 1fr)); } }
#examples .grid-wrap, #variations .grid-wrap {
  min-height: 0 !important; max-height: none !important; overflow-y: visible; padding-top: 30px;
}
#examples .thumbnail-item, #variations .thumbnail-item {
  aspect-ratio: auto; height: auto; display: flex; flex-direction: column;
}
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
#: What ``demo.launch`` needs besides the address: the page's CSS, the upload limit, no run history.
LAUNCH_KWARGS = dict(head=f"<style>{CSS}</style>", max_file_size=MAX_FILE_SIZE, run_history=False)


def canvas_component(app: FacadeApp) -> gr.HTML:
    """Our label-map canvas: template, CSS and script from ``assets/canvas/``, the palette as its props."""
    classes = [{"name": name, "color": colour, "key": key}
               for (name, _), colour, key in zip(CLASSES, hex_colors(), CLASS_KEYS, strict=True)]
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


@dataclass
class Widgets:
    """The page's components that events read or write."""

    canvas: gr.HTML
    facade: gr.Image
    status: gr.Markdown
    seed: gr.Number
    last_seed: gr.State
    seed_btn: gr.Button
    stochastic: gr.Checkbox
    generate_btn: gr.Button
    variations_btn: gr.Button
    variations: gr.Gallery
    random_btn: gr.Button
    layout_seed: gr.Number
    upload_btn: gr.UploadButton
    examples: gr.Gallery


def _layout(app: FacadeApp, initial_seed: int) -> Widgets:
    """A row of two columns, the canvas and the facade (with the seed controls and variations under it), then
    the loaders and the examples. On a wide screen the canvas is on the left and the facade on the right;
    on a phone the columns stack, so the facade comes right under the canvas."""
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
        upload_btn = gr.UploadButton("Upload a label map", file_types=["image"], type="filepath", elem_id="upload")
    examples = gr.Gallery(value=[(str(p), p.stem.split("_", 1)[-1]) for p in app.examples],
                          label="Examples (click one to load it)", columns=8, height="auto",
                          allow_preview=False, object_fit="contain", format="png", elem_id="examples")
    return Widgets(canvas, facade, status, seed, last_seed, seed_btn, stochastic, generate_btn, variations_btn,
                   variations, random_btn, layout_seed, upload_btn, examples)


def _wire(demo: gr.Blocks, app: FacadeApp, w: Widgets, model_queue: dict) -> None:
    """Which event runs which handler. Page events hide their progress (and so any "Error" badge on their
    outputs: a failure is said in its message alone), and keep names of their own (/generate and /variations
    are the API's)."""
    quiet = dict(show_progress="hidden")
    page_queue = dict(api_visibility="private", **quiet, **model_queue)
    page_in, page_out = [w.canvas, w.seed, w.stochastic, w.last_seed], [w.facade, w.status, w.seed, w.last_seed]
    generate = dict(fn=app.generate, inputs=page_in, outputs=page_out, api_name="page_generate", **page_queue)
    # Live updates during a stroke: "once", at most one in flight per page. The final canvas of a stroke or an
    # edit: at once ("always_last" among its kind). FacadeApp.paint lets only the newest canvas answer.
    painted = [*page_out, w.layout_seed, w.variations]
    w.canvas.input(app.paint, page_in, painted, trigger_mode="once", api_name="page_paint_live", **page_queue)
    w.canvas.submit(app.paint, page_in, painted, trigger_mode="always_last", api_name="page_paint", **page_queue)
    gr.on([w.generate_btn.click, w.stochastic.input, w.seed.submit], trigger_mode="always_last", **generate)
    w.seed_btn.click(app.new_seed, outputs=w.seed, queue=False, api_visibility="private", **quiet).then(**generate)
    w.variations_btn.click(app.variations, page_in, [w.variations, w.status, w.seed, w.last_seed],
                           api_name="page_variations", **page_queue)
    # A loader that fails (a photo, a bad seed) leaves the canvas as it was, and nothing is generated.
    loaded = [w.canvas, w.layout_seed, w.variations]
    private = dict(api_visibility="private", **quiet)
    w.examples.select(app.load_example, None, loaded, queue=False, **private).success(**generate)
    w.upload_btn.upload(app.load_upload, w.upload_btn, loaded, **private).success(**generate)
    w.random_btn.click(app.random_layout, None, loaded, queue=False, api_name="page_random_layout",
                       **private).success(**generate)
    w.layout_seed.submit(app.layout_from_seed, w.layout_seed, loaded, api_name="page_layout",
                         **private).success(**generate)
    # The canvas opens on an example, not a random layout: the layout seed box is empty (Gradio's number box
    # shows 0 for an empty first value, so it is emptied in the browser once the page is up; no request).
    demo.load(None, None, w.layout_seed, js="() => null", queue=False, **private)


def build_demo(model: Pix2Pix, *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, initial_seed: int = 0,
               cache_max_age: float = CACHE_MAX_AGE_MINUTES) -> gr.Blocks:
    """The page and the API around a loaded model (``max_batch_size`` 1 turns batching off), its queue set up;
    launch with ``demo.launch(server_name=..., server_port=..., **LAUNCH_KWARGS)`` (see ``app.main``, which also
    starts the cache cleaner).

    Every model event, the page's and the API's, shares one concurrency group: up to 2 x max_batch_size
    requests are converted in parallel threads, and their forwards are batched by the app's Batcher."""
    app = FacadeApp(model, max_batch_size)
    model_queue = dict(concurrency_limit=2 * max(1, max_batch_size), concurrency_id=MODEL_QUEUE)
    with gr.Blocks(title=TITLE, analytics_enabled=analytics_enabled(),
                   delete_cache=delete_cache(cache_max_age)) as demo:
        widgets = _layout(app, initial_seed)
        add_endpoints(app, model_queue)
        _wire(demo, app, widgets, model_queue)
    demo.queue(max_size=64)
    demo.app_state = app  # for tests and benchmarks: the handlers and the batcher behind this page
    return demo
