"""facade-pix2pix in the browser: paint a CMP facade label map, get a facade back after every stroke.

    python app.py [--weights W] [--device D] [--host H] [--port P] [--share]

A thin Gradio layer over the ``pix2pix`` library, which owns the model, the palette, the example
layouts and the random layout generator. Offline and private by default: no analytics (set
GRADIO_ANALYTICS_ENABLED=True to opt in), binds 127.0.0.1, no share link unless ``--share``.

API (``gradio_client``), all on the queue:
    /generate       (label image, seed, stochastic) -> facade        batched across concurrent callers
    /variations     (label image, seed, stochastic) -> 4 facades     one batched forward
    /random_layout  (seed) -> label map
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

# Analytics stay off unless the user opts in through the environment (read when gradio is imported).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from pix2pix import CLASSES, Pix2Pix, WeightsNotFoundError, example_labels, load_image, snap_to_palette  # noqa: E402
from pix2pix.images import label_to_tensor  # noqa: E402
from pix2pix.layout import random_layout  # noqa: E402
from pix2pix.palette import hex_colors  # noqa: E402
from pix2pix.predictor import MAX_SEED  # noqa: E402

TITLE = "facade-pix2pix"
NUM_VARIATIONS = 4
DEFAULT_MAX_BATCH_SIZE = 8
#: Uploads above this many bytes are refused by the server before they reach the app.
MAX_FILE_SIZE = "25mb"
MODEL_QUEUE = "model"  # one concurrency group: one forward at a time, requests batched into it

CSS = """
#legend {display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 0.85em;}
#legend .swatch {display: inline-flex; align-items: center; gap: 5px; white-space: nowrap;}
#legend .chip {width: 14px; height: 14px; border-radius: 3px; border: 1px solid rgba(0,0,0,.35);}
#canvas canvas {image-rendering: pixelated;}
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


def legend_html() -> str:
    """Each class name beside its swatch colour, in the palette's (and the brush swatches') order."""
    chips = "".join(
        f'<span class="swatch" title="{name} {colour}"><span class="chip" style="background:{colour}"></span>{name}</span>'
        for (name, _), colour in zip(CLASSES, hex_colors())
    )
    return f'<div id="legend">{chips}</div>'


def coerce_seed(value: Any) -> int:
    """A seed from a number box or an API call: an integer in 0..MAX_SEED (None means 0)."""
    if value is None or value == "":
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the seed must be a whole number, got {value!r}") from None
    if not np.isfinite(number) or number != int(number):
        raise ValueError(f"the seed must be a whole number, got {value!r}")
    if not 0 <= number <= MAX_SEED:
        raise ValueError(f"the seed must lie in 0..{MAX_SEED}, got {int(number)}")
    return int(number)


def new_seed() -> int:
    return secrets.randbelow(MAX_SEED - NUM_VARIATIONS)


def to_canvas(image: Image.Image, size: int) -> dict:
    """A label map as the editor's value: snapped to the palette, NEAREST-resized to the working size."""
    snapped = snap_to_palette(image)
    if snapped.size != (size, size):
        snapped = snapped.resize((size, size), Image.NEAREST)
    return {"background": snapped, "layers": [], "composite": snapped}


def canvas_label(value: dict | None) -> np.ndarray | Image.Image:
    """The painted label map from the editor: its composite (transparent pixels count as background)."""
    if not value:
        raise ValueError("the canvas is empty: pick an example, draw a random layout or upload a label map")
    for key in ("composite", "background"):
        image = value.get(key)
        if image is not None:
            return image
    raise ValueError("the canvas is empty: pick an example, draw a random layout or upload a label map")


