"""Where a generator's weights come from, and loading them: a ``save_pretrained`` folder, its ``model.safetensors``,
an official ``.pth`` or a Hub repo id; with none given, ``$PIX2PIX_WEIGHTS``, then the bundled weights.

Loading only loads: nothing is timed, exported or written here (``Pix2Pix.choose_fastest`` does that, when asked).
"""

from __future__ import annotations

import os
from pathlib import Path

from .assets import BUNDLED_WEIGHTS
from .models import CONFIG_NAME, WEIGHTS_NAME, UnetGenerator
from .official import load_official_checkpoint

WEIGHTS_ENV = "PIX2PIX_WEIGHTS"

HOW_TO_GET_WEIGHTS = f"""No generator weights found. Any of these works:
  1. Train them:            python -m train --recipe cpu --time-budget 2h --run-dir runs/mine
                            (downloads the facades data set once; writes runs/mine/export)
     then pass the folder:  --weights runs/mine/export   or   {WEIGHTS_ENV}=runs/mine/export
  2. Use a Hub repo id:     --weights <user>/<repo>   (a folder saved by save_pretrained, pushed to the Hub)
  3. Use the authors' own:  bash scripts/download_pix2pix_model.sh facades_label2photo   (in their repo
                            pytorch-CycleGAN-and-pix2pix), then
                            --weights checkpoints/facades_label2photo_pretrained/latest_net_G.pth
Bundled weights are looked for in {BUNDLED_WEIGHTS}."""


class WeightsNotFoundError(FileNotFoundError):
    """No weights were given and none are bundled or named by the environment."""


def _has_weights(folder: Path) -> bool:
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def load_generator(weights: str | os.PathLike) -> UnetGenerator:
    """A generator from a ``save_pretrained`` folder, its ``model.safetensors``, an official ``.pth``
    file or a Hub repo id (downloaded once through ``hf_hub_download``'s cache)."""
    path = Path(weights).expanduser()
    if path.is_dir():
        if not _has_weights(path):
            raise FileNotFoundError(
                f"{path}: not a weights folder (expected {CONFIG_NAME} and {WEIGHTS_NAME}, "
                "as written by save_pretrained or python -m train)"
            )
        return _from_pretrained(str(path), path / WEIGHTS_NAME)
    if path.is_file():
        if path.suffix in (".pth", ".pt"):
            return load_official_checkpoint(path)
        if path.name.endswith(".safetensors"):
            if not (path.parent / CONFIG_NAME).is_file():
                raise FileNotFoundError(f"{path}: no {CONFIG_NAME} beside it; pass the folder save_pretrained wrote")
            return _from_pretrained(str(path.parent), path)
        raise ValueError(f"{path}: unknown weights file (expected a save_pretrained folder, .safetensors or .pth)")
    text = str(weights)
    looks_like_repo = text.count("/") == 1 and not text.startswith((".", "/", "~")) and not path.suffix
    if not looks_like_repo:
        raise FileNotFoundError(f"{text}: no such weights file or folder (nor a Hub repo id of the form user/name)")
    return _from_pretrained(text, None)


def _from_pretrained(model_id: str, weights_file: Path | None) -> UnetGenerator:
    from huggingface_hub.errors import HfHubHTTPError

    where = str(weights_file) if weights_file is not None else f"Hub repo {model_id}"
    try:
        return UnetGenerator.from_pretrained(model_id)
    except (HfHubHTTPError, OSError) as e:
        if weights_file is not None and isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise ValueError(f"{where}: cannot read the weights ({e})") from None
        if weights_file is None:
            raise FileNotFoundError(f"{where}: {_hub_problem(e)}") from None
        raise FileNotFoundError(f"{where}: could not get the weights ({type(e).__name__}: {_first_line(e)})") from None
    except Exception as e:  # safetensors' own errors, shape mismatches, bad config.json
        raise ValueError(f"{where}: corrupt or mismatched weights ({type(e).__name__}: {_first_line(e)})") from None


def _hub_problem(error: Exception) -> str:
    """What went wrong getting a repo's weights from the Hub, and what to do, in one sentence."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    hub = constants.ENDPOINT
    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, RepositoryNotFoundError):
        return (f"no such model repo on {hub} (or it is private: set HF_TOKEN or run `hf auth login`). "
                "Check the repo id, or pass a local folder.")
    if status in (401, 403):
        return (f"the Hub at {hub} refused the token (HTTP {status}). Check HF_TOKEN (or `hf auth login`); a "
                "public repo needs none.")
    if isinstance(error, LocalEntryNotFoundError):
        return (f"cannot reach the Hub at {hub}, and the weights are not in the local cache. Check the connection "
                "(or HF_ENDPOINT, HF_HUB_OFFLINE), or pass a local folder.")
    if status == 404:
        return (f"the repo has no {CONFIG_NAME} and {WEIGHTS_NAME} (not a folder saved by save_pretrained or "
                "pushed by python -m train --push-to-hub).")
    if isinstance(error, HfHubHTTPError):
        return f"the Hub at {hub} answered HTTP {status} ({_first_line(error)}). Try again later."
    return f"could not get the weights ({type(error).__name__}: {_first_line(error)}). Check the connection."


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:300]


def resolve_weights(weights: str | os.PathLike | None) -> str | os.PathLike:
    """Explicit weights, else ``$PIX2PIX_WEIGHTS``, else the bundled ``assets/weights``."""
    if weights is not None:
        return weights
    if os.environ.get(WEIGHTS_ENV):
        return os.environ[WEIGHTS_ENV]
    if _has_weights(BUNDLED_WEIGHTS):
        return BUNDLED_WEIGHTS
    raise WeightsNotFoundError(HOW_TO_GET_WEIGHTS)
