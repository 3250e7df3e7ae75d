"""Layout fidelity (``train.fidelity``): the measure catches a seed that ignores part of the painted map, the
segmenter trains, saves and loads, and ``train.evaluate`` reports the worst seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import PALETTE, Pix2Pix, UnetGenerator
from pix2pix.images import tensor_to_image
from train import fidelity
from train.fidelity import (
    FIDELITY_FLOOR,
    REGION_FLOOR,
    REGION_GRID,
    SegmenterError,
    fidelity_line,
    layout_fidelity,
    load_segmenter,
    region_line,
    save_segmenter,
    to_classes,
)


class PaletteSegmenter(torch.nn.Module):
    """An oracle for images drawn in the palette: the nearest palette colour's class gets the highest logit."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(to_classes(x), 12).permute(0, 3, 1, 2).float()


class Painter:
    """A 'generator' that draws the label map itself, except that ``ignoring`` seeds paint the right ``part`` of
    the width as plain facade whatever was painted there (the memorised-strip failure)."""

    def __init__(self, ignoring: set[int], part: float = 0.5):
        self.ignoring, self.part = ignoring, part

    def generate_batch(self, inputs, seeds):
        out = []
        for x, seed in zip(inputs, seeds):
            x = x.clone()
            if seed in self.ignoring:
                facade = torch.tensor(PALETTE[1].tolist(), dtype=torch.float32).view(3, 1, 1) / 127.5 - 1
                x[:, :, round(x.shape[-1] * (1 - self.part)):] = facade
            out.append(tensor_to_image(x))
        return out


def _maps(n: int = 6, size: int = 64, seed: int = 0) -> list[torch.Tensor]:
    """Label maps in [-1, 1] with windows everywhere (the right half included)."""
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(n):
        m = np.empty((size, size, 3), np.uint8)
        m[:] = PALETTE[1]
        for y in range(2, size - 10, 14):  # a grid of windows, doors, balconies ... over the whole facade
            for x in range(2, size - 8, 12):
                m[y:y + 10, x:x + 8] = PALETTE[rng.integers(2, 12)]
        maps.append(torch.from_numpy(m).permute(2, 0, 1).float() / 127.5 - 1)
    return maps


def test_fidelity_catches_a_seed_that_ignores_half_of_the_map():
    maps = _maps()
    seg = PaletteSegmenter()
    faithful = layout_fidelity(Painter(set()), seg, maps, maps, seeds=range(8))
    assert faithful["fidelity"] == pytest.approx(1.0) and faithful["fidelity_under"] == []
    assert faithful["fidelity_real_acc"] == pytest.approx(1.0)

    broken = layout_fidelity(Painter({3, 7}), seg, maps, maps, seeds=range(8))
    assert broken["fidelity_worst_seed"] in (3, 7) and broken["fidelity_worst"] < FIDELITY_FLOOR
    assert broken["fidelity_under"] == [3, 7]
    assert broken["fidelity"] == pytest.approx(1.0)  # the median seed is fine: only the worst seeds show it
    assert all(broken["fidelity_seeds"][s] == pytest.approx(1.0) for s in (0, 1, 2, 4, 5, 6))
    line = fidelity_line(broken)
    assert "2 of 8 seeds under 0.90 (3, 7)" in line and "worst seed" in line


def test_the_region_score_catches_a_strip_that_the_whole_image_score_passes():
    """A seed that draws plain facade over the right fifth of every map: its whole-image accuracy stays above the
    floor (most of the facade is right), but the right column of cells falls far under the real photos there."""
    maps = _maps()
    result = layout_fidelity(Painter({6}, part=0.2), PaletteSegmenter(), maps, maps, seeds=range(8))
    assert result["fidelity_under"] == [] and result["fidelity_seeds"][6] > FIDELITY_FLOOR
    assert result["region_under"] == [6] and result["region_worst_seed"] == 6
    assert result["region_worst"] < REGION_FLOOR and result["region_worst_cell"][1] == REGION_GRID - 1
    assert all(result["region_seeds"][s] == pytest.approx(1.0) for s in (0, 1, 2, 3, 4, 5, 7))
    assert result["region"] == pytest.approx(1.0)
    assert f"worst seed 6 ({result['region_worst']:.3f}, row" in region_line(result)
    assert "1 of 8 seeds under 0.70 (6)" in region_line(result)


