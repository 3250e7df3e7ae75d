"""facade-pix2pix in the browser: paint a CMP facade label map, watch the facade follow as you draw.

    python app.py [--weights W] [--device D] [--precision P] [--runtime R] [--host H] [--port P] [--share]
                  [--max-batch-size N] [--threads N] [--cache-max-age MINUTES]

The command and the Hugging Face Space's entry (``app_file: app.py``). The app itself is the ``webapp``
package beside this file (the page, its handlers, the API), a thin layer over the ``pix2pix`` library, which
owns the model, the palette, image decoding, seeds and layouts.

Offline and private by default: no analytics (set GRADIO_ANALYTICS_ENABLED=True to opt in), binds
127.0.0.1, no share link unless ``--share``.

API (``gradio_client``), all on the queue, concurrent calls batched into shared forwards (``webapp.api``):
    /generate       (label image, seed, stochastic) -> facade (a lossless WebP file)
    /variations     (label image, seed, stochastic) -> 4 facades
    /random_layout  (seed) -> label map
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pix2pix import Pix2Pix, WeightsNotFoundError
from pix2pix.fast import RUNTIMES
from pix2pix.speed import PRECISION_HELP, PRECISIONS
from webapp import analytics_enabled as _analytics_enabled
from webapp.cache import CACHE_MAX_AGE_MINUTES, clean_cache, delete_cache, start_cache_cleaner
from webapp.handlers import DEFAULT_MAX_BATCH_SIZE, NUM_VARIATIONS, FacadeApp
from webapp.page import build_demo, canvas_component, launch_kwargs
from webapp.serving import MAX_CANVAS_CHARS, encode_facade, facade_name, from_data_url, serving_threads, to_data_url

# What tests and scripts reach through ``app`` (the command's module), re-exported from ``webapp``.
__all__ = ["CACHE_MAX_AGE_MINUTES", "DEFAULT_MAX_BATCH_SIZE", "launch_kwargs", "MAX_CANVAS_CHARS", "NUM_VARIATIONS",
           "FacadeApp", "_analytics_enabled", "build_demo", "canvas_component", "clean_cache",
           "delete_cache", "encode_facade", "facade_name", "from_data_url", "main", "parse_args", "serving_threads",
           "start_cache_cleaner", "to_data_url"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="app.py", description="Paint a facade label map, get a facade (pix2pix) - a local Gradio app."
    )
    parser.add_argument("--weights", help="save_pretrained folder, .safetensors, official .pth or Hub repo id "
                        "(default: $PIX2PIX_WEIGHTS, then assets/weights)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="who runs the model on the CPU: auto (timed: torch or onnxruntime, whichever is faster "
                        "here), torch, or onnxruntime (fp32). Pages may draw in the browser either way "
                        "(default auto)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to bind (default 127.0.0.1, or $GRADIO_SERVER_NAME; 0.0.0.0 for the network)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="port (default 7860, or $GRADIO_SERVER_PORT)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    parser.add_argument("--max-batch-size", type=int, default=DEFAULT_MAX_BATCH_SIZE,
                        help=f"most concurrent requests batched into one forward (default {DEFAULT_MAX_BATCH_SIZE}; "
                        "1 turns batching off)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads for the model (default: all cores but one, at least 1; see "
                        "webapp.serving.serving_threads)")
    parser.add_argument("--cache-max-age", type=float, default=CACHE_MAX_AGE_MINUTES, metavar="MINUTES",
                        help=f"delete uploads and served images older than this (default {CACHE_MAX_AGE_MINUTES:g})")
    args = parser.parse_args(argv)
    if args.max_batch_size < 1 or args.cache_max_age <= 0 or (args.threads is not None and args.threads < 1):
        parser.error("--max-batch-size and --threads must be at least 1 and --cache-max-age above 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    threads = serving_threads(args.threads)  # before choose_fastest, which times with these threads
    try:
        model = Pix2Pix.load(args.weights, device=args.device)
        model.choose_fastest(precision=args.precision, runtime=args.runtime)  # timed here, printed below
    except WeightsNotFoundError as e:
        print(e, file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: cannot load the weights: {e}", file=sys.stderr)
        return 1
    demo = build_demo(model, max_batch_size=args.max_batch_size, cache_max_age=args.cache_max_age)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, quiet=True,
                prevent_thread_lock=True, **launch_kwargs())
    start_cache_cleaner(demo, args.cache_max_age)  # Gradio's own schedule dies under traffic: webapp/cache.py
    print(f"facade-pix2pix on {demo.local_url} (model on {model.device}, {model.plan.name}: {model.plan.why}; "
          f"{threads} torch thread{'s' if threads > 1 else ''}; Ctrl+C to stop)", flush=True)
    if demo.share_url:
        print(f"public link: {demo.share_url}", flush=True)
    elif args.host in ("127.0.0.1", "localhost", "::1"):
        print("private: only this machine can connect; --host 0.0.0.0 serves the network, --share a public link",
              flush=True)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
