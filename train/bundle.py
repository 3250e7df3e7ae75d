"""``python -m train.bundle --run runs/default``: make a finished run the repository's default model.

Writes ``assets/weights/`` (config.json + model.safetensors in fp16, which ``UnetGenerator.from_pretrained``
upcasts on load: half the bytes, and the generated images move by about a grey level), its model card
(the run's card, re-evaluated on the fp16 weights with ``--data``, beside the weights it replaces, plus how the
recipe differs from the paper's) and
``assets/results.jpg`` (each example test label map | ours with seeds 0..3 | the real photo, so that the
variety between seeds can be seen; JPEG at quality 90: a fifth of the PNG's 5 MB, for the README's first screen).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import save_file
from torchvision.transforms.functional import to_pil_image
from torchvision.utils import make_grid

from pix2pix import Pix2Pix, example_labels
from pix2pix.assets import ASSETS_DIR, BUNDLED_WEIGHTS, example_photo
from pix2pix.images import image_to_tensor, to_unit
from pix2pix.models import CONFIG_NAME, WEIGHTS_NAME

from .evaluate import SEED_SETS, SEED_STRIDE, evaluate, spread
from .fidelity import find_segmenter
from .report import MS_ON_DFEAT, card_metadata, metrics_text, with_metadata

DIFFERENCES = """
## How this model differs from the paper's recipe, and why

It was trained with `--recipe cpu` on two CPU cores, because no GPU is lent to this project. Each change was
chosen by an ablation on the val split: the first ones at equal wall time, the feature matching, the scaled
training codes and the shortened codes at equal steps (val FID and KID over 5 seed sets, seed diversity and
each seed's layout fidelity; the "Ablations" tables of facade-pix2pix's docs/results.md):

| | paper (`--recipe paper`) | this model (`--recipe cpu`) | why |
| --- | --- | --- | --- |
| generator width | ngf 64 (54.4M parameters) | ngf 32 (13.8M parameters) | about 4x fewer FLOPs per image |
| discriminator width | ndf 64 | ndf 32 | the same saving on the other network |
| stochasticity | dropout 0.5 only | dropout 0.5 + a latent code of 8 numbers at every encoder block, both drawn from the seed | the paper's dropout alone gives seeds that look the same (seed diversity 8 grey levels) |
| codes in training | - | each code scaled by a factor drawn uniformly from 1/1.6 to 1.6 | long codes, which some seeds draw, are trained to follow the layout too (a lower FID and fewer seeds that ignore the layout at equal steps) |
| codes at inference | - | a code longer than 2 is shortened to 2 (`code_max_norm` in config.json; chosen on val for this model: the longest that leaves no seed of 0..31 under either fidelity floor) | seeds with long codes follow the painted layout |
| loss | GAN + 100 x L1 | GAN + 10 x L1 + 1 x mode seeking (MSGAN, Mao et al. 2019) + 10 x feature matching on D's layers (pix2pixHD) | the mode-seeking term makes two codes give two facades; a lighter L1 stops pulling every seed to the same mean; feature matching gave a lower FID at equal steps for 1.06x the cost of a step |
| batch | 1 | 2 label maps x 2 codes, lr 2e-4 x sqrt(4) = 4e-4 | the mode-seeking term needs two codes per map; fuller use of the cores |
| exported weights | the last ones | an EMA of the generator, decay 0.999 | smoother weights, a lower FID for the same steps |
| precision | fp32 | bf16 autocast where a timed step is faster (the losses in fp32) | 1.6-2x faster steps on CPUs with AVX512-BF16 |
| epochs | 100 + 100 | `--epochs E --epochs-decay D` (the step-exact command above), or fitted to `--time-budget` | the steps a CPU can give |
| lr decay | per epoch | the same line counted per step | a short decay still reaches ~0 |
| compile | no | `torch.compile` | faster steps on the CPU |

