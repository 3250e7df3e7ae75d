"""``python -m train.bundle --run runs/default``: make a finished run the repository's default model.

Writes ``assets/weights/`` (config.json + model.safetensors in fp16, which ``UnetGenerator.from_pretrained``
upcasts on load: half the bytes, and the generated images move by about a grey level), its model card
(the run's card, re-evaluated on the fp16 weights, plus how the recipe differs from the paper's) and
``assets/results.png`` (each example test label map | ours with seeds 0..3 | the real photo, so that the
variety between seeds can be seen).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import save_file
from torchvision.utils import make_grid, save_image

from pix2pix import Pix2Pix, example_labels
from pix2pix.assets import ASSETS_DIR, BUNDLED_WEIGHTS, example_photo
from pix2pix.images import image_to_tensor, to_unit
from pix2pix.models import CONFIG_NAME, WEIGHTS_NAME

from .report import metrics_text

DIFFERENCES = """
## How this model differs from the paper's recipe, and why

It was trained with `--recipe cpu` on two CPU cores, because no GPU is lent to this project:

| | paper (`--recipe paper`) | this model (`--recipe cpu`) | why |
| --- | --- | --- | --- |
| generator width | ngf 64 (54.4M parameters) | ngf 32 (13.6M parameters) | about 4x fewer FLOPs per image |
| discriminator width | ndf 64 | ndf 32 | the same saving on the other network |
| batch | 1 | 4, lr 2e-4 x sqrt(4) = 4e-4 | fuller use of the cores; exact per sample (instance norm) |
| epochs | 100 + 100 | fitted to `--time-budget` (half constant, half decay) | ends on time |
| lr decay | per epoch | the same line counted per step | a short decay still reaches ~0 |
| compile | no | `torch.compile` | faster steps on the CPU |

Losses (GAN + 100 x L1), optimiser (Adam, betas 0.5 / 0.999), the 70x70 PatchGAN, the U-Net's depth,
the jitter (resize to 286, random 256 crop, flip) and dropout at test time are the paper's.
The weights are stored in fp16 (upcast to fp32 on load).
"""


def save_fp16(export: Path, out: Path) -> None:
    """config.json as the run wrote it, the weights as fp16 safetensors."""
    out.mkdir(parents=True, exist_ok=True)
    model = Pix2Pix.load(export, device="cpu").generator
    save_file({k: v.detach().half().contiguous() for k, v in model.state_dict().items()}, str(out / WEIGHTS_NAME),
              metadata={"format": "pt"})
    (out / WEIGHTS_NAME).chmod(0o644)
    shutil.copyfile(export / CONFIG_NAME, out / CONFIG_NAME)


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
    save_image(make_grid(torch.stack(tiles), nrow=num_seeds + 2, padding=4, pad_value=1.0), path)
    return path


def bundle(run: Path, out: Path = BUNDLED_WEIGHTS, results: Path = ASSETS_DIR / "results.png",
           data: Path | None = None) -> dict:
    export = run / "export"
    save_fp16(export, out)
    model = Pix2Pix.load(out, device="cpu")
    results_grid(model, results)
    card = (export / "README.md").read_text() if (export / "README.md").is_file() else ""
    metrics = None
    if data is not None:
        from .data import PairedDataset, check_pairs, find_pairs
        from .evaluate import evaluate

        config = json.loads((out / CONFIG_NAME).read_text())
        pairs, _ = check_pairs(find_pairs(data))
        size = 2 ** config.get("num_downs", 8)
        metrics = evaluate(model, PairedDataset(pairs, size, size), seed=0, progress=True)
        card += (f"\n## The bundled fp16 weights\n\nOn the {metrics['n']} images of `{data.name}` (dropout on, "
                 f"seeds 0..{metrics['n'] - 1}; `python -m train.evaluate`): {metrics_text(metrics)}.\n")
    card = card.replace("![samples](sample.png)", "![results](../results.png)")
    (out / "README.md").write_text(card + DIFFERENCES)
    for extra in ("sample.png",):
        (out / extra).unlink(missing_ok=True)
    return {"weights": str(out), "results": str(results), "metrics": metrics}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m train.bundle", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", required=True, type=Path, help="a finished run folder (with export/)")
    p.add_argument("--out", type=Path, default=BUNDLED_WEIGHTS, help="where the weights and model card go")
    p.add_argument("--results", type=Path, default=ASSETS_DIR / "results.png", help="the README's results grid")
    p.add_argument("--data", type=Path, help="a split to re-evaluate the fp16 weights on (e.g. facades/test)")
    args = p.parse_args(argv)
    if not (args.run / "export" / WEIGHTS_NAME).is_file():
        p.error(f"{args.run}: no export/{WEIGHTS_NAME}; finish the run first (the same train command resumes it)")
    done = bundle(args.run, args.out, args.results, args.data)
    print(f"bundled {args.run / 'export'} -> {done['weights']} (fp16); results grid: {done['results']}")
    if done["metrics"]:
        m = done["metrics"]
        print(f"fp16 weights: {metrics_text(m)}")
    return done


if __name__ == "__main__":
    main()