def payload_label(payload: Any) -> bytes | str:
    """The file behind an API image payload (a FileData dict, as the queue hands it over unprocessed)."""
    if payload is None:
        raise ValueError("no label image was given")
    if isinstance(payload, dict):
        if payload.get("path"):
            return str(payload["path"])
        url = payload.get("url") or ""
        if url.startswith("data:") and "," in url:
            try:
                return base64.b64decode(url.split(",", 1)[1], validate=False)
            except ValueError:
                raise ValueError("the label image is not valid base64 data") from None
    if isinstance(payload, str) and os.path.isfile(payload):
        return payload
    raise ValueError("the label image must be an uploaded image file (use gradio_client.handle_file)")


def _public_message(error: Exception, payload: Any = None) -> str:
    """An error message fit for the user: the server's cache path of an upload becomes its file name."""
    message = str(error)
    path = payload.get("path") if isinstance(payload, dict) else None
    if path:
        name = payload.get("orig_name") or os.path.basename(str(path))
        message = message.replace(str(path), name)
    return message


def _convert_each(convert: Callable[[Any], Any], values: Sequence[Any]) -> tuple[list[Any], list[str | None]]:
    """``convert`` each request's input: (sources, error messages), a source of ``None`` where it failed."""
    sources, failures = [], []
    for value in values:
        try:
            sources.append(convert(value))
            failures.append(None)
        except ValueError as e:
            sources.append(None)
            failures.append(str(e))
    return sources, failures


def _error(message: str) -> gr.Error:
    return gr.Error(message, title="Bad input", print_exception=False)


class Engine:
    """The model behind every event: validates per request, then one forward per batch."""

    def __init__(self, model: Pix2Pix):
        self.model = model
        self.size = model.image_size
        self._forward = _zero_gpu(self._forward_impl)

    def _forward_impl(self, tensors: list, seeds: list[int], stochastic: list[bool]) -> list[Image.Image]:
        # Mixed dropout settings in one batch become (at most) two forwards.
        out: list[Image.Image | None] = [None] * len(tensors)
        for flag in (True, False):
            idx = [i for i, s in enumerate(stochastic) if s == flag]
            if idx:
                images = self.model.generate_batch([tensors[i] for i in idx], [seeds[i] for i in idx], stochastic=flag)
                for i, image in zip(idx, images):
                    out[i] = image
        return out  # type: ignore[return-value]

    def prepare(self, source: Any, seed: Any) -> tuple[Any, int]:
        """(label tensor, seed) for one request; ValueError with a clear message for bad input."""
        seed = coerce_seed(seed)
        try:
            tensor, _ = label_to_tensor(source, self.size)
        except FileNotFoundError as e:
            raise ValueError(str(e)) from None
        return tensor, seed

    def run_batch(self, sources: Sequence[Any], seeds: Sequence[Any], stochastic: Sequence[Any]):
        """Facades for a batch of requests: (images, errors, seconds). A bad request gets ``None`` and
        its error message; the others still run, in one forward."""
        prepared, errors = [], []
        for source, seed in zip(sources, seeds):
            try:
                prepared.append(self.prepare(source, seed))
                errors.append(None)
            except (ValueError, TypeError) as e:
                prepared.append(None)
                errors.append(str(e))
        ok = [i for i, p in enumerate(prepared) if p is not None]
        images: list[Image.Image | None] = [None] * len(prepared)
        start = time.perf_counter()
        if ok:
            results = self._forward(
                [prepared[i][0] for i in ok], [prepared[i][1] for i in ok], [bool(stochastic[i]) for i in ok]
            )
            for i, image in zip(ok, results):
                images[i] = image
        return images, errors, time.perf_counter() - start

    @staticmethod
    def raise_if_alone(errors: list[str | None]) -> None:
        """A batch where every request failed answers with a gr.Error (a lone request gets its own message)."""
        if errors and all(errors):
            unique = list(dict.fromkeys(errors))
            raise _error("; ".join(unique) if len(unique) > 1 else unique[0])

    def variations(self, source: Any, seed: Any, stochastic: bool):
        try:
            tensor, seed = self.prepare(source, seed)
        except (ValueError, TypeError) as e:
            raise _error(str(e)) from None
        seeds = [(seed + i) % (MAX_SEED + 1) for i in range(NUM_VARIATIONS)]
        start = time.perf_counter()
        images = self._forward([tensor] * NUM_VARIATIONS, seeds, [bool(stochastic)] * NUM_VARIATIONS)
        return images, seeds, time.perf_counter() - start


