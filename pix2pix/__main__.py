"""Command-line inference: ``python -m pix2pix LABELS... -o OUTDIR``.

Each label map (or every image in a folder given) becomes ``OUTDIR/<name>_seed<S>.png`` (or
``<name>.png`` with ``--deterministic``). ``--from-photo PHOTO`` starts from a photo of a facade instead:
the facade parser (``pix2pix.parser``) reads it into a label map, written as ``OUTDIR/<name>_labels.png``,
and its facades are drawn from that map like any other's. A file that fails is reported and the rest go on; the exit
status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from .parser import AS_RECTANGLES
from .predictor import Pix2Pix, WeightsNotFoundError
from .seeds import MAX_SEED, check_seed, random_seed, seed_range
from .speed import PRECISION_HELP, PRECISIONS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pix2pix", description="Render facades from CMP label maps.")
    p.add_argument("labels", nargs="*", type=Path, help="label map images, or folders of them")
    p.add_argument("--from-photo", action="append", type=Path, default=[], metavar="PHOTO",
                   help="a photo of a facade: read into a label map (written as <name>_labels.png), then drawn "
                   "from like any label map (repeatable; any size: squeezed to 256x256 as label maps are)")
    p.add_argument("--rectangles", action=argparse.BooleanOptionalAction, default=AS_RECTANGLES,
                   help="with --from-photo: the parts redrawn as rectangles (a person's way to paint them), or the "
                   "parser's raw classes (the default: they score a hair higher against the true maps)")
    p.add_argument("--parser", default=None, help="facade parser folder (default: the bundled assets/parser)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (created if missing)")
    p.add_argument("--weights", help="weights folder, .safetensors, official .pth or Hub repo id "
                   "(default: $PIX2PIX_WEIGHTS, then assets/weights)")
    p.add_argument("--seed", type=_seed, default=None, help=f"seed of the first sample, 0..{MAX_SEED}; sample i uses "
                   "seed + i (default: random)")
    p.add_argument("--samples", type=int, default=1, help="variations per label map (default: 1)")
    p.add_argument("--deterministic", action="store_true", help="dropout off: one fixed result per label map")
    p.add_argument("--keep-size", action="store_true", help="resize results to each input's size")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    args = p.parse_args(argv)
    if not args.labels and not args.from_photo:
        p.error("give label maps (or folders of them), or --from-photo PHOTO")
    if args.samples < 1:
        p.error("--samples must be at least 1")
    if args.seed is not None:
        try:
            seed_range(args.seed, args.samples)
        except ValueError as e:
            p.error(f"--seed: {e}")
    if args.out.exists() and not args.out.is_dir():
        p.error(f"-o/--out: {args.out} is a file, not a folder; give a folder for the images")
    return args


def _seed(text: str) -> int:
    try:
        return check_seed(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def expand(paths: list[Path]) -> list[Path]:
    """Folders become the images in them (sorted); files are kept as given, even unknown ones."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise SystemExit(f"error: {path}: no images in this folder ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files += found
        else:
            files.append(path)
    return files


def _note_if_stretched(path: Path, keep_size: bool) -> None:
    """Say so when a label map was not square: it is stretched to 256x256, as the data set's label maps were."""
    with Image.open(path) as image:
        width, height = image.size
    if width != height:
        back = "the result is stretched back to its shape" if keep_size else "--keep-size stretches the result back"
        tqdm.write(f"note: {path.name} is {width}x{height}: stretched to square for the model; {back}")


def _load_parser(folder: str | None):
    from .parser import PARSER_DIR, PhotoParser

    return PhotoParser.load(folder or PARSER_DIR)


def _read_photo(parser, path: Path, args: argparse.Namespace):
    """The label map read from a photo, written beside the facades as ``<name>_labels.png``."""
    parsed = parser.parse(path, as_rectangles=args.rectangles)
    parsed.labels.save(args.out / f"{path.stem}_labels.png")
    if parsed.squeezed:
        tqdm.write(f"note: {path.name} is {parsed.size[0]}x{parsed.size[1]}: squeezed to square to be read")
    return parsed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    files = [(path, False) for path in expand(args.labels)] + [(path, True) for path in args.from_photo]
    try:
        parser = _load_parser(args.parser) if args.from_photo else None
        model = Pix2Pix.load(args.weights, device=args.device)
        model.choose_fastest(precision=args.precision)  # the CLI, like the app, asks for the fastest here
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, WeightsNotFoundError) else 1
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"error: cannot create the output folder {args.out}: {e.strerror or e}", file=sys.stderr)
        return 1
    failed = written = 0
    for path, is_photo in tqdm(files, desc="generating", unit="image", disable=None):
        try:
            stochastic = not args.deterministic
            seed = args.seed if args.seed is not None else random_seed(args.samples)
            parsed = _read_photo(parser, path, args) if is_photo else None
            written += is_photo
            source = parsed.labels if parsed else path
            images = model.generate(source, seed=seed, num_samples=1 if args.deterministic else args.samples,
                                    stochastic=stochastic, keep_size=args.keep_size)
            if not parsed:
                _note_if_stretched(path, args.keep_size)
            elif args.keep_size:
                images = [image.resize(parsed.size, Image.BICUBIC) for image in images]
            for i, image in enumerate(images):
                name = f"{path.stem}.png" if args.deterministic else f"{path.stem}_seed{seed + i}.png"
                image.save(args.out / name)
                written += 1
        except (OSError, ValueError) as e:
            failed += 1
            tqdm.write(f"error: {e}", file=sys.stderr)
    print(f"{written} image(s) written to {args.out}" + (f"; {failed} input(s) failed" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
