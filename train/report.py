"""What a run leaves to look at: metrics.jsonl, sample grids, index.html (inline SVG curves) and the model card."""

from __future__ import annotations

import dataclasses
import html
import json
import os
from pathlib import Path

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from torchvision.utils import make_grid, save_image

from pix2pix.images import to_unit

from .config import RECIPES, TrainConfig
from .evaluate import SEED_STRIDE, spread
from .fidelity import FIDELITY_FLOOR, REGION_FLOOR

CURVES = (("g_gan", "generator GAN loss"), ("g_l1", "generator L1 loss"), ("g_ms", "mode-seeking term"),
          ("d_real", "discriminator loss, real"), ("d_fake", "discriminator loss, fake"))


class MetricsLog:
    """Append-only ``metrics.jsonl``: one JSON object a line, flushed as written."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill
                pass
        return records

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (written after the checkpoint a resume starts from)."""
        kept = [r for r in self.read() if r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path)


def save_grid(inputs: torch.Tensor, fakes: torch.Tensor, reals: torch.Tensor, path: Path) -> None:
    """One row per image: input | generated | real, from [-1, 1] tensors."""
    rows = torch.stack([inputs, fakes, reals], dim=1).flatten(0, 1).float().cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    save_image(make_grid(to_unit(rows), nrow=3, padding=2, pad_value=1.0), tmp)
    os.replace(tmp, path)


def svg_curve(xs: list[float], ys: list[float], title: str, width: int = 420, height: int = 160) -> str:
    pad = 36
    if not xs:
        return ""
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

    def px(x, y):
        return (pad + (x - x0) / (x1 - x0) * (width - 2 * pad),
                height - pad + 8 - (y - y0) / (y1 - y0) * (height - 2 * pad))

    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in (px(x, y) for x, y in zip(xs, ys, strict=True)))
    return (
        f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" role="img">'
        f'<title>{html.escape(title)}</title><rect width="100%" height="100%" fill="#fff" stroke="#ccc"/>'
        f'<text x="{pad}" y="16" font-size="12">{html.escape(title)}</text>'
        f'<text x="2" y="{pad}" font-size="10">{y1:.3g}</text>'
        f'<text x="2" y="{height - pad + 8}" font-size="10">{y0:.3g}</text>'
        f'<text x="{pad}" y="{height - 8}" font-size="10">epoch {x0:g}</text>'
        f'<text x="{width - pad - 20}" y="{height - 8}" font-size="10">epoch {x1:g}</text>'
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{points}"/></svg>'
    )


def write_index(run_dir: Path, records: list[dict], config: dict, total_epochs: int | None = None,
                evaluation: dict | None = None, split: str | None = None) -> None:
    """``index.html``: the final evaluation (once there is one), the loss curves per epoch (inline SVG) and the
    sample grids, newest first."""
    run_dir = Path(run_dir)
    epochs = [r for r in records if r.get("type") == "epoch"]
    curves = "".join(svg_curve([r["epoch"] for r in epochs], [r.get(key, 0.0) for r in epochs], title)
                     for key, title in CURVES if epochs and any(key in r for r in epochs)
                     and (key != "g_ms" or config.get("lambda_ms")))
    samples = sorted((run_dir / "samples").glob("epoch_*.png"), reverse=True)
    grids = "".join(f'<figure><img src="samples/{p.name}" alt="{p.stem}"><figcaption>{p.stem.replace("_", " ")}'
                    "</figcaption></figure>" for p in samples)
    last = epochs[-1] if epochs else {}
    total = total_epochs or config["epochs"] + config["epochs_decay"]
    status = (f"epoch {last['epoch']} / {total}, step {last['step']}, "
              f"{last['train_seconds'] / 60:.1f} min of training") if last else "no epoch finished yet"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(run_dir.name)} - pix2pix run</title>
