"""Publishing and loading through the real ``huggingface_hub`` client, against the Hub on 127.0.0.1
(``tests/hub_server.py``): a tiny run pushed with ``--push-to-hub``, then loaded by the library, the CLI and the
app; a second push; and each way a push or a load can fail, with one clear message and nothing lost.

Every client runs in a subprocess: ``huggingface_hub`` reads ``HF_ENDPOINT`` (and conftest's ``HF_HUB_OFFLINE``)
when it is imported, and the app and the commands are what users run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix import Pix2Pix, UnetGenerator
from tests.helpers import free_port, wait_for_line
from tests.hub_server import DEFAULT_TOKEN
from tests.test_train import TINY, _pair

ROOT = Path(__file__).resolve().parent.parent
REPO_ID = "user/tiny"
SEED = 3


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """``python -m tests.hub_server`` on a free port: (its URL, the folder that keeps its repos)."""
    root = tmp_path_factory.mktemp("hub")
    proc = subprocess.Popen([sys.executable, "-m", "tests.hub_server", "--port", "0", "--root", str(root)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = wait_for_line(proc, "hub on http://127.0.0.1:", timeout=60).split()[-1]
        yield url, root / "repos"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def client_env(hub_url: str, home: Path, token: str | None = DEFAULT_TOKEN, **extra: str) -> dict[str, str]:
    """A client's environment: the loopback Hub, online, LFS uploads (huggingface_hub 2.x goes through Xet whenever
    hf_xet is installed; the test Hub declines Xet), its own cache and token."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "PIX2PIX_WEIGHTS")}
    env |= {"PYTHONPATH": str(ROOT), "HF_ENDPOINT": hub_url, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1",
            "HF_HOME": str(home), "HF_HUB_DISABLE_PROGRESS_BARS": "1", "OMP_NUM_THREADS": "2", **extra}
    if token:
        env["HF_TOKEN"] = token
    return env


