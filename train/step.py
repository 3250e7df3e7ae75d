"""One pix2pix training step, its objective, the generator's EMA, the optimisers, the learning-rate schedule,
and the choice of precision.

Kept apart from the loop so that ``train.benchmark`` times exactly the step that ``python -m train`` runs.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel

from pix2pix import PatchDiscriminator, UnetGenerator

from .config import TrainConfig

LOSS_NAMES = ("g_gan", "g_l1", "g_ms", "d_real", "d_fake")
#: Keeps the mode-seeking term finite when two codes give the same image (MSGAN's value).
MS_EPS = 1e-5


@dataclass(frozen=True)
class Objective:
    """What the generator minimises: GAN + ``lambda_l1`` x L1 (the paper) + ``lambda_ms`` x mode seeking.

    Mode seeking (MSGAN, Mao et al. 2019): each input of the batch is generated twice, with codes z1 and
    z2, and the generator is rewarded for making the two differ: the term is 1 / (mean|G(x,z1) - G(x,z2)|
    / mean|z1 - z2| + eps). Without it a pix2pix generator learns to ignore its noise; with it the code
    moves colour, material and light. The two copies also count in the GAN and L1 terms, so a step of
    batch B runs the networks on 2B images.
    """

    lambda_l1: float = 100.0
    lambda_ms: float = 0.0
    nz: int = 0

    @classmethod
    def of(cls, cfg: TrainConfig) -> Objective:
        return cls(cfg.lambda_l1, cfg.lambda_ms, cfg.nz)

    @property
    def copies(self) -> int:
        """How many times each input goes through the networks in a step."""
        return 2 if self.lambda_ms > 0 else 1


def make_optimizers(cfg: TrainConfig, G: torch.nn.Module, D: torch.nn.Module,
                    fused: bool = False) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    kw = {"betas": (cfg.beta1, cfg.beta2)}
    if fused:
        kw["fused"] = True
    return (torch.optim.Adam(G.parameters(), lr=cfg.lr, **kw),
            torch.optim.Adam(D.parameters(), lr=cfg.resolved_lr_d, **kw))


def lr_factor(step: int, constant_steps: int, decay_steps: int) -> float:
    """The authors' linear rule, 1 - max(0, t + 1 - constant) / (decay + 1), counted in steps.

    Counting steps rather than epochs gives the same line without the staircase, and lets a short or
    budgeted run (one or two decay epochs) still end with its rate next to zero.
    """
    return 1.0 - max(0, step + 1 - constant_steps) / float(decay_steps + 1)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


# ----------------------------------------------------------------------------------------------- EMA
def make_ema(G: torch.nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of the generator's weights: the weights that are sampled, evaluated
    and exported. Averaging the last few thousand steps smooths the GAN's step-to-step wobble (sharper,
    steadier facades for the same training).

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so that the average follows the
    fast early changes instead of carrying the random initialisation for thousands of steps.
    """

    def ema_update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged) -> None:
        n = int(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(averaged, [c.detach() for c in current], 1.0 - d)

    return AveragedModel(unwrap(G), multi_avg_fn=ema_update, use_buffers=True)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under torch.compile and DDP wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


# ----------------------------------------------------------------------------------------------- step
def train_step(G, D, D_for_g, opt_g, opt_d, x: torch.Tensor, y: torch.Tensor, objective: Objective,
               autocast=contextlib.nullcontext, ema: AveragedModel | None = None, train_g: bool = True) -> torch.Tensor:
    """One pix2pix step. Returns (g_gan, g_l1, g_ms, d_real, d_fake) as a detached tensor.

    ``train_g=False`` updates the discriminator alone (``--d-warmup``): the generator's losses are still
    measured, but nothing of it (nor its EMA) moves.

    The discriminator sees (fake, real) in one batched call (exact per sample: instance norm); the
    generator's step calls it without DDP (``D_for_g``) with its parameters frozen. The latent codes (when
    the generator has them) and dropout come from the global RNG, whose state is checkpointed.
    """
    z = None
    if objective.copies == 2:
        x, y = torch.cat([x, x]), torch.cat([y, y])
    if objective.nz:
        z = torch.randn(x.shape[0], objective.nz, device=x.device)
    with autocast(), torch.set_grad_enabled(train_g):  # a warm-up step needs no graph through G
        fake = G(x, z=z) if z is not None else G(x)
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
    if not train_g:
        with torch.no_grad():
            g_gan = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
            g_l1 = F.l1_loss(fake.float(), y.float())
        return torch.stack([g_gan, g_l1, torch.zeros_like(g_l1), d_real, d_fake]).detach()
    # Generator: BCE(D(x, fake), 1) + lambda_l1 * L1(fake, real) + lambda_ms * mode seeking
    D.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    with autocast():
        logits = D_for_g(x, fake).float()
    g_gan = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    g_l1 = F.l1_loss(fake.float(), y.float())
    loss = g_gan + objective.lambda_l1 * g_l1
    g_ms = torch.zeros((), device=x.device)
    if objective.copies == 2:
        f1, f2 = fake.float().chunk(2)
        z1, z2 = z.chunk(2)
        g_ms = 1.0 / ((f1 - f2).abs().mean() / (z1 - z2).abs().mean() + MS_EPS)
        loss = loss + objective.lambda_ms * g_ms
    loss.backward()
    opt_g.step()
    if ema is not None:
        ema.update_parameters(unwrap(G))
    return torch.stack([g_gan, g_l1, g_ms, d_real, d_fake]).detach()


# ----------------------------------------------------------------------------------------------- precision
#: bf16 replaces fp32 for training on the CPU only when a step is at least this much faster here.
BF16_MIN_SPEEDUP = 1.1


def make_autocast(precision: str, device_type: str) -> Callable[[], contextlib.AbstractContextManager]:
    """bf16 autocast (the losses stay fp32), or a no-op for fp32."""
    if precision == "bf16":
        return lambda: torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def time_precisions(cfg: TrainConfig, device: torch.device, rounds: int = 2) -> dict[str, float]:
    """Seconds per training step in fp32 and bf16 here, on copies of the run's networks and synthetic data.

    bf16 halves the cost of a step on CPUs whose vector units multiply it natively (AMD Zen 4: 1.5-1.6x
    faster) and is slower than fp32 on others that merely support it (an Intel CPU without AMX: 0.7x), so
    the choice is timed, not read from CPU flags: eager, one warm-up step then ``rounds`` interleaved steps
    each, best of each, a few seconds in all. The global RNG is left as it was.
    """
    if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return {"fp32": 1.0, "bf16": float("inf")}
    objective = Objective.of(cfg)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        G = UnetGenerator(ngf=cfg.ngf, num_downs=cfg.num_downs, nz=cfg.nz).to(device)
        D = PatchDiscriminator(ndf=cfg.ndf, n_layers=cfg.n_layers_d).to(device)
        nets = {p: (copy.deepcopy(G), copy.deepcopy(D)) for p in ("fp32", "bf16")}
        opts = {p: make_optimizers(cfg, *nets[p]) for p in nets}
        x = torch.rand(cfg.batch_size, 3, cfg.image_size, cfg.image_size, device=device) * 2 - 1
        y = torch.rand_like(x) * 2 - 1
        best = {p: float("inf") for p in nets}
        for i in range(rounds + 1):
            for p, (g, d) in nets.items():
                start = time.perf_counter()
                train_step(g, d, d, *opts[p], x, y, objective, make_autocast(p, device.type))
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i:  # the first round builds the kernels
                    best[p] = min(best[p], time.perf_counter() - start)
    return best


def choose_precision(cfg: TrainConfig, device: torch.device) -> tuple[str, str]:
    """(precision, why): ``cfg.precision`` unless it is "auto", which is bf16 on CUDA, fp32 on other
    accelerators, and on the CPU whichever ``time_precisions`` measures faster."""
    if cfg.precision != "auto":
        return cfg.precision, "as asked"
    if device.type == "cuda":
        return "bf16", "auto: CUDA"
    if device.type != "cpu":
        return "fp32", f"auto: {device.type}"
    seconds = time_precisions(cfg, device)
    speedup = seconds["fp32"] / seconds["bf16"]
    if speedup == 0:
        return "fp32", "auto: this CPU has no bf16 kernels"
    choice = "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32"
    return choice, f"auto: a step in bf16 timed {speedup:.2f}x as fast as in fp32 here"
