"""What the page needs to draw facades in the visitor's browser (``assets/js/worker.js``), served by the app itself.

    /p2p/model/<hash>-int8.onnx     the generator as ONNX, int8 convolutions (``pix2pix.export``; cached for a
                                    year: a new model has a new hash), brotli or gzip for browsers that accept it
    /p2p/ort/<version>/<file>       ONNX Runtime Web's files (``assets/ort/``; cached for a year: a new version
                                    has a new path); compressed once for browsers that accept it
    /p2p/js/<file>                  the page's own modules (``assets/js/``; revalidated on every visit)

Every response also carries ``Cross-Origin-Opener-Policy: same-origin`` and ``Cross-Origin-Embedder-Policy:
require-corp``, which make the page cross-origin isolated where it is the top-level page: only then may
WebAssembly use threads (``SharedArrayBuffer``). The page loads nothing from other hosts, so the policy costs it
nothing. In an iframe (a Hugging Face Space's page) isolation needs the embedding page's consent too, and the
browser runs one thread.

Gradio has no hook for routes before its own, so these go in through ``launch(app_kwargs=...)`` (FastAPI's own
``routes`` and ``middleware`` arguments): ``launch_app_kwargs`` makes a fresh set for each launch, since Gradio
writes into the dict it is given. The routes find the model through the running Blocks' ``p2p_browser``
(``webapp.page.build_demo`` sets it).
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from pix2pix import Pix2Pix
from pix2pix.assets import ASSETS_DIR
from pix2pix.export import noise_shapes, onnx_file, onnxruntime_available
from pix2pix.models import DROPOUT_P

ASSETS = ASSETS_DIR  # the repository's assets/, or the copy an installed wheel carries
ORT_DIR = ASSETS / "ort"
JS_DIR = ASSETS / "js"
#: The vendored onnxruntime-web version (assets/ort/README.md): part of the files' URLs.
ORT_VERSION = "1.31.1"
ORT_FILES = frozenset(p.name for p in ORT_DIR.glob("*.*js")) | frozenset(p.name for p in ORT_DIR.glob("*.wasm"))
JS_FILES = frozenset(p.name for p in JS_DIR.glob("*.js"))
FOREVER = "public, max-age=31536000, immutable"
ISOLATION_HEADERS = [(b"cross-origin-opener-policy", b"same-origin"),
                     (b"cross-origin-embedder-policy", b"require-corp")]
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".onnx": "application/octet-stream"}


@dataclass(frozen=True)
class BrowserModel:
    """The served model's ONNX file and what the page needs to feed it (``None`` fields: not available here)."""

    path: Path | None
    info: dict[str, Any]
    problem: str = ""

    @classmethod
    def of(cls, model: Pix2Pix) -> BrowserModel:
        """Export (once; ``pix2pix.export.onnx_file`` caches it) ``model``'s generator for the browser, with
        int8 convolutions (half fp16's bytes; the facades within about half a grey level of the server's:
        docs/browser.md), and compress it once for the wire. Where that cannot be done the page is told why
        and draws on the server."""
        if not onnxruntime_available():
            return cls(None, {}, "the server cannot export the model (pip install onnx onnxruntime)")
        try:
            path = onnx_file(model.generator, int8=True)
            download = _encoded(path, "model", "gzip").stat().st_size
            if _has_brotli():
                _encoded(path, "model", "br")
        except Exception as e:  # an export problem must not stop the app: the server path still works
            return cls(None, {}, f"the server could not export the model ({type(e).__name__})")
        generator, size = model.generator, model.image_size
        info = {"url": f"p2p/model/{path.name}", "bytes": path.stat().st_size, "download": download, "size": size,
                "nz": generator.nz, "p": DROPOUT_P, "shapes": [list(s) for s in noise_shapes(generator, size)],
                "ort": f"p2p/ort/{ORT_VERSION}/"}
        return cls(path, info)


def _browser_model(request: Request) -> BrowserModel | None:
    return getattr(request.app.get_blocks(), "p2p_browser", None)