def run(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def tiny_data(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        (root / split).mkdir(parents=True)
        for i in range(1, n + 1):
            _pair(rng).save(root / split / f"{i}.png")
    return root


def label_map(tmp: Path) -> Path:
    path = tmp / "label.png"
    if not path.exists():
        _pair(np.random.default_rng(7)).crop((64, 0, 128, 64)).save(path)  # the label half of a pair
    return path


def facades(weights, label: Path) -> np.ndarray:
    """The facades of seeds SEED, SEED+1 that the run's own export draws here (plain fp32)."""
    model = Pix2Pix.load(weights, device="cpu")
    return np.stack([np.asarray(image, np.int16) for image in model.generate(label, seed=SEED, num_samples=2)])


#: Loads a repo through the real client and saves its facades of seeds SEED, SEED+1 (argv: repo, label, out.npy).
LOAD_SCRIPT = f"""
import sys, numpy as np
from pix2pix import Pix2Pix
model = Pix2Pix.load(sys.argv[1], device="cpu")
np.save(sys.argv[3], np.stack([np.asarray(i, np.int16) for i in model.generate(sys.argv[2], seed={SEED},
                                                                                  num_samples=2)]))
"""


def load_through_hub(repo_id: str, label: Path, env: dict[str, str], out: Path) -> np.ndarray:
    done = run(["-c", LOAD_SCRIPT, repo_id, str(label), str(out)], env)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out)


@pytest.fixture(scope="module")
def pushed(hub, tmp_path_factory):
    """A tiny real training run pushed with ``--push-to-hub user/tiny``: its folder."""
    url, _ = hub
    tmp = tmp_path_factory.mktemp("roundtrip")
    data = tiny_data(tmp / "data")
    done = run(["-m", "train", *TINY, "--data", str(data), "--run-dir", str(tmp / "run"), "--epochs", "1",
                "--epochs-decay", "1", "--push-to-hub", REPO_ID], client_env(url, tmp / "hf-train"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"pushed {tmp / 'run' / 'export'} to {url}/{REPO_ID}" in done.stdout
    return tmp


def test_the_push_sends_the_export_regular_and_lfs_files(hub, pushed):
    _, repos = hub
    export, stored = pushed / "run" / "export", repos / REPO_ID
    sent = {p.name: p.read_bytes() for p in export.iterdir()}
    assert sorted(sent) == ["README.md", "config.json", "model.safetensors", "sample.png"]
    assert {p.name: p.read_bytes() for p in (stored / "files").iterdir()} == sent
    meta = json.loads((stored / "meta.json").read_text())
    assert meta["files"]["config.json"]["lfs"] is None  # small: inline in the commit
    assert meta["files"]["model.safetensors"]["lfs"]  # large: through the LFS batch API, by its sha256
    assert [c["summary"] for c in meta["commits"]][-1].startswith("Upload pix2pix")
    # Listing and a whole-repo download, as the client does them (repo info, tree, then each file).
    script = ("import os, sys; from huggingface_hub import HfApi, snapshot_download; repo = sys.argv[1]; "
              "print(sorted(HfApi().list_repo_files(repo))); print(sorted(os.listdir(snapshot_download(repo))))")
    done = run(["-c", script, REPO_ID], client_env(hub[0], pushed / "hf-snapshot", token=None))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [str(sorted(sent))] * 2


def test_the_library_loads_the_pushed_repo_and_draws_the_exports_facades(hub, pushed):
    url, _ = hub
    home = pushed / "hf-library"
    got = load_through_hub(REPO_ID, label_map(pushed), client_env(url, home, token=None), pushed / "library.npy")
    assert np.abs(got - facades(pushed / "run" / "export", label_map(pushed))).max() <= 1
    [cached] = (home / "hub").glob("models--user--tiny/snapshots/*/model.safetensors")
    assert cached.read_bytes() == (pushed / "run" / "export" / "model.safetensors").read_bytes()


def test_the_cli_draws_from_the_pushed_repo(hub, pushed):
    url, _ = hub
    label = label_map(pushed)
    done = run(["-m", "pix2pix", str(label), "-o", str(pushed / "cli"), "--weights", REPO_ID, "--seed", str(SEED),
                "--precision", "fp32"], client_env(url, pushed / "hf-cli", token=None))
    assert done.returncode == 0, done.stderr[-3000:]
    drawn = np.asarray(Image.open(pushed / "cli" / f"label_seed{SEED}.png"), np.int16)
    # choose_fastest may serve through the GEMM layers or ONNX Runtime (fp16 weights): a grey level or two.
    assert np.abs(drawn - facades(pushed / "run" / "export", label)[0]).max() <= 2


def test_the_app_serves_the_pushed_repo_named_by_pix2pix_weights(hub, pushed):
    from gradio_client import Client, handle_file

    url, _ = hub
    port = free_port()
    env = client_env(url, pushed / "hf-app", token=None, PIX2PIX_WEIGHTS=REPO_ID, PIX2PIX_CACHE=str(pushed / "c"))
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--precision", "fp32", "--runtime",
                             "torch", "--threads", "1"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        line = wait_for_line(proc, "facade-pix2pix on http://", timeout=180)
        assert "fp32" in line  # the app asked for the fastest fp32 variant at start-up and said which it chose
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=True)
        path = client.predict(handle_file(str(label_map(pushed))), SEED, True, api_name="/generate")
        drawn = np.asarray(Image.open(path).convert("RGB"), np.int16)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert np.abs(drawn - facades(pushed / "run" / "export", label_map(pushed))[0]).max() <= 2


def test_a_second_push_updates_the_repo_and_a_cached_client_sees_it(hub, pushed, tmp_path):
    url, repos = hub
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(pushed / "run" / "export", first)
    shutil.copytree(first, second)
    generator = UnetGenerator.from_pretrained(str(first))
    for parameter in generator.parameters():
        parameter.data.add_(0.05)
    generator.save_pretrained(second)  # other weights, the same config, card and sample
    home, label = tmp_path / "hf", label_map(pushed)
    for folder in (first, second):
        done = run(["-m", "train.hub", str(folder), "user/updated"], client_env(url, tmp_path / "hf-push"))
        assert done.returncode == 0 and f"pushed {folder} to {url}/user/updated" in done.stdout, done.stderr[-3000:]
        got = load_through_hub("user/updated", label, client_env(url, home, token=None), tmp_path / "got.npy")
        assert np.abs(got - facades(folder, label)).max() <= 1
    assert np.abs(facades(first, label) - facades(second, label)).max() > 10  # the update changed the facades
    assert len(list((home / "hub").glob("models--user--updated/snapshots/*"))) == 2  # one per commit
    meta = json.loads((repos / "user" / "updated" / "meta.json").read_text())
    assert len(meta["commits"]) == 3  # created, first push, second push


@pytest.mark.parametrize("token, expected", [
    (None, "no Hugging Face token. Run `hf auth login` or set HF_TOKEN"),
    ("hf_wrong", "refused the token (HTTP 401)"),
])
def test_a_push_without_a_good_token_says_so_and_changes_nothing(hub, pushed, tmp_path, token, expected):
    url, repos = hub
    export = pushed / "run" / "export"
    before = {p.name: p.read_bytes() for p in export.iterdir()}
    done = run(["-m", "train.hub", str(export), "user/refused"], client_env(url, tmp_path / "hf", token=token))
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()  # one message, no traceback
    assert expected in line and f"push it again with: python -m train.hub {export} user/refused" in line
    assert not (repos / "user" / "refused").exists()
    assert {p.name: p.read_bytes() for p in export.iterdir()} == before


def test_a_run_whose_hub_is_down_keeps_its_export_and_says_how_to_push(pushed, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    done = run(["-m", "train", *TINY, "--data", str(pushed / "data"), "--run-dir", str(tmp_path / "run"),
                "--epochs", "1", "--epochs-decay", "0", "--no-evaluate", "--push-to-hub", REPO_ID],
               client_env(dead, tmp_path / "hf"))
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"cannot reach the Hub at {dead}" in errors[0] and "python -m train.hub" in errors[0]
    assert Pix2Pix.load(tmp_path / "run" / "export", device="cpu").image_size == 64  # the run's export is intact


@pytest.mark.parametrize("repo_id, token, expected", [
    ("user/missing", None, "no such model repo on http://127.0.0.1"),
    (REPO_ID, "hf_wrong", "refused the token (HTTP 401)"),
])
def test_loading_a_missing_repo_or_with_a_wrong_token_says_so(hub, pushed, tmp_path, repo_id, token, expected):
    url, _ = hub
    env = client_env(url, tmp_path / "hf", token=token)
    done = run(["-m", "pix2pix", str(label_map(pushed)), "-o", str(tmp_path / "out"), "--weights", repo_id], env)
    assert done.returncode == 1 and done.stderr.startswith(f"error: Hub repo {repo_id}: "), done.stderr[-3000:]
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    if repo_id == REPO_ID:
        return  # the app says the same through the same loader; once is enough (it takes seconds to start)
    app = run(["app.py", "--port", str(free_port())], {**env, "PIX2PIX_WEIGHTS": repo_id}, timeout=120)
    assert app.returncode == 1 and expected in app.stderr and "Traceback" not in app.stderr, app.stderr[-3000:]


def test_a_client_that_tries_xet_is_declined_and_nothing_is_half_committed(hub, pushed, tmp_path):
    """huggingface_hub 2.x uploads through Xet whenever hf_xet is installed; the test Hub declines (501 on the Xet
    token). Then either the client falls back to LFS and the push succeeds, or the push fails with one message
    and the repo holds no commit of it: never a commit that names weights it never received."""
    url, repos = hub
    export = pushed / "run" / "export"
    done = run(["-m", "train.hub", str(export), "user/xet"], client_env(url, tmp_path / "hf", HF_HUB_DISABLE_XET="0"))
    meta = json.loads((repos / "user" / "xet" / "meta.json").read_text())
    if done.returncode == 0:  # a fallback to LFS
        assert (repos / "user" / "xet" / "files" / "model.safetensors").read_bytes() == \
            (export / "model.safetensors").read_bytes()
    else:
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("error: cannot push to user/xet: ") and "declined the Xet upload" in line
        assert "HF_HUB_DISABLE_XET=1" in line
        assert len(meta["commits"]) == 1 and not meta["files"]  # created, nothing committed


def test_with_the_hub_down_a_cached_repo_still_loads_and_an_uncached_one_says_why(hub, pushed, tmp_path):
    dead, home, label = f"http://127.0.0.1:{free_port()}", tmp_path / "hf", label_map(pushed)
    first = load_through_hub(REPO_ID, label, client_env(hub[0], home, token=None), tmp_path / "first.npy")
    got = load_through_hub(REPO_ID, label, client_env(dead, home, token=None), tmp_path / "got.npy")
    assert np.array_equal(got, first)  # from the cache, with the Hub unreachable
    # Uncached, the client retries for about 20 s before it gives up (its own backoff); what it raises then:
    from huggingface_hub.errors import LocalEntryNotFoundError

    from pix2pix.weights import _hub_problem

    text = _hub_problem(LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub"))
    assert text.startswith("cannot reach the Hub at ") and "not in the local cache" in text
