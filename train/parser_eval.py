"""Score the facade parser: ``python -m train.parser_eval --data <facades> [--split test] [--fid] [--time]``.

- pixel accuracy, mean IoU and per-class IoU of the parsed maps against the true maps, raw (the argmax of the
  network's probabilities averaged with the mirrored photo's, as the app reads a photo; and without the mirror)
  and as rectangles (``pix2pix.parser.rectangles``, for each ``--min-areas`` speck size: choose on val);
- ``--fid``: the round trip. Facades drawn by the bundled generator from the parsed maps (raw and as rectangles)
  and from the true maps, over ``--seed-sets`` seed sets (``train.evaluate``'s seeds): each set's FID against the real
  photos, and the FID of the parsed maps' facades against the true maps' facades; the means over the sets;
- ``--time``: one photo's parse (``PhotoParser.parse``, raw and as rectangles) against one facade's
  ``Pix2Pix.generate()``, side by side, interleaved, median of ``--repeats`` (plain fp32 eager, ``--threads``).

Writes the figures as JSON (``--out``) and prints them as the tables of docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from pix2pix import Pix2Pix
from pix2pix.images import image_to_tensor, to_unit
from pix2pix.palette import CLASS_NAMES, PALETTE
from pix2pix.parser import MIN_AREA, PARSER_DIR, TRIM, PhotoParser, rectangles

from .data import split_folder
from .parser import confusion, load_split, predict, scores


def map_scores(parsed: np.ndarray, true: torch.Tensor) -> dict:
    return scores(confusion(parsed, true.numpy()))


def to_inputs(classes: np.ndarray) -> list[torch.Tensor]:
    """Class maps -> the generator's inputs (palette colours in [-1, 1])."""
    table = torch.from_numpy(PALETTE.copy()).float().div(127.5).sub(1)
    return [table[torch.from_numpy(c.astype(np.int64))].permute(2, 0, 1) for c in classes]


def facades(model: Pix2Pix, inputs: list[torch.Tensor], k: int, batch_size: int = 8) -> torch.Tensor:
    """Seed set ``k`` (``train.evaluate.set_seeds``) of facades of ``inputs`` as (N, 3, H, W) uint8."""
    from .evaluate import set_seeds

    out = []
    for start in range(0, len(inputs), batch_size):
        idx = list(range(start, min(start + batch_size, len(inputs))))
        images = model.generate_batch([inputs[i] for i in idx], set_seeds(idx, 0, k))
        out.append(to_unit(torch.stack([image_to_tensor(f) for f in images])).mul(255).round().byte())
    return torch.cat(out)


def round_trip(parsed: dict[str, np.ndarray], true: torch.Tensor, photos: torch.Tensor, seed_sets: int) -> dict:
    """FIDs of the facades drawn from each way of parsing (``parsed``: name -> class maps) and from the true
    maps, against the real photos, and each parsed way's facades against the true maps' (the module's docstring)."""
    from . import fid as fidlib
    from .evaluate import features, mean_std

    model = Pix2Pix.load(device="cpu")
    real = features(photos)
    sets: dict[str, list[float]] = {}
    for k in range(seed_sets):
        drawn = {"true": features(facades(model, to_inputs(true.numpy()), k))}
        drawn.update({name: features(facades(model, to_inputs(maps), k)) for name, maps in parsed.items()})
        for name, feats in drawn.items():
            sets.setdefault(name, []).append(fidlib.fid_from_features(feats, real))
            if name != "true":
                sets.setdefault(f"{name}_vs_true", []).append(fidlib.fid_from_features(feats, drawn["true"]))
        print(f"seed set {k}: " + ", ".join(f"{name} {v[-1]:.1f}" for name, v in sets.items()), flush=True)
    return {name: {"mean": mean_std(v)[0], "std": mean_std(v)[1], "sets": v} for name, v in sets.items()}


def timing(photo: Path, label: Path, repeats: int, parser: PhotoParser) -> dict:
    """Median seconds of one parse and one generate(), interleaved (the same load on the machine for both)."""
    model = Pix2Pix.load(device="cpu")
    times: dict[str, list[float]] = {"parse_rectangles": [], "parse_raw": [], "generate": []}
    for _ in range(3):  # warm-up
        model.generate(label, seed=0)
        parser.parse(photo)
    for _ in range(repeats):
        for name, run in (("generate", lambda: model.generate(label, seed=0)),
                          ("parse_rectangles", lambda: parser.parse(photo, as_rectangles=True)),
                          ("parse_raw", lambda: parser.parse(photo, as_rectangles=False))):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(v) for name, v in times.items()}
    return {**medians, "ratio": max(medians["parse_raw"], medians["parse_rectangles"]) / medians["generate"],
            "repeats": repeats,
            "threads": torch.get_num_threads()}


def table(results: dict) -> str:
    """The Markdown table of pixel accuracy, mean IoU and per-class IoU, one row per way of reading the photos."""
    head = "| parsed maps | pixel acc. | mean IoU | " + " | ".join(CLASS_NAMES) + " |"
    rows = [head, "|" + "---|" * (3 + len(CLASS_NAMES))]
    for name, r in results.items():
        ious = " | ".join("-" if r["iou"][c] is None else f"{r['iou'][c]:.2f}" for c in CLASS_NAMES)
        rows.append(f"| {name} | {r['pixel_accuracy']:.3f} | {r['mean_iou']:.3f} | {ious} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m train.parser_eval", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="facades folder with val/ and test/")
    p.add_argument("--split", default="test")
    p.add_argument("--parser", default=str(PARSER_DIR), help="the parser's folder")
    p.add_argument("--min-areas", default=str(MIN_AREA), help="speck sizes to score the rectangles with (a,b,...)")
    p.add_argument("--trims", default=str(TRIM), help="trims to score the rectangles with (a,b,...; 0: bounding box)")
    p.add_argument("--fid", action="store_true", help="the round trip's FIDs (needs the TF-FID Inception)")
    p.add_argument("--seed-sets", type=int, default=5)
    p.add_argument("--time", action="store_true", help="time a parse against a generate(), side by side")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write the figures here as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = split_folder(Path(args.data), args.split)
    if folder is None:
        raise SystemExit(f"error: {args.data}: no {args.split}/ folder")
    photos, true = load_split(folder)
    parser = PhotoParser.load(args.parser)
    raw = predict(parser.net, photos, flip=parser.flip).numpy()
    other = predict(parser.net, photos, flip=not parser.flip).numpy()
    results = {f"raw (flip={parser.flip}, as the parser reads)": map_scores(raw, true),
               f"raw, flip={not parser.flip}": map_scores(other, true)}
    for area in (int(a) for a in args.min_areas.split(",")):
        for trim in (float(t) for t in args.trims.split(",")):
            results[f"rectangles (min_area {area}, trim {trim})"] = map_scores(
                np.stack([rectangles(r, area, trim) for r in raw]), true)
    out: dict = {"split": args.split, "images": len(photos), "scores": results}
    print(f"{args.split}: {len(photos)} photos\n" + table(results))
    if args.fid:
        out["fid"] = round_trip({"raw": raw, "rectangles": np.stack([rectangles(r) for r in raw])}, true, photos,
                                args.seed_sets)
    if args.time:
        from pix2pix import example_labels, example_photo

        example = example_labels()[0]
        out["time"] = timing(example_photo(example), example, args.repeats, parser)
        print(json.dumps(out["time"]))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
