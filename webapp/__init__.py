"""The facade-pix2pix web app: the page, its handlers and the public API, over the ``pix2pix`` library.

    page.py      the page (``build_demo``): layout, CSS, the label-map canvas, which event runs which handler
    handlers.py  ``FacadeApp``: the model behind page and API (one path from a label map to facades), the loaders
    render.py    the page's routes: its settings (/p2p/page.json) and its server renderer (POST /p2p/render)
    browser.py   what the page needs to draw facades in the browser: the model as ONNX, ONNX Runtime Web
    api.py       the public endpoints (/generate, /variations, /random_layout) for ``gradio_client``
    serving.py   what crosses the wire: canvas data URLs, API payloads, facades as files, torch's threads
    cache.py     a stand-in for Gradio's scheduled cache cleaning (see its docstring for why)

``app.py`` beside this package is the command (``python app.py``) and the Space's entry.

Gradio reads some settings from the environment once, when it is imported or when its queue starts. They are
given their defaults here, in the package's ``__init__``, which Python runs before any of the modules above
(each imports gradio); a value already in the environment wins:

- analytics off (``GRADIO_ANALYTICS_ENABLED=True`` opts in), and no Hugging Face Hub telemetry;
- the queue's event summary less often: after every event Gradio's queue recomputes a summary of its recent
  events (a pandas DataFrame) for a monitoring page this app does not enable, a cost that grows with the
  events on record. Once every 1,000 events, over the last 1,000, is plenty.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")


def analytics_enabled() -> bool:
    """Whether the user opted in to Gradio's analytics (``GRADIO_ANALYTICS_ENABLED``); off by default."""
    return os.environ.get("GRADIO_ANALYTICS_ENABLED", "False").strip().lower() in ("1", "true", "yes")