<style>body{{font-family:sans-serif;margin:1.5em}} svg{{margin:4px}} figure{{display:inline-block;margin:6px}}
img{{max-width:100%;image-rendering:pixelated}} pre{{background:#f4f4f4;padding:8px}}</style></head><body>
<h1>{html.escape(run_dir.name)}</h1><p>{html.escape(status)}. Rows: input | generated | real (fixed images).</p>
{f"<p><b>{html.escape(split or '')}</b>: {html.escape(metrics_text(evaluation))}</p>" if evaluation else ""}
<div>{curves}</div><h2>Samples, newest first</h2>{grids}
<details><summary>config</summary><pre>{html.escape(json.dumps(config, indent=1))}</pre></details>
</body></html>"""
    tmp = run_dir / ".index.html.tmp"
    tmp.write_text(page)
    os.replace(tmp, run_dir / "index.html")


def metrics_text(m: dict) -> str:
    """One line of the figures that judge a model (FID and KID when they were computed: the mean +- sample std
    over the seed sets, or one set's values)."""
    sets = m.get("seed_sets", 1)
    fid = (f"FID {spread(m, 'fid', '.1f')}, KID {spread(m, 'kid', '.4f')}"
           f"{f' (mean +- std over {sets} seed sets)' if sets > 1 else ''}, " if "fid" in m else "")
    div = f"seed diversity {m['diversity']:.1f}, " if "diversity" in m else ""
    if "detail_sameness" in m:
        div += f"detail sameness of seeds {m['detail_sameness']:.2f}{detail_reference(m)}, "
    if "fidelity" in m:
        div += (f"layout fidelity worst seed {m['fidelity_worst']:.3f} ({len(m['fidelity_under'])} seeds under "
                f"{FIDELITY_FLOOR:.2f}), region fidelity worst seed {m['region_worst']:.3f} "
                f"({len(m['region_under'])} under {REGION_FLOOR:.2f}), ")
    return f"{fid}{div}L1 {m['l1']:.4f}, PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} over {m['n']} images"


def detail_reference(m: dict) -> str:
    """`` (a seed against the real photo: 0.09)``: what two buildings on one layout score, for scale."""
    return f" (a seed against the real photo: {m['detail_photo']:.2f})" if "detail_photo" in m else ""


def data_name(desc: str) -> str:
    """The data set's name for a model card: never a path of the machine it was trained on."""
    name = Path(str(desc).split(" + ")[0]).name
    return "CMP Facades" if "facades" in name.lower() or not name else name


#: Options that do not change the weights a run trains (where data, logs and checkpoints go; how fast it runs),
#: left out of the step-exact command; the epochs are written from the run itself.
NOT_IN_COMMAND = {"recipe", "epochs", "epochs_decay", "time_budget", "data", "data_a", "data_b", "cache_dir",
                  "in_memory", "device", "channels_last", "fused_adam", "num_workers", "run_dir", "resume",
                  "save_every", "keep_checkpoints", "log_every", "num_samples", "evaluate", "eval_limit",
                  "tensorboard", "progress", "push_to_hub", "private"}


def reproduce_command(config: dict, summary: dict) -> str:
    """``python -m train --recipe cpu --epochs 85 --epochs-decay 85``: the run's recipe, its own constant and
    decay epochs and every other option it changed from the recipe's defaults. A ``--time-budget`` fits the
    epochs to the machine it runs on (a different model on every CPU); this command trains the same steps
    anywhere."""
    recipe = config.get("recipe", "paper")
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    defaults = fields | RECIPES.get(recipe, {})
    epochs = (summary.get("epochs_constant", config["epochs"]), summary.get("epochs_decay", config["epochs_decay"]))
    parts = ["python -m train", f"--recipe {recipe}", f"--epochs {epochs[0]}", f"--epochs-decay {epochs[1]}"]
    # An option the run's config lacks did not exist then: the run had its default (off), which a recipe
    # changed since (the cpu recipe took feature matching later) must be told explicitly.
    for name, value in (fields | config).items():
        if name in NOT_IN_COMMAND or name not in defaults or value == defaults[name] or value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        else:
            shown = Path(value).name if name == "init_from" else f"{value:g}" if isinstance(value, float) else value
            parts.append(f"{flag} {shown}")
    return " ".join(parts)


def schedule_text(config: dict, summary: dict) -> str:
    if summary.get("steps_constant") is not None:
        return f"{summary['steps_constant']} steps at constant lr + {summary['steps_decay']} of linear decay"
    return (f"{summary.get('epochs_constant', config['epochs'])} epochs at constant lr + "
            f"{summary.get('epochs_decay', config['epochs_decay'])} of linear decay (per step)")


def evaluation_text(metrics: dict | None, split: str | None) -> str:
    """The card's evaluation section: FID and KID as the mean +- sample std over the seed sets and per set."""
    if not metrics:
        return "Not evaluated (no val/ or test/ split, or `--no-evaluate`).\n"
    n, seed, sets = metrics["n"], metrics.get("seed", 0), metrics.get("seed_sets", 1)
    rows = []
    if "fid" in metrics:
        per_set = sets > 1
        rows += [(f"FID (TF-FID Inception, against the {n} real photos){', mean +- std' if per_set else ''}",
                  spread(metrics, "fid", ".1f"))]
        rows += [("FID per seed set", ", ".join(f"{v:.1f}" for v in metrics["fid_sets"]))] if per_set else []
        rows += [(f"KID{', mean +- std' if per_set else ''}", spread(metrics, "kid", ".4f"))]
        rows += [("KID per seed set", ", ".join(f"{v:.4f}" for v in metrics["kid_sets"]))] if per_set else []
    if "diversity" in metrics:
        rows.append((f"seed diversity (grey levels at 32x32, {metrics.get('diversity_maps', 30)} maps x 4 seeds)",
                     f"{metrics['diversity']:.1f}"))
    if "detail_sameness" in metrics:
        rows.append((f"detail sameness of seeds (mean correlation of the fine detail of two seeds' facades of a map, "
                     f"{metrics.get('diversity_maps', 30)} maps x 6 pairs of 4 seeds; lower: more different "
                     f"buildings), mean / most alike pair",
                     f"{metrics['detail_sameness']:.2f} / {metrics['detail_sameness_max']:.2f}"
                     f"{detail_reference(metrics)}"))
    if "fidelity" in metrics:
        under = metrics["fidelity_under"]
        rows.append((f"layout fidelity (`train.fidelity`, seeds 0..{len(metrics['fidelity_seeds']) - 1} on "
                     f"{metrics['fidelity_maps']} maps, relative to the real photos), median / worst seed",
                     f"{metrics['fidelity']:.3f} / {metrics['fidelity_worst']:.3f} (seed "
                     f"{metrics['fidelity_worst_seed']}); {len(under)} seeds under {FIDELITY_FLOOR:.2f}"))
    if "region" in metrics:
        row, col = metrics["region_worst_cell"]
        rows.append(("region fidelity (each seed's worst cell of a 4x4 grid, relative to the real photos there), "
                     "median / worst seed", f"{metrics['region']:.3f} / {metrics['region_worst']:.3f} (seed "
                     f"{metrics['region_worst_seed']}, row {row + 1} column {col + 1}); "
                     f"{len(metrics['region_under'])} seeds under {REGION_FLOOR:.2f}"))
    rows += [("L1 (0-1 scale)", f"{metrics['l1']:.4f}"), ("PSNR", f"{metrics['psnr']:.2f} dB"),
             ("SSIM", f"{metrics['ssim']:.4f}")]
    if sets > 1 and "fid" in metrics:
        start = f"{seed} + " if seed else ""
        how = (f"dropout on, `python -m train.evaluate`). FID and KID are the mean +- sample standard deviation "
               f"(ddof 1) over {sets} seed sets, set k giving image i the seed {start}i + {SEED_STRIDE}k "
               f"(k = 0..{sets - 1}), and each set's value: with {n} images one set's FID is a draw from that "
               f"spread. The other figures are of set 0 (seeds {seed}..{seed + n - 1})")
    else:
        how = f"dropout on, seeds {seed}..{seed + n - 1}, `python -m train.evaluate`)"
    table = "".join(f"| {name} | {value} |\n" for name, value in rows)
    return f"On {n} images of `{split}` ({how}:\n\n| metric | value |\n| --- | --- |\n{table}"


#: How a card's recipe table names the mode-seeking term on D's features (``train.bundle`` looks for it).
MS_ON_DFEAT = "mode seeking on the discriminator's features"


def variation_text(c: dict) -> str:
    """How the run trains its seeds to differ beyond plain codes (the ablations of issue 44), or ""."""
    parts = []
    if c.get("ms_on", "pixel") != "pixel":
        parts.append({"detail": "mode seeking on the facades' fine detail (a new tint does not count)",
                      "dfeat": MS_ON_DFEAT}[c["ms_on"]])
    if c.get("l1_downsample", 1) > 1:
        parts.append(f"L1 after a {c['l1_downsample']}x{c['l1_downsample']} box downscale")
    if c.get("code_mod"):
        parts.append("the code scales and shifts the decoder's channels")
    if c.get("code_maps"):
        parts.append(f"{c['code_maps']:g} of the pairs with a code map (a new code inside a random box; "
                     f"{c.get('lambda_keep', 10):g} x L1 holds the facade outside it)")
    return "".join(f"; {p}" for p in parts)


def recipe_rows(c: dict, summary: dict) -> list[tuple[str, str]]:
    """The card's recipe table: what was trained, how, and the commands that train it again."""
    size = c["image_size"]
    where = {"encoder": "every encoder block", "bottleneck": "the innermost encoder block",
             "decoder": "every decoder block", "all": "every encoder and decoder block"}[c.get("code_at", "encoder")]
    code = f", a latent code of {c['nz']} numbers at {where} (drawn from the seed)" if c.get("nz") else ""
    code += (f"; at inference codes longer than {c['code_max_norm']:g} are shortened to it"
             if c.get("nz") and c.get("code_max_norm") else "")
    ms = f" + {c['lambda_ms']:g} x mode seeking (MSGAN)" if c.get("lambda_ms") else ""
    ms += f" + {c['lambda_fm']:g} x feature matching (pix2pixHD)" if c.get("lambda_fm") else ""
    ms += f"; the discriminator sees DiffAugment ({c['diffaug']})" if c.get("diffaug") else ""
    ms += (f"; training codes scaled by U(1/{c['code_scale_max']:g}, {c['code_scale_max']:g})"
           if c.get("code_scale_max", 1) > 1 else "")
    ms += variation_text(c)
    up = ", nearest upsampling + 3x3 convolutions in the decoder" if c.get("upsample") == "resize" else ""
    ema = (f"decay {c['ema']:g} (warm-up min(decay, (1+n)/(10+n))); the exported weights are the average"
           if c.get("ema") else "none (the last weights are exported)")
    init = (f"the generator of an earlier model (`--init-from {Path(c['init_from']).name}`), trained on from there; "
            "the discriminator and the optimisers started fresh"
            + (f", the discriminator trained alone for the first {c['d_warmup']} steps" if c.get("d_warmup") else "")
            if c.get("init_from") else "random (normal, std 0.02)")
    lr_d = f" (discriminator {c['lr_d']:g})" if c.get("lr_d") is not None else ""
    budget = f", `--time-budget {summary['time_budget']}`" if summary.get("time_budget") else ""
    exact = (f"`{reproduce_command(c, summary)}`: the same {summary['steps']} steps on any machine"
             + (" (the time budget fits the epochs to the machine it runs on: another CPU, another model)"
                if budget else ""))
    if summary.get("steps_constant") is not None:  # a budget too short for whole epochs was planned in steps
        exact = (f"none: this run was planned in steps ({summary['steps_constant']} constant + "
                 f"{summary['steps_decay']} decaying) to fit its short budget, which no option fixes; a run of whole "
                 "epochs (`--epochs`, `--epochs-decay`) repeats step for step")
    return [
        ("generator", f"U-Net {size}x{size} ({size.bit_length() - 1} down-samplings), ngf {c['ngf']}, instance norm, "
                      f"dropout 0.5{code}{up}"),
        ("discriminator", f"PatchGAN, {c['n_layers_d']} layers, ndf {c['ndf']}"),
        ("loss", f"GAN (BCE with logits) + {c['lambda_l1']:g} x L1{ms}; discriminator loss halved"),
        ("initialisation", init), ("EMA", ema),
        ("precision", f"{c.get('precision', 'fp32')} (bf16 autocast where timed faster; see the start-up line)"),
        ("optimiser", f"Adam lr {c['lr']:g}{lr_d}, betas ({c['beta1']:g}, {c['beta2']:g})"),
        ("recipe", f"`--recipe {c.get('recipe', 'paper')}`{budget}"),
        ("step-exact command", exact),
        ("schedule", schedule_text(c, summary)),
        ("batch size", f"{c['batch_size']} x {summary.get('world_size', 1)} process(es)"),
        ("jitter", f"resize to {summary['load_size']}, random {size} crop, "
                   f"{'random flip' if c['flip'] else 'no flip'}"),
        ("direction", c["direction"] + (" (inputs snapped to the CMP palette)" if c["snap_labels"] else "")),
        ("seed", str(c["seed"])),
    ]


def training_text(c: dict, summary: dict) -> str:
    """The card's data and training sections."""
    limit = f" (the first {c['limit']})" if c["limit"] else ""
    losses = ", ".join(f"{k} {summary['last'][k]:.4f}" for k, _ in CURVES if k in summary.get("last", {}))
    wall = summary.get("wall_seconds")
    speed = summary["train_images"] * summary["epochs_done"] / max(summary["train_seconds"], 1e-9)
    wall_text = (f" ({wall / 60:.1f} minutes of wall time in all, start-up, compilation and evaluation included)"
                 if wall else "")
    return (f"## Data\n\n{data_name(summary['data'])}, {summary['train_images']} training pairs{limit}, "
            f"{summary['skipped']} unreadable file(s) skipped.\n\n## Training\n\n"
            f"{summary['epochs_done']} epochs, {summary['steps']} steps, {summary['train_seconds'] / 60:.1f} minutes "
            f"of training\non {summary['device']}{wall_text}: {speed:.2f} label maps/s (a map, not each of its codes, "
            f"counts once). Final epoch losses: {losses}.\n")


CARD_HEAD = """# pix2pix facades generator (labels -> photo)

A pix2pix U-Net generator (Isola et al., CVPR 2017) trained with `python -m train` (facade-pix2pix): it turns a
CMP facade label map into a photo-like facade. Load it with `Pix2Pix.load("<this folder or repo id>")`.
"""

#: The card's name for the model in its ``model-index`` (what the Hub shows above the evaluation results).
MODEL_NAME = "facade-pix2pix"


def card_metadata(metrics: dict | None, split: str | None, data: str = "CMP Facades") -> ModelCardData:
    """The card's front matter, as the Hub reads it: library, license, tags, the image-to-image pipeline and, when
    FID and KID were measured, a ``model-index`` with them on ``split`` of ``data``: the mean over the seed sets and
    their sample std as metrics of their own (the Hub has no field for a spread). Built with ``huggingface_hub``'s
    ``ModelCardData`` / ``EvalResult`` so that the YAML is the Hub's own shape."""
    results = []
    if metrics and "fid" in metrics:
        sets = metrics.get("seed_sets", 1)
        over = f" (mean over {sets} seed sets)" if sets > 1 else ""
        common = {"task_type": "image-to-image", "task_name": "Label map to facade photo", "dataset_type": "facades",
                  "dataset_name": f"{data} ({split}, {metrics['n']} images)", "dataset_split": split}
        for key, name in (("fid", "FID (TF-FID Inception)"), ("kid", "KID")):
            results.append(EvalResult(**common, metric_type=key, metric_name=f"{name}{over}",
                                      metric_value=round(float(metrics[key]), 4)))
            if metrics.get(f"{key}_std") is not None:
                results.append(EvalResult(**common, metric_type=f"{key}_std",
                                          metric_name=f"{name}, sample std over {sets} seed sets",
                                          metric_value=round(float(metrics[f"{key}_std"]), 4)))
    return ModelCardData(library_name="facade-pix2pix", license="mit", pipeline_tag="image-to-image",
                         tags=["pix2pix", "image-to-image", "gan", "facades"],
                         model_name=MODEL_NAME if results else None, eval_results=results or None)


def with_metadata(text: str, metadata: ModelCardData) -> str:
    """``text`` (a card, with or without front matter) with ``metadata`` as its front matter."""
    body = ModelCard(text, ignore_metadata_errors=True).text if text.startswith("---") else text
    return str(ModelCard(f"---\n{metadata.to_yaml()}\n---\n{body.lstrip()}"))


#: How the model's ONNX file is made: the app and pix2pix.export build it from these weights; none is stored.
ONNX_TEXT = """## ONNX

No ONNX file is stored beside the weights (27 MB more per model, in git history for good);
`python -m pix2pix.export --weights <this folder> --out model.onnx` writes one: the generator with its dropout
masks and latent code as inputs and its weights in fp16, cast to fp32 in the graph. The app builds the same
file once and caches it (`~/.cache/facade-pix2pix/onnx/`, named by a hash of the weights), to draw facades in
visitors' browsers and, where ONNX Runtime is timed faster than torch, on the server.
"""


def write_model_card(folder: Path, config: dict, summary: dict) -> None:
    """The export's README.md: recipe (with the command that repeats the run step for step), data, epochs, time,
    metrics and a sample grid."""
    recipe = "".join(f"| {name} | {value} |\n" for name, value in recipe_rows(config, summary))
    body = (f"{CARD_HEAD}\n## Recipe\n\n| | |\n| --- | --- |\n{recipe}\n{training_text(config, summary)}\n"
            f"## Evaluation\n\n{evaluation_text(summary.get('metrics'), summary.get('eval_split'))}\n"
            "## Samples\n\nRows: label map | generated | real photo.\n\n![samples](sample.png)\n\n" + ONNX_TEXT)
    metadata = card_metadata(summary.get("metrics"), summary.get("eval_split"), data_name(summary["data"]))
    (Path(folder) / "README.md").write_text(with_metadata(body, metadata))