The optimiser (Adam, betas 0.5 / 0.999), the 70x70 PatchGAN, the U-Net's depth, the jitter (resize to 286,
random 256 crop, flip) and dropout at test time are the paper's. The weights are stored in fp16 (upcast to
fp32 on load).
"""  # noqa: E501 (a markdown table: one row a line)


#: The loss row of DIFFERENCES for a run whose mode-seeking term measured the discriminator's features
#: (``--ms-on dfeat``, the cpu recipe since issue 44) instead of the pixels.
MS_PIXEL = "1 x mode seeking (MSGAN, Mao et al. 2019)"
MS_DFEAT = (MS_PIXEL + " measured on D's features, where a new tint does not count "
            "(`--ms-on dfeat`: seeds whose detail differs, and a lower FID at equal steps)")


def differences(card: str) -> str:
    """The card's "how this model differs from the paper" section, for the run whose own card is ``card`` (its
    recipe table says what the mode-seeking term measured: ``report.variation_text``)."""
    return DIFFERENCES.replace(MS_PIXEL, MS_DFEAT) if MS_ON_DFEAT in card else DIFFERENCES


def save_fp16(export: Path, out: Path) -> None:
    """config.json as the run wrote it, the weights as fp16 safetensors."""
    out.mkdir(parents=True, exist_ok=True)
    model = Pix2Pix.load(export, device="cpu").generator
    save_file({k: v.detach().half().contiguous() for k, v in model.state_dict().items()}, str(out / WEIGHTS_NAME),
              metadata={"format": "pt"})
    (out / WEIGHTS_NAME).chmod(0o644)
    shutil.copyfile(export / CONFIG_NAME, out / CONFIG_NAME)


#: The README's results grid. A picture, not a measurement: JPEG at 90 is 1 MB where the PNG was 5 MB.
RESULTS_GRID = ASSETS_DIR / "results.jpg"
JPEG_QUALITY = 90


def results_grid(model: Pix2Pix, path: Path, seed: int = 0, num_seeds: int = 4) -> Path:
    """One example a row: label map | generated with seeds ``seed`` .. ``seed + num_seeds - 1`` (one batched
    forward) | real photo."""
    tiles = []
    for labels in example_labels():
        fakes = model.generate(labels, seed=seed, num_samples=num_seeds)
        real = Image.open(example_photo(labels)).convert("RGB").resize(fakes[0].size, Image.BICUBIC)
        label = Image.open(labels).convert("RGB").resize(fakes[0].size, Image.NEAREST)
        tiles += [to_unit(image_to_tensor(im)) for im in (label, *fakes, real)]
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = to_pil_image(make_grid(torch.stack(tiles), nrow=num_seeds + 2, padding=4, pad_value=1.0))
    grid.save(path, quality=JPEG_QUALITY)  # quality is ignored for a .png path
    return path


def evaluate_on(model: Pix2Pix, data: Path, seed_sets: int = SEED_SETS, segmenter=None) -> dict:
    """``train.evaluate``'s figures (FID, KID and seed diversity where the FID extra is installed; the layout
    fidelity with a ``segmenter``) on a split: FID and KID as the mean +- sample std over ``seed_sets`` seed
    sets, as the CLI and the trainer report them."""
    from .data import PairedDataset, check_pairs, find_pairs

    pairs, _ = check_pairs(find_pairs(data))
    return evaluate(model, PairedDataset(pairs, model.image_size, model.image_size), seed=0, progress=True,
                    seed_sets=seed_sets, segmenter=segmenter)


def seeds_text(m: dict) -> str:
    """How the figures of ``m`` were drawn, for the card."""
    sets = m.get("seed_sets", 1)
    if sets < 2:
        return "dropout on, seed i for image i"
    return (f"dropout on; FID and KID: mean +- sample std over {sets} seed sets, image i of set k with seed "
            f"i + {SEED_STRIDE}k; the rest: set 0")


def comparison(previous: dict, new: dict, split: str) -> str:
    """The model card's table: the weights this bundle replaced beside the new ones, on the same split."""
    rows = [("FID (lower is better)", "fid", ".1f"), ("KID", "kid", ".4f"),
            ("seed diversity (grey levels)", "diversity", ".1f"),
            ("detail sameness of seeds (lower: more different buildings)", "detail_sameness", ".2f"),
            ("layout fidelity, worst of seeds 0..31", "fidelity_worst", ".3f"),
            ("region fidelity (worst 4x4 cell), worst of seeds 0..31", "region_worst", ".3f"),
            ("L1", "l1", ".4f"), ("PSNR", "psnr", ".2f"), ("SSIM", "ssim", ".4f")]
    lines = [f"\n## Against the model it replaced\n\nBoth as bundled (fp16), on the {new['n']} images of "
             f"`{split}`, {seeds_text(new)} (`python -m train.evaluate`):\n",
             "| | previous bundled model | this model |", "| --- | --- | --- |"]
    unit = {"psnr": " dB"}
    lines += [f"| {name} | " + " | ".join(spread(m, key, fmt) + unit.get(key, "") for m in (previous, new)) + " |"
              for name, key, fmt in rows if key in previous and key in new]
    return "\n".join(lines) + "\n"


