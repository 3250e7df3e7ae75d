"""The page's server renderer and its settings, served by the app beside Gradio's own routes:

    /p2p/page.json      what the page's controller (assets/js/controller.js) needs: the number of variations,
                        the file names, the first facade's seed and time, and the model for drawing in the
                        browser (``webapp.browser``: its URL, sizes, noise shapes and runtime folder) or why
                        there is none (never cached)
    POST /p2p/render    ?seed=S&count=N&stochastic=0|1, the body the canvas's grid (size x size class indices,
                        deflated): the facades of seeds S..S+N-1 as lossless WebP, back to back, their lengths in
                        ``X-P2P-Lengths``; ``X-P2P-Seconds`` and ``X-P2P-Batch`` say how long they took and how
                        large the shared forward was. A bad request gets 400 and a sentence; a body over
                        ``body_limit`` (4 bytes a pixel: the canvas sends a few KB) gets 413, judged from its
                        ``Content-Length`` before a byte is read, or as it streams in (chunked), never read whole.

Why a route and not a Gradio event: the page owns the seed, the variations and "the newest wins", so all the
server does for it is draw; a plain POST costs the server the forward and the WebP, with no queue bookkeeping,
no file in the cache and no second request to fetch it (docs/browser.md has the figures). It runs the same
``FacadeApp.draw`` as the API, so its forwards share the API's batcher. The API (``webapp.api``) is unchanged.
"""

from __future__ import annotations

import zlib

import anyio
import numpy as np
import torch
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pix2pix import MAX_SEED
from pix2pix.images import uint8_to_tensor
from pix2pix.palette import PALETTE
from webapp.serving import ANY_SEED_NAME, SEED_NAME, encode_facade

#: Requests of the page drawn at once (in threads); more wait for a thread. Beyond WAITING_MAX waiting, the
#: server answers 503 at once rather than let a queue grow without bound.
THREADS = 16
WAITING_MAX = 64
_limiter: anyio.CapacityLimiter | None = None
_waiting = 0


def _app(request: Request):
    return getattr(request.app.get_blocks(), "app_state", None)


async def page_json(request: Request) -> Response:
    blocks = request.app.get_blocks()
    app, served = getattr(blocks, "app_state", None), getattr(blocks, "p2p_browser", None)
    if app is None:
        return JSONResponse({"error": "this app has no page"}, status_code=503)
    body = {"variations": app.num_variations, "names": {"seed": SEED_NAME, "any": ANY_SEED_NAME},
            "start": {"seed": app.start_seed, "seconds": round(app.start_seconds, 3)},
            "model": served.info if served is not None and served.path is not None else None,
            "problem": served.problem if served is not None else "this app serves no model to browsers"}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


class BadRequest(ValueError):
    pass


class TooLarge(ValueError):
    pass


def body_limit(size: int) -> int:
    """The most bytes a render request's body may have: the grid deflated is a few KB (at worst, incompressible,
    just over ``size * size``), so 4 bytes a pixel is room enough and far from what would hurt the server."""
    return 4 * size * size


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, read as it arrives and kept only up to ``limit`` bytes: TooLarge beyond it. A
    ``Content-Length`` over the limit is refused before a byte is read; a chunked body, as soon as it passes the
    limit. Why not ``request.body()``: it holds the whole body in memory before anyone can judge it, and a few
    large bodies at once would take all the server's memory (the 413 then closes the connection, so the rest of
    the body is never read either: ``too_large``)."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise BadRequest("the Content-Length header is not a number") from None
        if declared > limit:
            raise TooLarge(declared)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(len(body))
    return bytes(body)


def too_large(text: str) -> Response:
    """413 saying ``text``, and the connection closed after it (``Connection: close``), so that the server reads no
    more of a body it refused."""
    return PlainTextResponse(text, status_code=413, headers={"Connection": "close"})


class NoBody:
    """ASGI middleware: the app's own routes that take no body (every ``GET`` or ``HEAD`` under ``/p2p/``: the page's
    settings, the model, the runtime, the scripts) refuse one with 413 before a byte of it is read, as
    ``POST /p2p/render`` refuses a body over its limit (``read_body``), and close the connection. Without it a
    request could make the server take in a body of any size for nothing."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and scope["path"].startswith("/p2p/"):
            headers = dict(scope["headers"])
            chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
            if chunked or headers.get(b"content-length", b"0").strip() not in (b"", b"0"):
                return await too_large("this address takes no request body")(scope, receive, send)
        return await self.app(scope, receive, send)


def read_request(query, body: bytes, size: int, most: int) -> tuple:
    """(grid as an input tensor, first seed, count, stochastic) of a render request; BadRequest says why not."""
    try:
        seed, count = int(query.get("seed", "0")), int(query.get("count", "1"))
    except ValueError:
        raise BadRequest("seed and count must be whole numbers") from None
    if not 1 <= count <= most:
        raise BadRequest(f"count must lie in 1..{most}")
    if not 0 <= seed <= MAX_SEED - count + 1:
        raise BadRequest(f"the seed must lie in 0..{MAX_SEED - count + 1}")
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(body, size * size + 1)
    except zlib.error:
        raise BadRequest("the label map is not deflated data") from None
    if len(raw) != size * size or not inflater.eof:
        raise BadRequest(f"the label map must be {size} x {size} class indices")
    grid = np.frombuffer(raw, np.uint8).reshape(size, size)
    if grid.max() >= len(PALETTE):
        raise BadRequest(f"class indices must lie in 0..{len(PALETTE) - 1}")
    tensor = uint8_to_tensor(torch.from_numpy(PALETTE[grid]).permute(2, 0, 1))
    return tensor, seed, count, query.get("stochastic", "1") != "0"


def _draw(app, tensor, seed: int, stochastic: bool, count: int):
    out = app.draw(tensor, seed, stochastic, count)
    return out, [encode_facade(image) for image in out.images]


async def render(request: Request) -> Response:
    global _limiter, _waiting
    app = _app(request)
    if app is None:
        return PlainTextResponse("this app has no model", status_code=503)
    limit = body_limit(app.size)
    try:
        body = await read_body(request, limit)
        tensor, seed, count, stochastic = read_request(request.query_params, body, app.size, app.num_variations)
    except TooLarge:
        return too_large(f"the label map is too large: a request's body may have at most {limit:,} bytes (the "
                         "canvas sends a few KB)")
    except BadRequest as e:
        return PlainTextResponse(f"Bad request: {e}.", status_code=400)
    if _waiting >= WAITING_MAX:
        return PlainTextResponse("The server is busy: try again in a moment.", status_code=503)
    _limiter = _limiter or anyio.CapacityLimiter(THREADS)
    _waiting += 1
    try:
        out, files = await anyio.to_thread.run_sync(lambda: _draw(app, tensor, seed, stochastic, count),
                                                    limiter=_limiter)
    finally:
        _waiting -= 1
    headers = {"Cache-Control": "no-store", "X-P2P-Lengths": ",".join(str(len(f)) for f in files),
               "X-P2P-Seconds": f"{out.seconds:.3f}", "X-P2P-Batch": str(out.batch)}
    return Response(b"".join(files), media_type="application/octet-stream", headers=headers)


ROUTES = [Route("/p2p/page.json", page_json), Route("/p2p/render", render, methods=["POST"])]