def _status(seconds: float, batch: int, seed: int | None, stochastic: bool, extra: str = "") -> str:
    who = f"batch of {batch}" if batch > 1 else "alone"
    noise = f"seed {seed}" if stochastic else "dropout off (seed ignored)"
    return f"**model: {seconds * 1000:.0f} ms** ({who}) · {noise}{extra}"


def build_demo(
    model: Pix2Pix,
    *,
    batching: bool = True,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    initial_seed: int = 0,
) -> gr.Blocks:
    """The app around a loaded model. ``batching=False`` turns request batching off (for benchmarks).

    The queue is already set up. Launch with ``demo.launch(server_name=..., server_port=..., **LAUNCH_KWARGS)``;
    ``main`` shows the command line's defaults.
    """
    engine = Engine(model)
    size = engine.size
    examples = example_labels()
    max_batch_size = max(1, int(max_batch_size)) if batching else 1
    batch_kwargs = dict(batch=batching, max_batch_size=max_batch_size) if batching else {}
    if examples:
        first = to_canvas(load_image(examples[0]), size)
    else:
        first = to_canvas(random_layout(0, size), size)
    # The facade for the starting layout is there on page load, without a request.
    first_images, _, first_seconds = engine.run_batch([first["composite"]], [initial_seed], [True])

    # ---- event functions -------------------------------------------------------------------------
    def ui_generate(canvases, seeds, stochastics):
        """Batched: one call per stroke / click from every user in the batch."""
        if not batching:
            canvases, seeds, stochastics = [canvases], [seeds], [stochastics]
        sources, failures = _convert_each(canvas_label, canvases)
        images, errors, seconds = engine.run_batch(sources, seeds, stochastics)
        errors = [f or e for f, e in zip(failures, errors)]
        if len(errors) == 1:
            engine.raise_if_alone(errors)
        statuses = [
            f"⚠️ {err}" if err else _status(seconds, len(images), coerce_seed(seed), bool(st))
            for err, seed, st in zip(errors, seeds, stochastics)
        ]
        if not batching:
            return images[0], statuses[0]
        return images, statuses

    def api_generate(label, seed, stochastic):
        """Batched API: a label image and a seed in, a facade out (each argument is a list when batched)."""
        labels, seeds, stochastics = label, seed, stochastic
        if not batching:
            labels, seeds, stochastics = [labels], [seeds], [stochastics]
        sources, failures = _convert_each(payload_label, labels)
        images, errors, _ = engine.run_batch(sources, seeds, stochastics)
        errors = [_public_message(ValueError(f or e), p) if (f or e) else None
                  for f, e, p in zip(failures, errors, labels)]
        engine.raise_if_alone(errors)
        if not batching:
            return images[0]
        return [images]

    def ui_variations(canvas, seed, stochastic):
        try:
            label = canvas_label(canvas)
        except ValueError as e:
            raise _error(str(e)) from None
        images, seeds, seconds = engine.variations(label, seed, stochastic)
        gallery = [(image, f"seed {s}" if stochastic else "dropout off") for image, s in zip(images, seeds)]
        note = "" if stochastic else " · turn stochastic on for different variations"
        return gallery, _status(seconds, NUM_VARIATIONS, seeds[0], bool(stochastic), note)

    def api_variations(label, seed, stochastic):
        try:
            source = payload_label(label)
            images, seeds, _ = engine.variations(source, seed, stochastic)
        except gr.Error as e:
            raise _error(_public_message(ValueError(e.message), label)) from None
        except ValueError as e:
            raise _error(_public_message(e, label)) from None
        return [(image, f"seed {s}") for image, s in zip(images, seeds)]

    def load_example(evt: gr.SelectData):
        return to_canvas(load_image(examples[evt.index]), size)

    def load_upload(path):
        if not path:
            raise _error("no file was uploaded")
        try:
            image = load_image(path)
            return to_canvas(image, size)
        except (ValueError, FileNotFoundError) as e:
            message = str(e).replace(str(path), os.path.basename(str(path)))
            raise _error(f"cannot use that file as a label map: {message}") from None

    def draw_random_layout():
        seed = secrets.randbelow(MAX_SEED)
        return to_canvas(random_layout(seed, size), size), seed

    def layout_from_seed(seed):
        try:
            seed = coerce_seed(seed)
        except ValueError as e:
            raise _error(str(e)) from None
        return to_canvas(random_layout(seed, size), size)

    def api_random_layout(seed):
        try:
            return random_layout(coerce_seed(seed), size)
        except ValueError as e:
            raise _error(str(e)) from None

    # ---- layout ----------------------------------------------------------------------------------
    colours = hex_colors()
    with gr.Blocks(title=TITLE, analytics_enabled=_analytics_enabled()) as demo:
        gr.Markdown(
            f"# 🏛️ {TITLE}\nPaint a facade label map on the left; the pix2pix U-Net renders a facade after "
            "every stroke. Pick a colour from the swatches: the legend says which class each colour is."
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=360):
                editor = gr.ImageEditor(
                    value=first,
                    label=f"Label map ({size}x{size})",
                    elem_id="canvas",
                    type="numpy",
                    image_mode="RGBA",
                    format="png",
                    sources=(),
                    transforms=(),
                    layers=False,
                    canvas_size=(size, size),
                    fixed_canvas=True,
                    height=620,
                    brush=gr.Brush(colors=colours, default_color=colours[2], color_mode="fixed", default_size=6),
                    eraser=gr.Eraser(default_size=10),
                    buttons=["download", "fullscreen"],
                )
                gr.HTML(legend_html(), padding=False)
                with gr.Row():
                    random_btn = gr.Button("🎲 Random layout", variant="secondary", elem_id="random-layout")
                    layout_seed = gr.Number(label="Layout seed", value=None, precision=0, minimum=0, maximum=MAX_SEED,
                                            elem_id="layout-seed", min_width=120)
                    upload_btn = gr.UploadButton("📂 Upload a label map", file_types=["image"], type="filepath",
                                                 elem_id="upload")
                gallery = gr.Gallery(
                    value=[(str(p), p.stem.split("_", 1)[-1]) for p in examples],
                    label="Examples (click to load)", columns=4, height=300, allow_preview=False,
                    object_fit="contain", format="png", elem_id="examples",
                )
            with gr.Column(scale=1, min_width=360):
                output = gr.Image(value=first_images[0], label="Generated facade", type="pil", format="png",
                                  interactive=False,
                                  height=620, elem_id="facade", buttons=["download", "fullscreen"])
                status = gr.Markdown(_status(first_seconds, 1, initial_seed, True), elem_id="status")
                with gr.Row():
                    seed = gr.Number(label="Seed", value=initial_seed, precision=0, minimum=0, maximum=MAX_SEED,
                                     elem_id="seed", min_width=120)
                    seed_btn = gr.Button("🎲 New seed", elem_id="new-seed")
                    stochastic = gr.Checkbox(label="stochastic (dropout on)", value=True, elem_id="stochastic")
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                    variations_btn = gr.Button(f"{NUM_VARIATIONS} variations", elem_id="variations-btn")
                variations = gr.Gallery(label="Variations (same layout, seeds seed..seed+3)", columns=NUM_VARIATIONS,
                                        height="auto", format="png", elem_id="variations")
                gr.Markdown(
                    "Same layout + same seed = same image. With stochastic off, dropout is off and the seed does "
                    "not matter. Use the ↓ button on the image to download it."
                )

        # Hidden inputs/outputs for the API endpoints that take a plain label image.
        with gr.Row(visible=False):
            api_label = gr.Image(label="label map", type="filepath", image_mode=None, format="png")
            api_out = gr.Image(label="facade", format="png")
            api_gallery = gr.Gallery(label="facades", format="png")
            api_layout = gr.Image(label="label map", format="png")
            api_btn = gr.Button("generate")
            api_var_btn = gr.Button("variations")
            api_layout_btn = gr.Button("random layout")

        # ---- events ------------------------------------------------------------------------------
        model_queue = dict(concurrency_limit=1, concurrency_id=MODEL_QUEUE)
        generate_kwargs = dict(
            fn=ui_generate, inputs=[editor, seed, stochastic], outputs=[output, status],
            show_progress="minimal", api_visibility="private", **model_queue, **batch_kwargs,
        )
        # .input, not .change: the frontend drops the first .change after page load.
        gr.on(
            triggers=[editor.input, generate_btn.click, stochastic.input, seed.submit],
            trigger_mode="always_last", **generate_kwargs,
        )
        seed_btn.click(new_seed, outputs=seed, queue=False, api_visibility="private").then(**generate_kwargs)
        variations_btn.click(ui_variations, [editor, seed, stochastic], [variations, status],
                             api_visibility="private", **model_queue)
        gallery.select(load_example, None, editor, queue=False, api_visibility="private").then(**generate_kwargs)
        upload_btn.upload(load_upload, upload_btn, editor, api_visibility="private").then(**generate_kwargs)
        random_btn.click(draw_random_layout, None, [editor, layout_seed], api_visibility="private").then(
            **generate_kwargs)
        layout_seed.submit(layout_from_seed, layout_seed, editor, api_visibility="private").then(**generate_kwargs)

        api_btn.click(api_generate, [api_label, seed, stochastic], api_out, api_name="generate", preprocess=False,
                      **model_queue, **batch_kwargs)
        api_var_btn.click(api_variations, [api_label, seed, stochastic], api_gallery, api_name="variations",
                          preprocess=False, **model_queue)
        api_layout_btn.click(api_random_layout, layout_seed, api_layout, api_name="random_layout")
    demo.queue(max_size=64)
    return demo


