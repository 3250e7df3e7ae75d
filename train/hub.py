"""Publishing: upload a run's ``export/`` folder (config.json, model.safetensors, README.md, sample.png).

    python -m train.hub runs/mine/export user/facades [--private]

``python -m train --push-to-hub`` calls ``push_to_hub`` after the export is on disk; this command pushes an
export again (a failed push, a fixed card) without training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError

from pix2pix.models import CONFIG_NAME, WEIGHTS_NAME


class PushError(RuntimeError):
    """The push failed; the message names the problem and what to do, and the folder is untouched."""


def push_to_hub(folder: Path, repo_id: str, private: bool = False, token: str | None = None,
                endpoint: str | None = None) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` in one commit; returns the repo URL.

    The token comes from ``token``, else ``$HF_TOKEN``, else ``hf auth login``'s cache (HfApi's own lookup);
    ``endpoint`` defaults to ``$HF_ENDPOINT``, else huggingface.co. Raises ``PushError`` with one line saying what
    went wrong (no token, a token refused, the server unreachable) and how to push again.
    """
    folder = Path(folder)
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}; nothing to push")
    api = HfApi(endpoint=endpoint, token=token)
    again = f"the folder is unchanged; push it again with: python -m train.hub {folder} {repo_id}"
    if not (token or get_token()):
        raise PushError(f"cannot push to {repo_id}: no Hugging Face token. Run `hf auth login` or set HF_TOKEN "
                        f"to a token with write access; {again}")
    try:
        url = api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                          commit_message="Upload pix2pix facades generator (python -m train)")
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status in (401, 403):
            why = (f"the Hub at {api.endpoint} refused the token (HTTP {status}): check that HF_TOKEN (or "
                   f"`hf auth login`) holds a token with write access to {repo_id.split('/')[0]}")
        else:
            why = f"the Hub at {api.endpoint} answered HTTP {status}: {_first_line(e)}"
        raise PushError(f"cannot push to {repo_id}: {why}; {again}") from None
    except Exception as e:  # the client's transport errors (httpx's, OSError): the server is down or unreachable
        if "xet" in str(e).lower():  # huggingface_hub uploads through Xet when hf_xet is installed; no fallback
            raise PushError(f"cannot push to {repo_id}: the Hub at {api.endpoint} declined the Xet upload "
                            f"({_first_line(e)}); set HF_HUB_DISABLE_XET=1 to upload through LFS; {again}") from None
        raise PushError(f"cannot push to {repo_id}: cannot reach the Hub at {api.endpoint} ({type(e).__name__}: "
                        f"{_first_line(e)}); check the connection (or HF_ENDPOINT); {again}") from None
    return str(url)


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:200]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.hub", description="Push an export folder to the Hub.")
    parser.add_argument("folder", type=Path, help="a run's export/ folder (config.json, model.safetensors, ...)")
    parser.add_argument("repo_id", help="the model repo, user/name (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    args = parser.parse_args(argv)
    try:
        url = push_to_hub(args.folder, args.repo_id, private=args.private)
    except (PushError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"pushed {args.folder} to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
