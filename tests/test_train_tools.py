"""The training kit's pieces that need no training: downloader (against 127.0.0.1), metrics, data checks, the model
card (the push itself: tests/test_hub.py, against a Hub on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import io
import math
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image

from train.data import DataError, check_pairs, find_pairs
from train.download import DownloadError, download, ensure_dataset, safe_extract
from train.evaluate import l1, psnr, ssim


def _png(w: int, h: int, value: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _archive(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


GOOD = _archive({f"facades/{split}/{i}.png": _png(16, 8, i) for split in ("train", "val", "test") for i in (1, 2)})


@pytest.fixture(scope="module")
def server():
    """A local HTTP server: /good.tar.gz, /truncated.tar.gz (announces more bytes than it sends), /missing."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/good.tar.gz":
                self.send_response(200)
                self.send_header("Content-Length", str(len(GOOD)))
                self.end_headers()
                self.wfile.write(GOOD)
            elif self.path == "/truncated.tar.gz":
                self.send_response(200)
                self.send_header("Content-Length", str(len(GOOD)))
                self.end_headers()
                self.wfile.write(GOOD[: len(GOOD) // 2])
                self.close_connection = True
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_good_verifies_and_renames(server, tmp_path):
    sha = hashlib.sha256(GOOD).hexdigest()
    dest = download(f"{server}/good.tar.gz", tmp_path / "facades.tar.gz", sha256=sha, size=len(GOOD), progress=False)
    assert dest.read_bytes() == GOOD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["facades.tar.gz"]  # no temp file left
    root = ensure_dataset(tmp_path, url=f"{server}/good.tar.gz", sha256=sha, counts={"train": 2, "test": 2},
                          progress=False)
    assert root == tmp_path / "facades" and sorted(p.name for p in (root / "train").iterdir()) == ["1.png", "2.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["facades", "facades.tar.gz"]


def test_download_truncated_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match="truncated"):
        download(f"{server}/truncated.tar.gz", tmp_path / "facades.tar.gz", progress=False)
    with pytest.raises(DownloadError, match="truncated"):
        ensure_dataset(tmp_path, url=f"{server}/truncated.tar.gz", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_checksum_mismatch_and_http_error(server, tmp_path):
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(f"{server}/good.tar.gz", tmp_path / "f.tar.gz", sha256="0" * 64, progress=False)
    with pytest.raises(DownloadError, match="expected 5"):
        download(f"{server}/good.tar.gz", tmp_path / "f.tar.gz", size=5, progress=False)
    with pytest.raises(DownloadError, match="404"):
        download(f"{server}/missing", tmp_path / "f.tar.gz", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_extracted_files_are_checked_against_md5sums(server, tmp_path):
    sums = tmp_path / "sums.md5"
    good = "\n".join(f"{hashlib.md5(_png(16, 8, i)).hexdigest()}  ./train/{i}.png" for i in (1, 2))
    sums.write_text(good + "\n")
    root = ensure_dataset(tmp_path / "ok", url=f"{server}/good.tar.gz", md5sums=sums, progress=False)
    assert (root / "train" / "1.png").is_file()
    sums.write_text(good.replace(hashlib.md5(_png(16, 8, 2)).hexdigest(), "0" * 32) + "\n")
    with pytest.raises(DownloadError, match=r"train/2\.png: checksum mismatch"):
        ensure_dataset(tmp_path / "bad", url=f"{server}/good.tar.gz", md5sums=sums, progress=False)
    assert not (tmp_path / "bad" / "facades").exists()  # nothing half-verified is left in place


def test_unsafe_archive_rejected(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_archive({"facades/train/1.png": _png(16, 8), "../escape.txt": b"x"}))
    with pytest.raises(DownloadError, match="unsafe"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_metrics_on_known_pairs():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert l1(x, x).tolist() == [0.0, 0.0]
    assert math.isinf(psnr(x, x)[0].item())
    assert torch.allclose(ssim(x, x), torch.ones(2))
    a, b = torch.full((1, 3, 32, 32), 0.25), torch.full((1, 3, 32, 32), 0.75)
    assert l1(a, b).item() == pytest.approx(0.5)
    assert psnr(a, b).item() == pytest.approx(10 * math.log10(1 / 0.25))  # 6.02 dB
    c1 = 0.01**2  # flat images: SSIM reduces to its luminance term
    assert ssim(a, b).item() == pytest.approx((2 * 0.25 * 0.75 + c1) / (0.25**2 + 0.75**2 + c1), rel=1e-5)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert 0 < ssim(x, noisy).min() < ssim(x, (x + noisy) / 2).min() < 1


def test_corrupt_skipped_and_bad_layout_rejected(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir(), bad.mkdir()
    (good / "1.png").write_bytes(_png(16, 8))
    (good / "2.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    (good / "3.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # truncated
    with pytest.warns(UserWarning) as record:
        pairs, skipped = check_pairs(find_pairs(good))
    assert [p.ab.name for p in pairs] == ["1.png"] and len(skipped) == 2
    messages = [str(w.message) for w in record]
    assert any("2.jpg" in m for m in messages) and any("3.png" in m for m in messages)
    (bad / "1.png").write_bytes(_png(8, 8))
    with pytest.raises(DataError, match=r"1\.png: 8x8 pixels is not two side-by-side"):
        check_pairs(find_pairs(bad))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        find_pairs(tmp_path / "empty")


def test_paired_jitter_same_crop_and_flip_labels_stay_in_palette(tmp_path):
    from pix2pix import PALETTE
    from train.data import PairedDataset

    half = np.empty((32, 32, 3), np.uint8)
    half[:, :12], half[:, 12:] = PALETTE[0], PALETTE[7]  # asymmetric: a flip shows
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir(), b_dir.mkdir()
    Image.fromarray(half).save(a_dir / "x.png")
    Image.fromarray(half).save(b_dir / "x.png")
    Image.fromarray(np.concatenate([half, half], axis=1)).save(tmp_path / "x.png")
    for pairs in (find_pairs(a=a_dir, b=b_dir), find_pairs(tmp_path)):
        ds = PairedDataset(pairs, image_size=32, load_size=36, seed=0)
        flipped = set()
        for epoch in range(8):
            x, y = ds[(epoch, 0)]
            assert torch.equal(x, ds[(epoch, 0)][0])  # the jitter repeats for (seed, epoch, image)
            colours = {tuple(c) for c in x.add(1).mul(127.5).round().to(torch.uint8).flatten(1).T.tolist()}
            assert colours <= {tuple(int(v) for v in c) for c in PALETTE}  # NEAREST: still label colours
            assert (x - y).abs().mean() < 0.05  # the same crop and flip for input and target
            flipped.add(bool(x[2, :, 0].mean() < x[2, :, -1].mean()))  # blue class now on the right
        assert flipped == {True, False}


# ------------------------------------------------------------------------------------ the model card
def _card_summary(metrics: dict | None) -> dict:
    return {"data": "facades", "train_images": 400, "skipped": 0, "epochs_done": 170, "epochs_constant": 85,
            "epochs_decay": 85, "steps": 34000, "train_seconds": 7800.0, "device": "cpu", "load_size": 286,
            "eval_split": "test", "time_budget": "2h15m", "last": {}, "metrics": metrics}


def test_model_card_gives_fid_as_mean_and_spread_over_seed_sets_and_the_step_exact_command(tmp_path):
    from train.config import parse_args
    from train.report import metrics_text, write_model_card

    metrics = {"n": 106, "seed": 0, "fid": 128.84, "fid_std": 2.61, "fid_sets": [125.7, 131.2, 127.9, 129.0, 130.4],
               "kid": 0.04512, "kid_std": 0.00123, "kid_sets": [0.0441, 0.0462, 0.0449, 0.0450, 0.0454],
               "seed_sets": 5, "diversity": 43.7, "diversity_maps": 30, "l1": 0.22, "psnr": 11.1, "ssim": 0.17}
    cfg = parse_args(["--recipe", "cpu", "--time-budget", "2h15m", "--run-dir", "/somewhere/run"]).to_dict()
    write_model_card(tmp_path, cfg, _card_summary(metrics))
    card = (tmp_path / "README.md").read_text()
    assert "| FID (TF-FID Inception, against the 106 real photos), mean +- std | 128.8 +- 2.6 |" in card
    assert "| FID per seed set | 125.7, 131.2, 127.9, 129.0, 130.4 |" in card
    assert "| KID, mean +- std | 0.0451 +- 0.0012 |" in card and "| KID per seed set | 0.0441, 0.0462," in card
    assert "sample standard deviation (ddof 1) over 5 seed sets" in card and "the seed i + 1000k (k = 0..4)" in card
    assert "`--recipe cpu`, `--time-budget 2h15m`" in card  # the budgeted command, and beside it the exact one:
    exact = "`python -m train --recipe cpu --epochs 85 --epochs-decay 85`"
    assert f"| step-exact command | {exact}: the same 34000 steps on any machine" in card
    assert "somewhere" not in card
    assert "FID 128.8 +- 2.6, KID 0.0451 +- 0.0012 (mean +- std over 5 seed sets)" in metrics_text(metrics)
    # The front matter, parsed back as the Hub does: its model-index holds the test FID and KID, mean and spread.
    data = ModelCard.load(tmp_path / "README.md").data
    assert (data.library_name, data.license, data.pipeline_tag) == ("facade-pix2pix", "mit", "image-to-image")
    assert {"pix2pix", "facades"} <= set(data.tags) and data.model_name == "facade-pix2pix"
    figures = {r.metric_type: r.metric_value for r in data.eval_results}
    assert figures == {"fid": 128.84, "fid_std": 2.61, "kid": 0.0451, "kid_std": 0.0012}  # to 4 decimals
    assert {(r.task_type, r.dataset_split, r.dataset_name) for r in data.eval_results} == {
        ("image-to-image", "test", "CMP Facades (test, 106 images)")}
    single = {k: v for k, v in metrics.items() if not k.endswith(("_std", "_sets"))}
    write_model_card(tmp_path, cfg, _card_summary(single))  # one set (--seed-sets 1, older results): the value alone
    card = (tmp_path / "README.md").read_text()
    assert "| FID (TF-FID Inception, against the 106 real photos) | 128.8 |" in card and "+-" not in card
    assert "seeds 0..105" in card
    assert {r.metric_type for r in ModelCard.load(tmp_path / "README.md").data.eval_results} == {"fid", "kid"}
    write_model_card(tmp_path, cfg, _card_summary(None))  # not evaluated: no model-index, the rest of the metadata
    data = ModelCard.load(tmp_path / "README.md").data
    assert data.eval_results is None and data.pipeline_tag == "image-to-image"


def test_the_card_gives_the_worst_seed_of_the_layout_and_region_fidelity(tmp_path):
    """Saved as result.json and read back (seed keys become strings), the card still names the worst cell."""
    import json

    from train.config import parse_args
    from train.report import metrics_text, write_model_card

    fidelity = {"fidelity": 0.994, "fidelity_worst": 0.897, "fidelity_worst_seed": 6, "fidelity_under": [6],
                "fidelity_seeds": {s: 0.95 for s in range(32)}, "fidelity_maps": 24, "fidelity_real_acc": 0.58,
                "region": 0.873, "region_worst": 0.523, "region_worst_seed": 6, "region_under": [6, 7],
                "region_seeds": {s: 0.9 for s in range(32)}, "region_cells": {s: [2, 3] for s in range(32)},
                "region_worst_cell": [2, 3]}
    metrics = json.loads(json.dumps({"n": 106, "seed": 0, "diversity": 42.6, "l1": 0.21, "psnr": 11.4,
                                     "ssim": 0.19, **fidelity}))
    cfg = parse_args(["--recipe", "cpu"]).to_dict()
    write_model_card(tmp_path, cfg, _card_summary(metrics))
    card = (tmp_path / "README.md").read_text()
    assert "median / worst seed | 0.994 / 0.897 (seed 6); 1 seeds under 0.90 |" in card
    assert "| 0.873 / 0.523 (seed 6, row 3 column 4); 2 seeds under 0.70 |" in card
    assert "region fidelity worst seed 0.523 (2 under 0.70)" in metrics_text(metrics)


def test_a_run_planned_in_steps_says_so_and_claims_no_step_exact_command(tmp_path):
    from train.config import parse_args
    from train.report import write_model_card

    cfg = parse_args(["--recipe", "cpu", "--time-budget", "3m"]).to_dict()
    summary = {**_card_summary(None), "steps_constant": 21, "steps_decay": 21, "steps": 42}
    write_model_card(tmp_path, cfg, summary)
    card = (tmp_path / "README.md").read_text()
    assert "| schedule | 21 steps at constant lr + 21 of linear decay |" in card
    assert "| step-exact command | none: this run was planned in steps (21 constant + 21 decaying)" in card
    assert "--epochs-decay 85`" not in card


def test_the_step_exact_command_names_every_option_that_changed_the_weights():
    from train.config import parse_args
    from train.report import reproduce_command

    cfg = parse_args(["--recipe", "cpu", "--lr-d", "3e-4", "--no-flip", "--init-from", "/a/b/published", "--seed", "3",
                      "--data", "/x/facades", "--num-workers", "2", "--no-progress"]).to_dict()
    command = reproduce_command(cfg, {"epochs_constant": 7, "epochs_decay": 9})
    assert command.startswith("python -m train --recipe cpu --epochs 7 --epochs-decay 9 ")
    for part in ("--lr-d 0.0003", "--no-flip", "--init-from published", "--seed 3"):
        assert f" {part}" in command, part
    assert "/x/" not in command and "--num-workers" not in command and "--ngf" not in command  # the recipe's own


def test_a_run_from_before_an_option_existed_is_repeated_with_that_option_off():
    from train.config import parse_args
    from train.report import reproduce_command

    cfg = parse_args(["--recipe", "cpu"]).to_dict()
    assert reproduce_command(cfg, {"epochs_constant": 85, "epochs_decay": 85}) == \
        "python -m train --recipe cpu --epochs 85 --epochs-decay 85"
    assert cfg["ms_on"] == "dfeat"  # the recipe's mode seeking is measured on D's features since issue 44
    for later in ("lambda_fm", "code_scale_max", "code_max_norm", "ms_on"):  # runs of before these had none of them
        del cfg[later]
    command = reproduce_command(cfg, {"epochs_constant": 85, "epochs_decay": 85})
    head, tail = command.split(" --epochs-decay 85 ")
    assert sorted((" " + tail).split(" --")[1:]) == ["code-max-norm 0", "code-scale-max 1", "lambda-fm 0",
                                                     "ms-on pixel"], command


def test_the_sketch_grid_shows_the_seeds_asked_for(tmp_path):
    from PIL import Image

    from pix2pix import Pix2Pix, UnetGenerator
    from train.sketches import sketch_grid

    torch.manual_seed(0)
    model = Pix2Pix(UnetGenerator(ngf=8, nz=8), device="cpu")
    names = sketch_grid(model, tmp_path / "g.png", facade_seeds=[6, 7])
    grid = np.asarray(Image.open(tmp_path / "g.png").convert("RGB"), float)
    assert grid.shape == (len(names) * 260 + 4, 3 * 260 + 4, 3)  # a label map and two facades a row
    seed6, seed7 = grid[4:260, 264:520], grid[4:260, 524:780]
    assert np.abs(seed6 - seed7).mean() > 1  # two seeds, two facades