LAUNCH_KWARGS = dict(css=CSS, max_file_size=MAX_FILE_SIZE, run_history=False)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="app.py", description="Paint a facade label map, get a facade (pix2pix) - a local Gradio app."
    )
    parser.add_argument("--weights", help="save_pretrained folder, .safetensors, official .pth or Hub repo id "
                        "(default: $PIX2PIX_WEIGHTS, then assets/weights)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to bind (default 127.0.0.1, or $GRADIO_SERVER_NAME; 0.0.0.0 for the network)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="port (default 7860, or $GRADIO_SERVER_PORT)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    parser.add_argument("--max-batch-size", type=int, default=DEFAULT_MAX_BATCH_SIZE,
                        help=f"most concurrent requests batched into one forward (default {DEFAULT_MAX_BATCH_SIZE}; "
                        "1 turns batching off)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        model = Pix2Pix.load(args.weights, device=args.device)
    except WeightsNotFoundError as e:
        print(e, file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: cannot load the weights: {e}", file=sys.stderr)
        return 1
    demo = build_demo(model, batching=args.max_batch_size > 1, max_batch_size=args.max_batch_size)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, quiet=True,
                prevent_thread_lock=True, **LAUNCH_KWARGS)
    print(f"facade-pix2pix on {demo.local_url} (model on {model.device}; Ctrl+C to stop)", flush=True)
    if demo.share_url:
        print(f"public link: {demo.share_url}", flush=True)
    elif args.host in ("127.0.0.1", "localhost", "::1"):
        print("private: only this machine can connect; --host 0.0.0.0 serves the network, --share a public link",
              flush=True)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
