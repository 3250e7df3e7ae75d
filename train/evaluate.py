"""``python -m train.evaluate --weights W --data DIR/test``: L1, PSNR and SSIM over a split, and an HTML page.

Generation uses ``Pix2Pix.generate_batch`` with dropout on and seed ``seed + i`` for image ``i``, so the
figures repeat exactly. Metrics are on [0, 1] images: L1 = mean |generated - real|, PSNR = 10 log10(1 / MSE)
per image then averaged, SSIM with an 11x11 gaussian window (sigma 1.5) per channel, averaged.
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


@torch.no_grad()
def evaluate(model: Pix2Pix, dataset: PairedDataset, seed: int = 0, batch_size: int = 8, out: Path | None = None,
             progress: bool = False) -> dict:
    """Metrics of ``model`` over ``dataset`` (plain resize, no jitter); writes ``out/index.html`` when given."""
    from tqdm import tqdm

    scores = {"l1": [], "psnr": [], "ssim": []}
    rows = []
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
<p>L1 {result['l1']:.4f} &middot; PSNR {result['psnr']:.2f} dB &middot; SSIM {result['ssim']:.4f}
(dropout on, seeds {result['seed']}..{result['seed'] + result['n'] - 1})</p>
<table><tr><th></th><th>input</th><th>generated</th><th>real</th></tr>{body}</table></body></html>""")


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
    args = p.parse_args(argv)
    if not args.data and not (args.data_a and args.data_b):
        p.error("give --data DIR or --data-a DIR --data-b DIR")
    model = Pix2Pix.load(args.weights, device=args.device, precision=args.precision)
    pairs = find_pairs(Path(args.data) if args.data else None, args.data_a and Path(args.data_a),
                       args.data_b and Path(args.data_b), limit=args.limit)
    pairs, skipped = check_pairs(pairs)
    dataset = PairedDataset(pairs, model.image_size, model.image_size, args.direction, args.snap_labels)
    result = evaluate(model, dataset, seed=args.seed, batch_size=args.batch_size, out=Path(args.out), progress=True)
    print(f"L1 {result['l1']:.4f}  PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f}  over {result['n']} images"
          f"{f' ({len(skipped)} unreadable skipped)' if skipped else ''}; page: {Path(args.out) / 'index.html'}")
    return result


def evaluate_generator(generator: UnetGenerator, dataset: PairedDataset, device=None, seed: int = 0,
                       progress: bool = False) -> dict:
    """Metrics in fp32, so that a run's figures do not depend on the machine's bf16 support."""
    return evaluate(Pix2Pix(generator, device=device, precision="fp32"), dataset, seed=seed, progress=progress)


if __name__ == "__main__":
    main()