def bundle(run: Path, out: Path = BUNDLED_WEIGHTS, results: Path = RESULTS_GRID,
           data: Path | None = None, seed_sets: int = SEED_SETS, segmenter=None) -> dict:
    """``data``: a split to evaluate the fp16 weights on, and the weights already in ``out`` (the model
    being replaced) too, so that the card shows the two side by side (the same ``seed_sets`` for both; the
    layout fidelity too with a ``segmenter``)."""
    export = run / "export"
    previous = None
    if data is not None and (out / WEIGHTS_NAME).is_file():
        previous = evaluate_on(Pix2Pix.load(out, device="cpu"), data, seed_sets, segmenter)
    save_fp16(export, out)
    model = Pix2Pix.load(out, device="cpu")
    results_grid(model, results)
    card = (export / "README.md").read_text() if (export / "README.md").is_file() else ""
    metrics = None
    if data is not None:
        metrics = evaluate_on(model, data, seed_sets, segmenter)
        card += (f"\n## The bundled fp16 weights\n\nOn the {metrics['n']} images of `{data.name}` "
                 f"({seeds_text(metrics)}; `python -m train.evaluate`): {metrics_text(metrics)}.\n")
        if previous is not None:
            card += comparison(previous, metrics, data.name)
    if metrics is not None:  # the Hub's model-index: the bundled weights' own figures on this split
        card = with_metadata(card, card_metadata(metrics, data.name))
    card = card.replace("![samples](sample.png)", f"![results]({os.path.relpath(results, out)})")
    (out / "README.md").write_text(card + differences(card))
    for extra in ("sample.png",):
        (out / extra).unlink(missing_ok=True)
    return {"weights": str(out), "results": str(results), "metrics": metrics, "previous": previous}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m train.bundle", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", required=True, type=Path, help="a finished run folder (with export/)")
    p.add_argument("--out", type=Path, default=BUNDLED_WEIGHTS, help="where the weights and model card go")
    p.add_argument("--results", type=Path, default=RESULTS_GRID, help="the README's results grid")
    p.add_argument("--data", type=Path, help="a split to evaluate the fp16 weights on, and the weights they "
                   "replace, side by side in the card (e.g. facades/test)")
    p.add_argument("--seed-sets", type=int, default=SEED_SETS, help="FID and KID: mean and sample std over this many "
                   "seed sets (as python -m train.evaluate)")
    p.add_argument("--segmenter", type=Path, default=None, metavar="DIR", help="the layout segmenter (default: the "
                   "one `python -m train.fidelity` caches); without one, the card has no layout fidelity")
    args = p.parse_args(argv)
    if not (args.run / "export" / WEIGHTS_NAME).is_file():
        p.error(f"{args.run}: no export/{WEIGHTS_NAME}; finish the run first (the same train command resumes it)")
    if args.seed_sets < 1:
        p.error(f"--seed-sets must be at least 1, got {args.seed_sets}")
    segmenter, note = find_segmenter(args.segmenter) if args.data is not None else (None, None)
    if note:
        print(f"layout fidelity skipped: {note}")
    done = bundle(args.run, args.out, args.results, args.data, args.seed_sets, segmenter)
    print(f"bundled {args.run / 'export'} -> {done['weights']} (fp16); results grid: {done['results']}")
    if done["metrics"]:
        print(f"fp16 weights: {metrics_text(done['metrics'])}")
    if done["previous"]:
        print(f"the weights replaced: {metrics_text(done['previous'])}")
    return done


if __name__ == "__main__":
    main()
