"""Publishing: upload a run's ``export/`` folder (config.json, model.safetensors, README.md, sample.png)."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import HfApi

from pix2pix.models import CONFIG_NAME, WEIGHTS_NAME


def push_to_hub(folder: Path, repo_id: str, private: bool = False, token: str | None = None,
                api: HfApi | None = None) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` in one commit; returns the repo URL.

    The token comes from ``token``, else ``$HF_TOKEN``, else ``huggingface-cli login``'s cache (HfApi's own
    lookup). ``api`` is for tests: anything with ``create_repo`` and ``upload_folder``.
    """
    folder = Path(folder)
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}; nothing to push")
    api = api or HfApi(token=token)
    url = api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                      commit_message="Upload pix2pix facades generator (python -m train)")
    return str(url)
