"""``pip install .`` as a user gets it: the wheel built from the repository's files, installed into a fresh venv,
draws a facade from another folder with the weights it carries, and its console commands run.

No download: the wheel is built without build isolation (this environment's setuptools) and installed with
``--no-index``; the fresh venv reaches this environment's torch, gradio and the rest through a ``.pth`` file, so pip
finds every dependency the wheel declares already installed (the install fails if one is missing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _repository_files() -> list[str]:
    """What a clone holds (tracked files, and new ones git does not ignore), as ``pip install .`` would see it."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the wheel test builds from the repository's tracked files")
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    for name in _repository_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation",
                           "--wheel-dir", str(tmp / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [built] = (tmp / "dist").glob("facade_pix2pix-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed: its ``bin`` folder."""
    root = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    Path(site, "_reuse_test_env.pth").write_text("".join(f"{path}\n" for path in ours))
    done = subprocess.run([python, "-m", "pip", "install", "--no-index", "--no-build-isolation", str(wheel)],
                          capture_output=True, text=True, timeout=600, env=_clean_env())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return root / "bin"


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH (the repository must not be importable) and no weights named by the environment."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIX2PIX_WEIGHTS", "VIRTUAL_ENV")}


def test_the_wheel_lists_requirements_txt_as_its_dependencies(wheel):
    with zipfile.ZipFile(wheel) as z:
        [metadata] = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        lines = z.read(metadata).decode().splitlines()
        names = z.namelist()
    declared = [Requirement(line.split(":", 1)[1]) for line in lines if line.startswith("Requires-Dist:")]

    def listed(path: Path) -> list[str]:
        return [str(Requirement(line)) for line in path.read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    assert [str(r) for r in declared if r.marker is None] == listed(ROOT / "requirements.txt")
    tests = [r for r in declared if r.marker is not None and r.marker.evaluate({"extra": "test"})]
    assert [f"{r.name}{r.specifier}" for r in tests] == listed(ROOT / "tests" / "requirements.txt")
    # What the library and the app need travels inside the package; the README's pictures do not.
    for needed in ("pix2pix/_assets/weights/model.safetensors", "pix2pix/_assets/weights/config.json",
                   "pix2pix/_assets/parser/model.safetensors", "pix2pix/_assets/parser/config.json",
                   "pix2pix/_assets/examples/test013_blinds.png", "pix2pix/_assets/canvas/canvas.js",
                   "pix2pix/_assets/js/controller.js", "pix2pix/_assets/js/worker.js",
                   "pix2pix/_assets/ort/ort-wasm-simd-threaded.wasm", "app.py",
                   "webapp/page.py", "train/trainer.py"):
        assert needed in names, needed
    assert not [n for n in names if n.startswith("tests/") or "screenshot" in n or "results.jpg" in n]


def test_the_installed_wheel_draws_a_facade_from_another_folder(venv, tmp_path):
    script = """
import sys
from pathlib import Path
import numpy as np
import pix2pix, webapp.browser, webapp.page
from pix2pix import Pix2Pix, example_labels
assert "site-packages" in pix2pix.__file__, pix2pix.__file__
assert webapp.page.ASSETS.is_dir() and (webapp.browser.ORT_DIR / "ort-wasm-simd-threaded.wasm").is_file()
[facade] = Pix2Pix.load(device="cpu").generate(example_labels()[0], seed=0)
np.save(sys.argv[1], np.asarray(facade))
print(pix2pix.__file__)
"""
    done = subprocess.run([venv / "python", "-c", script, str(tmp_path / "facade.npy")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=_clean_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(str(venv.parent))  # the installed copy, not the repository's
    facade = np.load(tmp_path / "facade.npy")
    assert facade.shape == (256, 256, 3) and facade.std() > 10  # a picture, not a flat image
    for command in ("facade-pix2pix", "facade-pix2pix-app"):
        shown = subprocess.run([venv / command, "--help"], cwd=tmp_path, capture_output=True, text=True,
                               timeout=300, env=_clean_env())
        assert shown.returncode == 0 and "--weights" in shown.stdout, shown.stderr[-2000:]
