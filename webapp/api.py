"""The public API, for ``gradio_client`` (every endpoint on the queue; concurrent calls share forwards):

    /generate       (label image, seed, stochastic) -> facade (a lossless WebP file)
    /variations     (label image, seed, stochastic) -> 4 facades, captioned with their seeds
    /random_layout  (seed) -> label map
    /parse_photo    (photo) -> label map: the photo of a facade read by the facade parser (``pix2pix.parser``),
                    its classes as a map (raw, as ``AS_RECTANGLES`` says), to edit and then draw from (only where
                    the app has the parser)

The endpoints take a plain label image (any file the library reads), not the page's canvas, through hidden
components of their own; they run through the same ``FacadeApp.render`` as the page. A bad seed is an error
here (the page replaces it instead: a person sees the note; a program should not get another seed silently).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image

from pix2pix import MAX_SEED, check_seed
from pix2pix.layout import random_layout
from webapp.handlers import NUM_VARIATIONS, FacadeApp, bad_input
from webapp.serving import payload_source, public_message


class Api:
    """The endpoints' handlers, over the page's ``FacadeApp`` (one model, one batcher, one cache)."""

    def __init__(self, app: FacadeApp):
        self.app = app

    def _request(self, label: Any, seed: Any, count: int):
        """The label image as a tensor and a checked seed, with room for ``count`` seeds from it."""
        try:
            tensor = self.app.label(payload_source(label))
            seed = check_seed(seed)
            if seed > MAX_SEED - count + 1:
                raise ValueError(f"the seed must be at most {MAX_SEED - count + 1} for {count} "
                                 f"variations (they use seed..seed+{count - 1})")
        except ValueError as e:
            raise bad_input(public_message(e, label)) from None
        return tensor, seed

    def generate(self, label: Any, seed: Any, stochastic: bool) -> str:
        tensor, seed = self._request(label, seed, 1)
        return self.app.render(tensor, seed, stochastic).paths[0]

    def variations(self, label: Any, seed: Any, stochastic: bool) -> list[tuple[str, str]]:
        tensor, seed = self._request(label, seed, NUM_VARIATIONS)
        out = self.app.render(tensor, seed, stochastic, NUM_VARIATIONS)
        return [(path, f"seed {s}") for path, s in zip(out.paths, out.seeds, strict=True)]

    def parse_photo(self, photo: Any) -> Image.Image:
        try:
            return self.app.parser.parse(payload_source(photo)).labels
        except (ValueError, FileNotFoundError) as e:
            raise bad_input(public_message(e, photo)) from None

    def random_layout(self, seed: Any) -> Image.Image:
        try:
            return random_layout(check_seed(seed, "layout seed"), self.app.size)
        except ValueError as e:
            raise bad_input(str(e)) from None


def add_endpoints(app: FacadeApp, queue: dict) -> Api:
    """Declare the endpoints inside the page's ``gr.Blocks``; ``queue`` is the model events' concurrency
    settings (the API shares the page's concurrency group, so all of them share the batcher fairly)."""
    api = Api(app)
    with gr.Row(visible=False):
        label = gr.Image(label="label map", type="filepath", image_mode=None, format="png")
        seed = gr.Number(label="seed", value=0, precision=0)
        stochastic = gr.Checkbox(label="stochastic", value=True)
        layout_seed = gr.Number(label="Layout seed", value=None, precision=0)
        facade = gr.Image(label="facade", type="filepath")
        facades = gr.Gallery(label="facades")
        layout = gr.Image(label="label map", format="png")
        generate_btn, variations_btn, layout_btn = gr.Button("g"), gr.Button("v"), gr.Button("r")
    generate_btn.click(api.generate, [label, seed, stochastic], facade, api_name="generate", preprocess=False,
                       **queue)
    variations_btn.click(api.variations, [label, seed, stochastic], facades, api_name="variations",
                         preprocess=False, **queue)
    layout_btn.click(api.random_layout, layout_seed, layout, api_name="random_layout")
    if app.parser is not None:
        with gr.Row(visible=False):
            photo = gr.Image(label="photo", type="filepath", image_mode=None, format="png")
            parsed = gr.Image(label="label map", format="png")
            parse_btn = gr.Button("p")
        parse_btn.click(api.parse_photo, photo, parsed, api_name="parse_photo", preprocess=False, **queue)
    return api