def test_fidelity_is_relative_to_the_real_photos():
    maps = _maps()
    seg = PaletteSegmenter()
    blurred = [torch.full_like(m, -1) for m in maps]  # 'real photos' the segmenter reads worse than the facades
    result = layout_fidelity(Painter(set()), seg, maps, blurred, seeds=range(2))
    assert result["fidelity_real_acc"] < 0.5 and result["fidelity"] > 1.5


def _write_pairs(root, n: int, size: int = 64, seed: int = 0) -> None:
    """Side-by-side pairs whose 'photo' is the label map in other colours (learnable), photo | labels."""
    root.mkdir(parents=True, exist_ok=True)
    for i, m in enumerate(_maps(n, size, seed)):
        labels = m.add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()
        photo = (255 - labels[:, :, ::-1]).copy()
        Image.fromarray(np.concatenate([photo, labels], axis=1)).save(root / f"{i + 1}.png")


def test_the_segmenter_command_trains_caches_and_loads(tmp_path, capsys):
    _write_pairs(tmp_path / "data" / "train", 6)
    _write_pairs(tmp_path / "data" / "val", 2, seed=1)
    out = fidelity.main(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "seg"), "--steps", "40",
                         "--width", "4", "--batch-size", "4"])
    config = json.loads((out / "segmenter.json").read_text())
    assert config["steps"] == 40 and config["pairs"] == 6 and 0 <= config["val_accuracy"] <= 1
    assert config["train_accuracy"] > 0.5  # the classes are the colours here: 40 steps learn most of them
    seg = load_segmenter(out)
    assert not seg.training
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    assert torch.equal(seg(x), load_segmenter(out)(x))
    assert "pixel accuracy on the real photos" in capsys.readouterr().out


def test_a_missing_or_broken_segmenter_says_how_to_make_one(tmp_path):
    with pytest.raises(SegmenterError, match="python -m train.fidelity --data"):
        load_segmenter(tmp_path / "nothing")
    folder = save_segmenter(fidelity.Segmenter(4), tmp_path / "seg", {})
    (folder / "segmenter.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(SegmenterError, match="cannot be read"):
        load_segmenter(folder)
    with pytest.raises(SystemExit, match="no images found"):
        (tmp_path / "empty" / "train").mkdir(parents=True)
        fidelity.main(["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "x"), "--steps", "1"])


def test_evaluate_reports_fidelity_per_seed_and_the_worst_seed(tmp_path, capsys):
    from train.evaluate import main

    _write_pairs(tmp_path / "pairs", 2)
    torch.manual_seed(0)
    UnetGenerator(ngf=8, num_downs=6, nz=8).eval().save_pretrained(tmp_path / "w")
    save_segmenter(fidelity.Segmenter(4), tmp_path / "seg", {})
    argv = ["--weights", str(tmp_path / "w"), "--data", str(tmp_path / "pairs"), "--device", "cpu", "--no-fid",
            "--out", str(tmp_path / "e")]
    result = main([*argv, "--segmenter", str(tmp_path / "seg")])
    assert sorted(result["fidelity_seeds"]) == list(range(32)) and result["fidelity_maps"] == 2
    assert result["fidelity_worst"] == min(result["fidelity_seeds"].values())
    out = capsys.readouterr().out
    assert f"worst seed {result['fidelity_worst_seed']}" in out
    assert "worst seed" in (tmp_path / "e" / "index.html").read_text()
    saved = json.loads((tmp_path / "e" / "result.json").read_text())
    assert saved["fidelity_worst_seed"] == result["fidelity_worst_seed"] and len(saved["fidelity_seeds"]) == 32
    skipped = main([*argv, "--segmenter", str(tmp_path / "none")])
    assert "fidelity" not in skipped and "layout fidelity skipped: no layout segmenter" in capsys.readouterr().out


def test_pix2pix_models_are_scored_as_they_draw(tmp_path):
    """The fidelity of a real (tiny) generator goes through ``generate_batch`` with the seed for every map."""
    torch.manual_seed(0)
    model = Pix2Pix(UnetGenerator(ngf=8, num_downs=6, nz=8).eval(), device="cpu", precision="fp32")
    maps = _maps(3)
    seen = []

    class Spy:
        def generate_batch(self, inputs, seeds):
            seen.append(list(seeds))
            return model.generate_batch(inputs, seeds)

    result = layout_fidelity(Spy(), PaletteSegmenter(), maps, maps, seeds=[5, 9], batch_size=2)
    assert seen == [[5, 5], [5], [9, 9], [9]] and set(result["fidelity_seeds"]) == {5, 9}
