"""``python -m train`` end to end on a handful of generated 64x64 pairs (ngf 8): the run folder, resume
equivalence, SIGKILL and Ctrl-C recovery, data errors, evaluation and torchrun (gloo on the CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import PALETTE, Pix2Pix
from train.evaluate import main as evaluate_main
from train.trainer import main

ROOT = Path(__file__).resolve().parent.parent
# fp32: "auto" times bf16 at start-up, and a resumed run must take the same kernels to match bitwise.
TINY = ["--image-size", "64", "--ngf", "8", "--ndf", "8", "--num-workers", "0", "--no-progress", "--num-samples", "2",
        "--precision", "fp32"]


def _pair(rng: np.random.Generator) -> Image.Image:
    labels = np.empty((64, 64, 3), np.uint8)
    labels[:] = PALETTE[1]
    for _ in range(4):
        y, x = rng.integers(0, 48, 2)
        labels[y:y + 16, x:x + 12] = PALETTE[rng.integers(0, 12)]
    photo = np.clip(labels.astype(int) // 2 + rng.integers(0, 96, (64, 64, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(np.concatenate([photo, labels], axis=1))  # photo | labels, like facades


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        (root / split).mkdir()
        for i in range(1, n + 1):
            _pair(rng).save(root / split / f"{i}.png")
    (root / "train" / "5.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")  # skipped with a warning
    return root


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    """2 epochs (1 constant + 1 decay), a checkpoint every epoch (the push: tests/test_hub.py, a real one)."""
    run_dir = tmp_path_factory.mktemp("run") / "tiny"
    with pytest.warns(UserWarning, match=r"5\.jpg"):
        main([*TINY, "--data", str(data), "--run-dir", str(run_dir), "--epochs", "1", "--epochs-decay", "1",
              "--save-every", "1", "--log-every", "2"])
    return run_dir


def _epochs(run_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["type"] == "epoch"]


def test_tiny_run_end_to_end(run, data):
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0001.pt", "epoch_0002.pt", "latest.pt"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    assert Image.open(run / "samples" / "epoch_0002.png").size == (3 * 66 + 2, 2 * 66 + 2)  # 2 rows of 3, padded
    epochs = _epochs(run)
    assert [r["epoch"] for r in epochs] == [1, 2]
    # The authors' linear rule counted in steps (4 a epoch): constant, then down to 1/5 at the last step.
    assert [r["lr"] for r in epochs] == pytest.approx([2e-4, 2e-4 / 5])
    assert all(np.isfinite(r[k]) for r in epochs for k in ("g_gan", "g_l1", "d_real", "d_fake"))
    page = (run / "index.html").read_text()
    assert page.count("<svg") == 4 and page.index("epoch_0002.png") < page.index("epoch_0001.png")
    export = run / "export"
    assert sorted(p.name for p in export.iterdir()) == ["README.md", "config.json", "model.safetensors", "sample.png"]
    card = (export / "README.md").read_text()
    assert "4 training pairs" in card and "1 unreadable" in card and "PSNR" in card and "![samples](sample.png)" in card
    ck = torch.load(run / "checkpoints" / "latest.pt", weights_only=False)
    assert {"generator", "discriminator", "opt_g", "opt_d", "run", "rng", "config"} <= set(ck)
    assert (ck["run"]["epoch"], ck["run"]["step_in_epoch"], ck["run"]["global_step"]) == (2, 0, 8)
    assert (ck["run"]["epochs"], ck["run"]["epochs_decay"], ck["run"]["planned"]) == (1, 1, False)
    # The export is what the app loads.
    model = Pix2Pix.load(export, device="cpu")
    [image] = model.generate(data / "test" / "1.png", seed=0)
    assert image.size == (64, 64)


def _same_state(a: Path, b: Path) -> None:
    ca, cb = (torch.load(p, weights_only=False) for p in (a, b))
    for key in ("generator", "discriminator"):
        for name, tensor in ca[key].items():
            assert torch.equal(tensor, cb[key][name]), f"{key}.{name} differs"
    for key in ("opt_g", "opt_d"):
        for pid, state in ca[key]["state"].items():
            for name, tensor in state.items():
                assert torch.equal(tensor, cb[key]["state"][pid][name]), f"{key}[{pid}].{name} differs"
    assert ca["run"]["global_step"] == cb["run"]["global_step"]


def test_resume_equivalence(run, data, tmp_path):
    """2 epochs straight == 1 epoch, then the same run folder resumed for 1 more: bitwise."""
    args = [*TINY, "--data", str(data), "--run-dir", str(tmp_path / "r"), "--epochs", "1", "--no-evaluate"]
    with pytest.warns(UserWarning):
        main([*args, "--epochs-decay", "0"])
    with pytest.warns(UserWarning):
        main([*args, "--epochs-decay", "1"])
    _same_state(run / "checkpoints" / "latest.pt", tmp_path / "r" / "checkpoints" / "latest.pt")
    assert [r["lr"] for r in _epochs(tmp_path / "r")] == pytest.approx([2e-4, 2e-4 / 5])
    exported = (tmp_path / "r" / "export" / "model.safetensors").read_bytes()
    assert exported == (run / "export" / "model.safetensors").read_bytes()


def _spawn(args: list[str], tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    return subprocess.Popen([sys.executable, "-m", "train", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"train exited early ({proc.returncode}): {proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the training subprocess")
        time.sleep(0.02)


def _step_lines(run_dir: Path, epoch: int) -> bool:
    path = run_dir / "metrics.jsonl"
    return path.is_file() and any(f'"type": "step", "epoch": {epoch},' in line
                                  for line in path.read_text().splitlines())


def test_sigkill_resumes_from_last_checkpoint(data, tmp_path):
    run_dir = tmp_path / "killed"
    args = [*TINY, "--data", str(data), "--run-dir", str(run_dir), "--epochs", "4", "--epochs-decay", "0",
            "--save-every", "2", "--log-every", "1", "--no-evaluate"]
    proc = _spawn(args, tmp_path)
    try:
        _wait_for(lambda: _step_lines(run_dir, 3), proc)  # epoch 2 saved, epoch 3 under way
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    ck = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=False)
    assert (ck["run"]["epoch"], ck["run"]["step_in_epoch"]) == (2, 0)
    with pytest.warns(UserWarning):
        main(args)
    assert [r["epoch"] for r in _epochs(run_dir)] == [1, 2, 3, 4]  # the killed epoch's lines were dropped
    assert torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=False)["run"]["epoch"] == 4


def test_ctrl_c_saves_mid_epoch_and_resumes_exactly(data, tmp_path):
    args = [*TINY, "--data", str(data), "--epochs", "3", "--epochs-decay", "0", "--save-every", "10",
            "--log-every", "1", "--no-evaluate"]
    proc = _spawn([*args, "--run-dir", str(tmp_path / "c")], tmp_path)
    try:
        _wait_for(lambda: _step_lines(tmp_path / "c", 2), proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: saved" in out and "Traceback" not in err
    ck = torch.load(tmp_path / "c" / "checkpoints" / "latest.pt", weights_only=False)["run"]
    assert 5 <= ck["global_step"] < 12 and ck["global_step"] == 4 * ck["epoch"] + ck["step_in_epoch"]  # mid-run
    with pytest.warns(UserWarning):
        main([*args, "--run-dir", str(tmp_path / "c")])
    with pytest.warns(UserWarning):
        main([*args, "--run-dir", str(tmp_path / "straight")])
    _same_state(tmp_path / "c" / "checkpoints" / "latest.pt", tmp_path / "straight" / "checkpoints" / "latest.pt")


def test_bad_data_stops_before_training(tmp_path):
    bad = tmp_path / "bad" / "train"
    bad.mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(bad / "1.png")
    with pytest.raises(SystemExit, match=r"1\.png: 64x64 pixels is not two side-by-side"):
        main([*TINY, "--data", str(tmp_path / "bad"), "--run-dir", str(tmp_path / "r")])
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(SystemExit, match="no images found"):
        main([*TINY, "--data", str(tmp_path / "empty"), "--run-dir", str(tmp_path / "r")])
    with pytest.raises(SystemExit, match="no such folder"):
        main([*TINY, "--data", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "r")])
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_evaluate_cli_repeats(run, data, tmp_path, capsys):
    argv = ["--weights", str(run / "export"), "--data", str(data / "test"), "--device", "cpu"]
    first = evaluate_main([*argv, "--out", str(tmp_path / "a")])
    second = evaluate_main([*argv, "--out", str(tmp_path / "b"), "--batch-size", "1"])
    assert first == second and first["n"] == 2 and 0 < first["l1"] < 1 and 0 < first["ssim"] < 1
    assert "PSNR" in capsys.readouterr().out
    page = (tmp_path / "a" / "index.html").read_text()
    assert page.count("<tr>") == 3 and "0001_generated.png" in page
    assert (tmp_path / "a" / "images" / "0001_real.png").is_file()


def test_torchrun_two_processes_gloo(data, tmp_path):
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "train", *TINY,
         "--data", str(data), "--run-dir", str(run_dir), "--epochs", "1", "--epochs-decay", "1", "--device", "cpu",
         "--no-evaluate"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("done:") == 1  # only rank 0 reports
    ck = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=False)
    # 4 images / 2 ranks x 2 epochs
    assert ck["world_size"] == 2 and ck["run"]["global_step"] == 4 and len(ck["rng"]) == 2
    assert [r["epoch"] for r in _epochs(run_dir)] == [1, 2]
    Pix2Pix.load(run_dir / "export", device="cpu")
