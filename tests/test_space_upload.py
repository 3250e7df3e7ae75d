"""The README's Space deploy command: what `hf upload` would send, checked with huggingface_hub's own filter."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from huggingface_hub.utils import filter_repo_objects

REPO = Path(__file__).resolve().parent.parent


def _upload_command() -> list[str]:
    lines = (REPO / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "SPACE-UPLOAD" in line)
    command = next(line for line in lines[start:] if line.startswith("hf upload "))
    return shlex.split(command)


def _patterns(words: list[str], flag: str) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words) if word == flag]


def test_the_space_upload_sends_what_the_app_needs_and_nothing_else():
    words = _upload_command()
    assert words[:3] == ["hf", "upload", "<user>/facade-pix2pix"] and "--repo-type" in words
    assert words[words.index("--repo-type") + 1] == "space"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    candidates = tracked + [".venv/lib/x.py", "runs/default/checkpoints/latest.pt", "pix2pix/__pycache__/x.pyc",
                            "assets/weights/model.safetensors", "assets/weights/config.json"]
    sent = set(filter_repo_objects(candidates, allow_patterns=_patterns(words, "--include"),
                                   ignore_patterns=_patterns(words, "--exclude")))
    needed = {"app.py", "requirements.txt", "README.md", "assets/weights/model.safetensors",
              "assets/weights/config.json",
              *(p for p in tracked if p.startswith(("pix2pix/", "webapp/", "assets/canvas/", "assets/examples/",
                                                    "assets/js/", "assets/ort/")))}
    assert {"assets/ort/ort-wasm-simd-threaded.wasm", "assets/js/controller.js", "assets/js/renderers.js",
            "assets/js/worker.js", "assets/js/philox.js"} <= needed
    assert needed <= sent, needed - sent
    assert not [p for p in sent if p.startswith((".venv/", "runs/", "tests/", "train/", ".git")) or "__pycache__" in p]
    # The app imports nothing from what stays behind.
    for source in [REPO / "app.py", *sorted((REPO / "webapp").glob("*.py"))]:
        text = source.read_text()
        assert not any(f"{word} {package}" in text for word in ("import", "from") for package in ("train", "tests")), \
            source.name
