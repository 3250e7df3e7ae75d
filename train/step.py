"""One pix2pix training step, the optimisers and the learning-rate schedule.

Kept apart from the loop so that ``train.benchmark`` times exactly the step that ``python -m train`` runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .config import TrainConfig

LOSS_NAMES = ("g_gan", "g_l1", "d_real", "d_fake")


def make_optimizers(cfg: TrainConfig, G: torch.nn.Module, D: torch.nn.Module,
                    fused: bool = False) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    kw = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2)}
    if fused:
        kw["fused"] = True
    return torch.optim.Adam(G.parameters(), **kw), torch.optim.Adam(D.parameters(), **kw)


def lr_factor(step: int, constant_steps: int, decay_steps: int) -> float:
    """The authors' linear rule, 1 - max(0, t + 1 - constant) / (decay + 1), counted in steps.

    Counting steps rather than epochs gives the same line without the staircase, and lets a short or
    budgeted run (one or two decay epochs) still end with its rate next to zero.
    """
    return 1.0 - max(0, step + 1 - constant_steps) / float(decay_steps + 1)


def set_lr(optimizers: tuple[torch.optim.Optimizer, ...], lr: float) -> None:
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = lr


def make_autocast(enabled: bool) -> Callable[[], contextlib.AbstractContextManager]:
    """bf16 autocast on CUDA (losses stay fp32); a no-op elsewhere: bf16 is slower on these CPUs."""
    return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if enabled else contextlib.nullcontext


def train_step(G, D, D_for_g, opt_g, opt_d, x: torch.Tensor, y: torch.Tensor, lambda_l1: float,
               autocast=contextlib.nullcontext) -> torch.Tensor:
    """One pix2pix step. Returns (g_gan, g_l1, d_real, d_fake) as a detached tensor.

    The discriminator sees (fake, real) in one batched call (exact per sample: instance norm); the
    generator's step calls it without DDP (``D_for_g``) with its parameters frozen.
    """
    with autocast():
        fake = G(x)
    # Discriminator: 0.5 * (BCE(D(x, fake), 0) + BCE(D(x, real), 1))
    D.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    with autocast():
        logits = D(torch.cat([x, x]), torch.cat([fake.detach(), y])).float()
    fake_logits, real_logits = logits.chunk(2)
    d_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    d_real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    (0.5 * (d_fake + d_real)).backward()
    opt_d.step()
    # Generator: BCE(D(x, fake), 1) + lambda * L1(fake, real)
    D.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    with autocast():
        logits = D_for_g(x, fake).float()
    g_gan = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    g_l1 = F.l1_loss(fake.float(), y.float())
    (g_gan + lambda_l1 * g_l1).backward()
    opt_g.step()
    return torch.stack([g_gan, g_l1, d_real, d_fake]).detach()
