import subprocess
import sys
from pathlib import Path

from PIL import Image

from pix2pix import example_labels
from pix2pix.__main__ import main

ROOT = Path(__file__).resolve().parent.parent


def test_cli_renders_examples_and_reports_bad_files(tmp_path, tiny_weights, capsys):
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    labels = [str(p) for p in example_labels()[:2]]
    status = main([*labels, str(bad), "-o", str(tmp_path / "out"), "--weights", str(tiny_weights),
                   "--seed", "5", "--samples", "2", "--device", "cpu"])
    assert status == 1  # one failure, but the others were still written
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    stem = Path(labels[0]).stem
    assert f"{stem}_seed5.png" in written and f"{stem}_seed6.png" in written
    assert len(written) == 4
    assert Image.open(tmp_path / "out" / f"{stem}_seed5.png").size == (256, 256)
    assert "broken.png: not an image" in capsys.readouterr().err


def test_cli_folder_input_and_deterministic(tmp_path, tiny_weights):
    folder = tmp_path / "labels"
    folder.mkdir()
    for p in example_labels()[:3]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "notes.txt").write_text("not an image: skipped, it has no image suffix")
    status = main([str(folder), "-o", str(tmp_path / "out"), "--weights", str(tiny_weights),
                   "--deterministic", "--device", "cpu"])
    assert status == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in example_labels()[:3])


def test_cli_without_weights_says_how_to_get_them(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PIX2PIX_WEIGHTS": str(tmp_path / "missing"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "pix2pix", str(example_labels()[0]), "-o", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "no such weights" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_empty_folder(tmp_path, tiny_weights):
    (tmp_path / "empty").mkdir()
    import pytest

    with pytest.raises(SystemExit, match="no images in this folder"):
        main([str(tmp_path / "empty"), "-o", str(tmp_path / "out"), "--weights", str(tiny_weights)])


def test_cli_precision(tmp_path, tiny_weights, capsys):
    args = [str(example_labels()[0]), "-o", str(tmp_path / "out"), "--weights", str(tiny_weights), "--device", "cpu"]
    assert main([*args, "--precision", "fp16"]) == 1  # CUDA only: a clear error, not a traceback
    assert "fp16 runs on CUDA; on the CPU use bf16 or fp32" in capsys.readouterr().err
    assert main([*args, "--precision", "bf16", "--seed", "2"]) == 0
    assert Image.open(tmp_path / "out" / f"{example_labels()[0].stem}_seed2.png").size == (256, 256)