_ENCODE_LOCK = threading.Lock()
SUFFIXES = {"gzip": ".gz", "br": ".br"}


def _encoded(path: Path, folder: str, encoding: str) -> Path:
    """``path`` compressed once (gzip, or brotli where the ``brotli`` package is there: Gradio's dependency),
    kept in the temporary folder under ``folder`` (the runtime's wasm: 14.8 MB to 3.8 gzipped; the int8
    model: 13.9 to 11.9 gzipped, 11.8 brotli). Made again when ``path`` is newer than it: the folder outlives
    the server, and a file of the same name may have been exported again since (page.json gives its size, which
    must be the size of what is served)."""
    out = Path(tempfile.gettempdir()) / "facade-pix2pix-gz" / folder / f"{path.name}{SUFFIXES[encoding]}"
    with _ENCODE_LOCK:
        if not out.is_file() or out.stat().st_mtime < path.stat().st_mtime:
            out.parent.mkdir(parents=True, exist_ok=True)
            staging = out.with_suffix(".part")
            if encoding == "br":
                import brotli

                staging.write_bytes(brotli.compress(path.read_bytes(), quality=5))
            else:
                with path.open("rb") as src, gzip.open(staging, "wb", compresslevel=6) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            staging.replace(out)
    return out


def _accepted(request: Request) -> str | None:
    """The best encoding the browser accepts: brotli (browsers send it over HTTPS only), gzip, or none."""
    accepted = {part.split(";")[0].strip() for part in request.headers.get("accept-encoding", "").split(",")}
    for encoding in ("br", "gzip"):
        if encoding in accepted and (encoding != "br" or _has_brotli()):
            return encoding
    return None


def _has_brotli() -> bool:
    try:
        import brotli  # noqa: F401
    except ImportError:
        return False
    return True


def _forever(request: Request, path: Path, folder: str) -> Response:
    """An immutable file (its URL changes when it does), compressed for a browser that accepts it."""
    headers = {"Cache-Control": FOREVER, "Vary": "Accept-Encoding"}
    media = TYPES[path.suffix]
    encoding = _accepted(request)
    if encoding:
        return FileResponse(_encoded(path, folder, encoding), media_type=media,
                            headers={**headers, "Content-Encoding": encoding})
    return FileResponse(path, media_type=media, headers=headers)


def model_file(request: Request) -> Response:
    served = _browser_model(request)
    if served is None or served.path is None or request.path_params["name"] != served.path.name:
        return Response("no such model", status_code=404)
    return _forever(request, served.path, "model")


def ort_file(request: Request) -> Response:
    name = request.path_params["name"]
    if request.path_params["version"] != ORT_VERSION or name not in ORT_FILES:
        return Response("no such file", status_code=404)
    return _forever(request, ORT_DIR / name, f"ort-{ORT_VERSION}")


def js_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in JS_FILES:
        return Response("no such file", status_code=404)
    return FileResponse(JS_DIR / name, media_type=TYPES[".js"], headers={"Cache-Control": "no-cache"})


# Sync handlers (model_file, ort_file, js_file) run in Starlette's thread pool: a first gzip or a large file
# never holds up the event loop that serves the queue.
ROUTES = [
    Route("/p2p/model/{name}", model_file),
    Route("/p2p/ort/{version}/{name}", ort_file),
    Route("/p2p/js/{name}", js_file),
]


class CrossOriginIsolation:
    """ASGI middleware: the two headers that make the page cross-origin isolated, on every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *ISOLATION_HEADERS]
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def launch_app_kwargs() -> dict[str, Any]:
    """``demo.launch(app_kwargs=...)``: the routes above, the page's (``webapp.render``), the isolation headers
    and the refusal of a body where our routes take none (a new dict each launch)."""
    from webapp.render import ROUTES as PAGE_ROUTES
    from webapp.render import NoBody

    return {"routes": [*ROUTES, *PAGE_ROUTES], "middleware": [Middleware(CrossOriginIsolation), Middleware(NoBody)]}
