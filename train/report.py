"""What a run leaves to look at: metrics.jsonl, sample grids, index.html (inline SVG curves) and the model card."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from pix2pix.images import to_unit

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
        return (pad + (x - x0) / (x1 - x0) * (width - 2 * pad), height - pad + 8 - (y - y0) / (y1 - y0) * (height - 2 * pad))

    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in (px(x, y) for x, y in zip(xs, ys)))
    return (
        f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" role="img">'
        f'<title>{html.escape(title)}</title><rect width="100%" height="100%" fill="#fff" stroke="#ccc"/>'
        f'<text x="{pad}" y="16" font-size="12">{html.escape(title)}</text>'
        f'<text x="2" y="{pad}" font-size="10">{y1:.3g}</text><text x="2" y="{height - pad + 8}" font-size="10">{y0:.3g}</text>'
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
    """One line of the figures that judge a model (FID and KID when they were computed)."""
    fid = f"FID {m['fid']:.1f}, KID {m['kid']:.4f}, " if "fid" in m else ""
    div = f"seed diversity {m['diversity']:.1f}, " if "diversity" in m else ""
    return f"{fid}{div}L1 {m['l1']:.4f}, PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} over {m['n']} images"


def data_name(desc: str) -> str:
    """The data set's name for a model card: never a path of the machine it was trained on."""
    name = Path(str(desc).split(" + ")[0]).name
    return "CMP Facades" if "facades" in name.lower() or not name else name


def write_model_card(folder: Path, config: dict, summary: dict) -> None:
    """The export's README.md: recipe, data, epochs, time, metrics and a sample grid."""
    metrics = summary.get("metrics")
    metric_rows = ""
    if metrics and "fid" in metrics:
        metric_rows += (f"| FID (TF-FID Inception, against the {metrics['n']} real photos) | {metrics['fid']:.1f} |\n"
                        f"| KID | {metrics['kid']:.4f} |\n")
    if metrics and "diversity" in metrics:
        metric_rows += (f"| seed diversity (grey levels at 32x32, {metrics.get('diversity_maps', 30)} maps x 4 seeds) "
                        f"| {metrics['diversity']:.1f} |\n")
    if metrics:
        metric_rows += (f"| L1 (0-1 scale) | {metrics['l1']:.4f} |\n| PSNR | {metrics['psnr']:.2f} dB |\n"
                        f"| SSIM | {metrics['ssim']:.4f} |\n")
    metric_text = (f"On {metrics['n']} images of `{summary['eval_split']}` (dropout on, seeds 0..{metrics['n'] - 1}, "
                   "`python -m train.evaluate`):\n\n| metric | value |\n| --- | --- |\n" + metric_rows
                   if metrics else "Not evaluated (no val/ or test/ split, or `--no-evaluate`).\n")
    c, size = config, config["image_size"]
    limit = f" (the first {c['limit']})" if c["limit"] else ""
    losses = ", ".join(f"{k} {summary['last'][k]:.4f}" for k, _ in CURVES if k in summary.get("last", {}))
    flip = "random flip" if c["flip"] else "no flip"
    budget = f", `--time-budget {summary['time_budget']}`" if summary.get("time_budget") else ""
    wall = summary.get("wall_seconds")
    speed = summary["train_images"] * summary["epochs_done"] / max(summary["train_seconds"], 1e-9)
    wall_text = f" ({wall / 60:.1f} minutes of wall time in all, start-up, compilation and evaluation included)" if wall else ""
    snap = " (inputs snapped to the CMP palette)" if c["snap_labels"] else ""
    code = (f", a latent code of {c['nz']} numbers at every encoder block (drawn from the seed)"
            if c.get("nz") else "")
    ms = f" + {c['lambda_ms']:g} x mode seeking (MSGAN)" if c.get("lambda_ms") else ""
    ema_text = (f"decay {c['ema']:g} (warm-up min(decay, (1+n)/(10+n))); the exported weights are the average"
                if c.get("ema") else "none (the last weights are exported)")
    init = (f"the generator of an earlier model (`--init-from {Path(c['init_from']).name}`), trained on from there; "
            "the discriminator and the optimisers started fresh"
            + (f", the discriminator trained alone for the first {c['d_warmup']} steps" if c.get("d_warmup") else "")
            if c.get("init_from") else "random (normal, std 0.02)")
    card = f"""---
library_name: facade-pix2pix
license: mit
pipeline_tag: image-to-image
tags: [pix2pix, image-to-image, gan, facades]
---

# pix2pix facades generator (labels -> photo)

A pix2pix U-Net generator (Isola et al., CVPR 2017) trained with `python -m train` (facade-pix2pix): it turns a
CMP facade label map into a photo-like facade. Load it with `Pix2Pix.load("<this folder or repo id>")`.

## Recipe

| | |
| --- | --- |
| generator | U-Net {size}x{size} ({size.bit_length() - 1} down-samplings), ngf {c['ngf']}, instance norm, dropout 0.5{code} |
| discriminator | PatchGAN, {c['n_layers_d']} layers, ndf {c['ndf']} |
| loss | GAN (BCE with logits) + {c['lambda_l1']:g} x L1{ms}; discriminator loss halved |
| initialisation | {init} |
| EMA | {ema_text} |
| precision | {c.get('precision', 'fp32')} (bf16 autocast where timed faster; see the start-up line) |
| optimiser | Adam lr {c['lr']:g}{f" (discriminator {c['lr_d']:g})" if c.get('lr_d') is not None else ''}, betas ({c['beta1']:g}, {c['beta2']:g}) |
| recipe | `--recipe {c.get('recipe', 'paper')}`{budget} |
| schedule | {summary.get('epochs_constant', c['epochs'])} epochs at constant lr + {summary.get('epochs_decay', c['epochs_decay'])} of linear decay (per step) |
| batch size | {c['batch_size']} x {summary.get('world_size', 1)} process(es) |
| jitter | resize to {summary['load_size']}, random {size} crop, {flip} |
| direction | {c['direction']}{snap} |
| seed | {c['seed']} |

## Data

{data_name(summary['data'])}, {summary['train_images']} training pairs{limit}, {summary['skipped']} unreadable file(s) skipped.

## Training

{summary['epochs_done']} epochs, {summary['steps']} steps, {summary['train_seconds'] / 60:.1f} minutes of training
on {summary['device']}{wall_text}: {speed:.2f} label maps/s (a map, not each of its codes, counts once). Final epoch losses: {losses}.

## Evaluation

{metric_text}
## Samples

Rows: label map | generated | real photo.

![samples](sample.png)
"""
    (Path(folder) / "README.md").write_text(card)
