"""The facade parser: its trainer (a few steps on the shipped examples, resumed step-exactly), the rectangles a
person would paint, the bundled parser on a shipped test photo, and ``python -m pix2pix --from-photo``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import example_labels, example_photo, parse_photo
from pix2pix.__main__ import main as cli
from pix2pix.palette import class_index, rgb_to_index
from pix2pix.parser import (
    PARSER_DIR,
    InceptionParserNet,
    ParserNet,
    PhotoParser,
    build_parser_net,
    classify,
    components,
    load_parser_net,
    rectangles,
    save_parser,
)
from train.fid import load_inception
from train.parser import (
    ParserConfig,
    confusion,
    load_inception_encoder,
    load_split,
    make_state,
    scores,
    step_batch,
    train,
)

WALL, SKY, WINDOW, DOOR, SHOP = (class_index(n) for n in ("facade", "background", "window", "door", "shop"))
#: The shipped test photo the bundled parser is checked on (assets/examples/test064_balconies_photo.jpg).
BALCONIES = next(p for p in example_labels() if p.stem.endswith("balconies"))


@pytest.fixture(scope="module")
def facades(tmp_path_factory) -> Path:
    """The shipped examples as a tiny facades folder: photo | label map side by side, train/ and val/."""
    root = tmp_path_factory.mktemp("facades")
    for split, labels in (("train", example_labels()[:6]), ("val", example_labels()[6:])):
        (root / split).mkdir()
        for i, path in enumerate(labels):
            pair = Image.new("RGB", (512, 256))
            pair.paste(Image.open(example_photo(path)).convert("RGB").resize((256, 256)), (0, 0))
            pair.paste(Image.open(path).convert("RGB").resize((256, 256), Image.NEAREST), (256, 0))
            pair.save(root / split / f"{i}.png")
    return root


def _tiny(facades: Path, run: Path) -> ParserConfig:
    return ParserConfig(data=str(facades), run_dir=str(run), steps=4, batch_size=2, width=4, levels=3, cap=8,
                        warmup=1, eval_every=2, save_every=100, progress=False)


def test_the_parser_trains_and_resumes_step_exactly(facades, tmp_path):
    whole = train(_tiny(facades, tmp_path / "whole"))
    assert whole["step"] in (2, 4) and 0 <= whole["pixel_accuracy"] <= 1
    assert (tmp_path / "whole" / "metrics.jsonl").read_text().count("\n") == 2  # scored on val at steps 2 and 4
    train(_tiny(facades, tmp_path / "parts"), stop_at=3)  # interrupted after step 3 (saved there) ...
    assert torch.load(tmp_path / "parts" / "last.pt", weights_only=False)["step"] == 3
    train(_tiny(facades, tmp_path / "parts"))  # ... and the same command goes on
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "parts" / "last.pt", weights_only=False)
    assert a["step"] == b["step"] == 4
    for key, value in a["net"].items():
        assert torch.equal(value, b["net"][key]), key
    net = load_parser_net(tmp_path / "whole" / "best")  # the best on val, in the shipped folder's layout
    assert net(torch.zeros(1, 3, 256, 256)).shape == (1, 12, 256, 256)
    with pytest.raises(SystemExit, match="another configuration"):
        train(ParserConfig(**{**vars(_tiny(facades, tmp_path / "whole")), "lr": 1.0}))


def test_the_inception_parser_starts_from_the_tf_fid_weights_and_saves_and_loads(tmp_path):
    net = InceptionParserNet(ppm=8, c4=8, c3=8, c2=8, c1=8)
    assert load_inception_encoder(net) == 40  # every convolution of the encoder, to Mixed_6b
    state = load_inception().state_dict()
    assert torch.equal(net.mix6[-1].branch_pool.conv.weight, state["net.layers.mixed_4.tower_2.conv.weight"])
    assert torch.equal(net.stem1[0].bn.bias, state["net.layers.conv.beta"])
    net.eval()
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        # the encoder computes what the TF-FID network computes (up to its pools, which leave out the padding)
        ours = net.mix6(net.mix5(net.stem2(net.stem1(x))))
        theirs = x
        for name in ("conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1", *(
                f"mixed{s}" for s in ("", "_1", "_2", "_3", "_4"))):
            theirs = getattr(load_inception().net.layers, name)(theirs)
        assert torch.nn.functional.cosine_similarity(ours.flatten(), theirs.flatten(), 0) > 0.9
        save_parser(net, tmp_path / "inc")
        back = load_parser_net(tmp_path / "inc")
        assert isinstance(back, InceptionParserNet) and back.config() == net.config()
        assert torch.allclose(back(x), net(x), atol=0.05)  # float16 on disk
    # the pretrained encoder learns at encoder_lr of the rate, the new layers at the rate itself
    _, opt, _ = make_state(ParserConfig(arch="inception", lr=1e-3, encoder_lr=0.1))
    new, encoder = opt.param_groups
    assert encoder["lr"] == pytest.approx(0.1 * new["lr"]) and len(encoder["params"]) > len(new["params"])
    with pytest.raises(ValueError, match="unknown parser architecture 'vit'"):
        build_parser_net({"arch": "vit"})
    assert isinstance(build_parser_net({"width": 4, "levels": 3, "cap": 8}), ParserNet)  # a folder made before arch


def test_a_parser_trained_without_the_mirror_reads_without_it_and_is_scored_so(facades, tmp_path):
    from train.parser_eval import main as parser_eval

    train(ParserConfig(**{**vars(_tiny(facades, tmp_path / "one")), "flip": False}))
    assert PhotoParser.load(tmp_path / "one" / "best").flip is False  # its config.json says so
    assert PhotoParser.load(tmp_path / "one" / "best", flip=True).flip is True  # unless told otherwise
    assert PhotoParser.load(PARSER_DIR).flip is True  # a folder that says nothing: FLIP
    out = parser_eval(["--data", str(facades), "--split", "val", "--parser", str(tmp_path / "one" / "best"),
                       "--min-areas", "12", "--trims", "0.35", "--out", str(tmp_path / "eval.json")])
    assert list(out["scores"]) == ["raw (flip=False, as the parser reads)", "raw, flip=True",
                                   "rectangles (min_area 12, trim 0.35)"]
    val = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    best = max(val, key=lambda r: r["pixel_accuracy"])  # the trainer scored val as the parser reads
    assert out["scores"]["raw (flip=False, as the parser reads)"]["pixel_accuracy"] == pytest.approx(
        best["pixel_accuracy"], abs=0.02)  # bf16 in training, fp32 here
    assert (tmp_path / "eval.json").is_file()


def test_synthetic_facades_join_the_batches_and_resume_from_their_cache(facades, tmp_path, tiny_weights):
    config = ParserConfig(**{**vars(_tiny(facades, tmp_path / "synth")), "synthetic": 2,
                             "synthetic_share": 1.0, "generator": str(tiny_weights)})
    train(config, stop_at=2)
    pool = torch.load(tmp_path / "synth" / "synthetic.pt", weights_only=True)
    assert pool["photos"].shape == (12, 3, 256, 256) and pool["classes"].shape == (12, 256, 256)  # 6 maps x 2
    assert torch.equal(pool["classes"][0], pool["classes"][1])  # two facades of one map ...
    assert not torch.equal(pool["photos"][0], pool["photos"][1])  # ... are two pictures
    photos, classes = load_split(facades / "train")
    x, y = step_batch(photos, classes, config, 0, (pool["photos"], pool["classes"]))
    real, _ = step_batch(photos, classes, config, 0)
    assert not torch.equal(x, real)  # a share of 1: every sample is a drawn facade, not the photo
    train(config)  # resumes from the cached pool: the same pool, the same steps
    assert torch.load(tmp_path / "synth" / "last.pt", weights_only=False)["step"] == 4


def test_rectangles_are_what_a_person_paints():
    raw = np.full((64, 64), WALL, np.uint8)
    raw[:8] = SKY  # the sky above the facade
    raw[20:30, 10:20] = WINDOW
    raw[22, 10:14] = WALL  # a notch in the window: its rectangle fills it
    raw[30:38, 15] = WINDOW  # a stray arm of a few pixels: it does not stretch the rectangle
    raw[40:64, 30:40] = DOOR
    raw[45:47, 50:52] = SHOP  # a speck: dropped
    raw[30, 5] = SKY  # a speck of sky on the facade: facade
    raw[2, 2] = WINDOW  # and of a window in the sky: the sky
    out = rectangles(raw)
    want = np.full((64, 64), WALL, np.uint8)
    want[:8] = SKY
    want[20:30, 10:20] = WINDOW
    want[40:64, 30:40] = DOOR
    np.testing.assert_array_equal(out, want)
    # The larger part goes down first: a small window on a shop front stays on top of it.
    raw[40:64, 0:30] = SHOP
    raw[50:56, 4:10] = WINDOW
    out = rectangles(raw)
    assert (out[50:56, 4:10] == WINDOW).all() and out[45, 20] == SHOP


def test_components_are_the_4_connected_parts_of_one_class():
    m = np.array([[0, 0, 1, 1],
                  [1, 0, 1, 0],
                  [1, 1, 1, 0],
                  [0, 0, 0, 0]], np.uint8)
    parts = components(m)
    assert len(np.unique(parts)) == 3  # the 0s top left, the 1s, the 0s right and bottom
    assert parts[0, 0] == parts[1, 1] and parts[0, 2] == parts[2, 0] and parts[1, 3] == parts[3, 0]
    assert parts[0, 0] != parts[3, 0]
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 2, (32, 32)).astype(np.uint8)
    parts = components(noise)
    for y, x in zip(*np.nonzero(noise[:, :-1] == noise[:, 1:]), strict=True):  # neighbours of one class share a part
        assert parts[y, x] == parts[y, x + 1]
    for y, x in zip(*np.nonzero(noise[:, :-1] != noise[:, 1:]), strict=True):
        assert parts[y, x] != parts[y, x + 1]


def test_a_mirrored_photo_is_read_into_the_mirrored_map():
    """With ``flip`` a photo's reading averages it with its mirror's, so a mirrored photo gives exactly the mirrored
    classes; one reading alone (an untrained, lopsided network) does not."""
    torch.manual_seed(0)
    net = ParserNet(width=8, levels=3, cap=16).eval()
    with torch.no_grad():
        for p in net.parameters():  # weights that give several classes (a fresh network gives one everywhere)
            p.normal_(0, 0.3)
    photos = torch.rand(2, 3, 64, 64) * 2 - 1
    both = classify(net, torch.cat([photos, photos.flip(-1)]))
    assert both.shape == (4, 64, 64) and both.dtype == torch.uint8
    assert torch.equal(both[2:], both[:2].flip(-1)) and len(both.unique()) > 1
    one = classify(net, torch.cat([photos, photos.flip(-1)]), flip=False)
    assert not torch.equal(one[2:], one[:2].flip(-1))


@pytest.mark.skipif(not (PARSER_DIR / "model.safetensors").is_file(), reason="no bundled parser")
def test_the_bundled_parser_reads_a_test_photo_into_its_label_map(tmp_path):
    label = BALCONIES
    photo, true = example_photo(label), rgb_to_index(Image.open(label))
    assert (PARSER_DIR / "model.safetensors").stat().st_size <= 10_000_000  # the budget: at most 10 MB
    labels = parse_photo(photo)  # 0.75 of its pixels right (the parser's mean over the test photos: 0.68)
    assert labels.size == (256, 256)
    assert (rgb_to_index(labels) == true).mean() >= 0.70
    squares = rgb_to_index(parse_photo(photo, as_rectangles=True))  # the option: the parts as rectangles
    assert (squares == true).mean() >= 0.70 and (squares != rgb_to_index(labels)).any()
    # Any size: a wide photo is squeezed to the grid, as label maps are, and the parse says so.
    wide = tmp_path / "wide.jpg"
    Image.open(photo).resize((600, 300)).save(wide)
    parsed = PhotoParser.load().parse(wide, as_rectangles=False)
    assert parsed.squeezed and parsed.size == (600, 300) and parsed.labels.size == (256, 256)
    result = scores(confusion(parsed.raw, true))
    assert result["pixel_accuracy"] >= 0.65 and result["iou"]["window"] > 0.4


@pytest.mark.skipif(not (PARSER_DIR / "model.safetensors").is_file(), reason="no bundled parser")
def test_cli_from_photo_writes_the_map_and_its_facades(tmp_path, tiny_weights, capsys):
    photo = example_photo(BALCONIES)
    bad = tmp_path / "broken.jpg"
    bad.write_text("not an image")
    status = cli(["--from-photo", str(photo), "--from-photo", str(bad), "-o", str(tmp_path / "out"),
                  "--weights", str(tiny_weights), "--seed", "3", "--samples", "2", "--device", "cpu"])
    assert status == 1  # the broken one failed, the photo went through
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [f"{photo.stem}_labels.png", f"{photo.stem}_seed3.png", f"{photo.stem}_seed4.png"]
    labels = Image.open(tmp_path / "out" / f"{photo.stem}_labels.png")
    assert labels.size == (256, 256) and (rgb_to_index(labels) == rgb_to_index(Image.open(BALCONIES))).mean() >= 0.65
    assert "broken.jpg: not an image" in capsys.readouterr().err
