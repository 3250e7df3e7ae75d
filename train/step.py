"""One pix2pix training step and what it runs on (``Networks``: the networks, optimisers, EMA, objective and
precision, built by ``make_networks``), the objective, the generator's EMA, the optimisers, the learning-rate
schedule, and the choice of precision.

Kept apart from the loop so that ``train.benchmark`` times exactly the step that ``python -m train`` runs, on
networks built and wrapped the same way.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel

from pix2pix import PatchDiscriminator, UnetGenerator
from pix2pix.speed import TRAINING_BF16_MIN_SPEEDUP, best_of, cpu_has_bf16, pick, timed_once

from .augment import augment, parse_policy
from .config import TrainConfig
from .evaluate import fine_detail

LOSS_NAMES = ("g_gan", "g_l1", "g_ms", "d_real", "d_fake", "g_fm")
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
    code_scale_max: float = 1.0
    lambda_fm: float = 0.0
    diffaug: tuple[str, ...] = ()
    ms_on: str = "pixel"
    l1_downsample: int = 1
    code_maps: float = 0.0
    lambda_keep: float = 10.0

    @classmethod
    def of(cls, cfg: TrainConfig) -> Objective:
        return cls(cfg.lambda_l1, cfg.lambda_ms, cfg.nz, cfg.code_scale_max, cfg.lambda_fm, parse_policy(cfg.diffaug),
                   cfg.ms_on, cfg.l1_downsample, cfg.code_maps, cfg.lambda_keep)

    def draw_codes(self, n: int, device: torch.device) -> torch.Tensor:
        """``n`` training codes: N(0, 1), each scaled by a factor uniform in [1/M, M] when ``code_scale_max`` M > 1
        (codes of large norm, which some seeds draw at inference, then get trained too)."""
        z = torch.randn(n, self.nz, device=device)
        if self.code_scale_max > 1:
            lo, hi = 1.0 / self.code_scale_max, self.code_scale_max
            z = z * (lo + (hi - lo) * torch.rand(n, 1, device=device))
        return z

    def draw_pair_codes(self, n: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The codes of ``n`` inputs generated twice (``2n`` codes: the first copies' then the second's) and, with
        ``code_maps``, where the second copy's code differs: each pair is, with probability ``code_maps``, the
        first code outside a random box and a new one inside it (codes then come as (2n, nz, size, size) maps,
        always, so that the compiled graph keeps one shape). ``region`` (n, 1, size, size): 1 where the pair's
        codes differ (everywhere for a pair of plain codes), None without code maps."""
        z = self.draw_codes(2 * n, device)
        if not self.code_maps:
            return z, None
        z1, z2 = (c[:, :, None, None] for c in z.chunk(2))
        boxed = (torch.rand(n, 1, 1, 1, device=device) < self.code_maps).float()
        box = random_boxes(n, size, device)
        region = boxed * box + (1 - boxed)
        second = region * z2 + (1 - region) * z1
        return torch.cat([z1.expand_as(second), second]), region

    @property
    def copies(self) -> int:
        """How many times each input goes through the networks in a step."""
        return 2 if self.lambda_ms > 0 else 1


def random_boxes(n: int, size: int, device: torch.device, lo: float = 0.25, hi: float = 0.75) -> torch.Tensor:
    """``n`` masks (n, 1, size, size), each 1 inside an axis-aligned box whose sides are ``lo``..``hi`` of the
    image's (from the global RNG, which checkpoints keep)."""
    sides = (lo + (hi - lo) * torch.rand(n, 2, device=device)) * size
    starts = torch.rand(n, 2, device=device) * (size - sides)
    grid = torch.arange(size, device=device, dtype=torch.float32)
    rows = (grid[None] >= starts[:, :1]) & (grid[None] < starts[:, :1] + sides[:, :1])
    cols = (grid[None] >= starts[:, 1:]) & (grid[None] < starts[:, 1:] + sides[:, 1:])
    return (rows[:, :, None] & cols[:, None, :]).float()[:, None]


def masked_mean(diff: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """The mean of ``diff`` (N, C, H, W) where ``weight`` (N, 1, h, w; averaged to H x W) says, or everywhere."""
    if weight is None:
        return diff.mean()
    w = F.adaptive_avg_pool2d(weight, diff.shape[2:]) if weight.shape[2:] != diff.shape[2:] else weight
    return (diff * w).sum() / (w.sum() * diff.shape[1]).clamp_min(1e-8)


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


# ----------------------------------------------------------------------------------------------- networks
@dataclass
class Networks:
    """All that a training step touches: the two networks, their optimisers, the generator's EMA, the objective
    and the precision (``autocast``). A checkpoint saves and restores the same object.

    ``G_train``/``D_train`` are the networks as the step calls them (``wrap``: DDP and torch.compile around
    them; the plain networks when not wrapped), ``D_for_g`` the discriminator of the generator's step, which
    runs without DDP since its parameters are frozen then. ``channels_last``: batches and networks in that
    memory format (CUDA).
    """

    G: UnetGenerator
    D: PatchDiscriminator
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
    objective: Objective
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    ema: AveragedModel | None = None
    channels_last: bool = False
    G_train: torch.nn.Module | None = None
    D_train: torch.nn.Module | None = None
    D_for_g: torch.nn.Module | None = None

    def __post_init__(self):
        self.G_train = self.G if self.G_train is None else self.G_train
        self.D_train = self.D if self.D_train is None else self.D_train
        self.D_for_g = self.D_train if self.D_for_g is None else self.D_for_g

    @property
    def G_eval(self) -> torch.nn.Module:
        """The generator that is sampled, evaluated and exported: the EMA's when there is one."""
        return self.ema.module if self.ema is not None else self.G

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    def wrap(self, ddp: Callable[[torch.nn.Module], torch.nn.Module] | None = None, compile: bool = False) -> None:
        """Put ``ddp`` (data-parallel, when given) and torch.compile (when ``compile``) around the networks the
        step calls. The generator's step calls the discriminator without DDP (compiled on its own then)."""
        G_train, D_train = (ddp(self.G), ddp(self.D)) if ddp else (self.G, self.D)
        D_for_g = self.D
        if compile:
            G_train, D_train = torch.compile(G_train), torch.compile(D_train)
            D_for_g = torch.compile(self.D) if ddp else D_train
        self.G_train, self.D_train, self.D_for_g = G_train, D_train, D_for_g

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        """A batch on the networks' device, in their memory format."""
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def train(self) -> None:
        self.G_train.train()
        self.D_train.train()

    def set_lr(self, lr_g: float, lr_d: float) -> None:
        set_lr(self.opt_g, lr_g)
        set_lr(self.opt_d, lr_d)


def make_networks(cfg: TrainConfig, device: torch.device, precision: str = "fp32", seed: int = 0) -> Networks:
    """The run's networks, optimisers and EMA, initialised from ``seed`` (the generator first, then the
    discriminator: the same weights on every rank and every run of a seed). On CUDA: channels_last and fused
    Adam as ``cfg`` asks."""
    is_cuda = device.type == "cuda"
    channels_last = cfg.channels_last and is_cuda
    torch.manual_seed(seed)
    G = UnetGenerator(**cfg.generator_kwargs).to(device)
    D = PatchDiscriminator(ndf=cfg.ndf, n_layers=cfg.n_layers_d).to(device)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_g, opt_d = make_optimizers(cfg, G, D, fused=cfg.fused_adam and is_cuda)
    ema = make_ema(G, cfg.ema) if cfg.ema else None
    return Networks(G, D, opt_g, opt_d, Objective.of(cfg), make_autocast(precision, device.type), ema, channels_last)


# ----------------------------------------------------------------------------------------------- step
def train_step(nets: Networks, x: torch.Tensor, y: torch.Tensor, train_g: bool = True) -> torch.Tensor:
    """One pix2pix step on ``nets``. Returns ``LOSS_NAMES``' values as a detached tensor.

    ``train_g=False`` updates the discriminator alone (``--d-warmup``): the generator's losses are still
    measured, but nothing of it (nor its EMA) moves.

    The discriminator sees (fake, real) in one batched call (exact per sample: instance norm); the
    generator's step calls it without DDP (``D_for_g``) with its parameters frozen. The latent codes (when
    the generator has them), dropout and the discriminator's augmentation come from the global RNG, whose
    state is checkpointed.
    """
    G, objective, autocast = nets.G_train, nets.objective, nets.autocast
    z = region = None
    if objective.copies == 2:
        z, region = objective.draw_pair_codes(x.shape[0], x.shape[-1], x.device)
        x, y = torch.cat([x, x]), torch.cat([y, y])
    elif objective.nz:
        z = objective.draw_codes(x.shape[0], x.device)
    with autocast(), torch.set_grad_enabled(train_g):  # a warm-up step needs no graph through G
        fake = G(x, z=z) if z is not None else G(x)
    fake_logits, d_real, d_fake = discriminator_step(nets, x, fake.detach(), y)
    if not train_g:
        with torch.no_grad():
            g_gan = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
            g_l1 = F.l1_loss(fake.float(), y.float())
        zero = torch.zeros_like(g_l1)
        return torch.stack([g_gan, g_l1, zero, d_real, d_fake, zero]).detach()
    g_gan, g_l1, g_ms, g_fm = generator_step(nets, x, fake, y, z, region)
    return torch.stack([g_gan, g_l1, g_ms, d_real, d_fake, g_fm]).detach()


def discriminator_step(nets: Networks, x: torch.Tensor, fake: torch.Tensor,
                       y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """0.5 * (BCE(D(x, fake), 0) + BCE(D(x, real), 1)), one Adam step; returns the fake logits, d_real and
    d_fake (detached)."""
    D, opt_d = nets.D_train, nets.opt_d
    D.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    xa, fa, ya = augment(nets.objective.diffaug, x, fake, y)
    with nets.autocast():
        logits = D(torch.cat([xa, xa]), torch.cat([fa, ya])).float()
    fake_logits, real_logits = logits.chunk(2)
    d_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    d_real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    (0.5 * (d_fake + d_real)).backward()
    opt_d.step()
    return fake_logits.detach(), d_real.detach(), d_fake.detach()


def generator_step(nets: Networks, x: torch.Tensor, fake: torch.Tensor, y: torch.Tensor,
                   z: torch.Tensor | None, region: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """BCE(D(x, fake), 1) + lambda_l1 * L1(fake, real) + lambda_ms * mode seeking + lambda_fm * feature
    matching, one Adam step, then the EMA. Returns (g_gan, g_l1, g_ms, g_fm)."""
    D, objective, opt_g = nets.D_train, nets.objective, nets.opt_g
    D.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    xa, fa, ya = augment(objective.diffaug, x, fake, y)
    g_fm = torch.zeros((), device=x.device)
    fake_feats = None
    with nets.autocast():
        if objective.lambda_fm or objective.ms_on == "dfeat":
            logits, fake_feats = nets.D_for_g(xa, fa, features=True)
        else:
            logits = nets.D_for_g(xa, fa)
        if objective.lambda_fm:
            with torch.no_grad():
                _, real_feats = nets.D_for_g(xa, ya, features=True)
            g_fm = sum(F.l1_loss(f.float(), r.float()) for f, r in zip(fake_feats, real_feats)) / len(fake_feats)
    logits = logits.float()
    g_gan = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    k = objective.l1_downsample
    g_l1 = F.l1_loss(*(F.avg_pool2d(t.float(), k) if k > 1 else t.float() for t in (fake, y)))
    loss = g_gan + objective.lambda_l1 * g_l1 + objective.lambda_fm * g_fm
    g_ms = torch.zeros((), device=x.device)
    if objective.copies == 2:
        g_ms, keep = mode_seeking(objective, fake, z, region, fake_feats)
        loss = loss + objective.lambda_ms * g_ms + objective.lambda_keep * keep
    loss.backward()
    opt_g.step()
    if nets.ema is not None:
        nets.ema.update_parameters(unwrap(nets.G_train))
    return g_gan, g_l1, g_ms, g_fm


def mode_seeking(objective: Objective, fake: torch.Tensor, z: torch.Tensor, region: torch.Tensor | None,
                 fake_feats: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(MSGAN's term, the code maps' keep-outside term) of a batch generated twice (``fake``: the first copies,
    then the second; ``z`` their codes or code maps).

    The term is 1 / (d(f1, f2) / mean|z1 - z2| + eps), where d is the mean absolute difference of the pixels,
    of their fine detail (``train.evaluate.fine_detail``: a new tint does not count) or of the discriminator's
    features (``fake_feats``, per layer, averaged), as ``objective.ms_on`` says; with code maps, only inside each
    pair's ``region``, and the keep term is the L1 between the second facade and the (fixed) first one outside it.
    """
    f1, f2 = fake.float().chunk(2)
    z1, z2 = z.float().chunk(2)
    codes = masked_mean((z1 - z2).abs(), region) if region is not None else (z1 - z2).abs().mean()
    if objective.ms_on == "dfeat":
        pairs = [f.float().chunk(2) for f in fake_feats]
        apart = sum(masked_mean((a - b).abs(), region) for a, b in pairs) / len(pairs)
    elif objective.ms_on == "detail":
        apart = masked_mean((fine_detail(f1 * 0.5 + 0.5) - fine_detail(f2 * 0.5 + 0.5)).abs()[:, None], region)
    else:
        apart = masked_mean((f1 - f2).abs(), region)
    term = 1.0 / (apart / codes.clamp_min(1e-8) + MS_EPS)
    keep = torch.zeros((), device=fake.device)
    if region is not None and objective.lambda_keep:
        keep = masked_mean((f2 - f1.detach()).abs(), 1 - region)
    return term, keep


# ----------------------------------------------------------------------------------------------- precision
def make_autocast(precision: str, device_type: str) -> Callable[[], contextlib.AbstractContextManager]:
    """bf16 autocast (the losses stay fp32), or a no-op for fp32."""
    if precision == "bf16":
        return lambda: torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def time_precisions(cfg: TrainConfig, device: torch.device, rounds: int = 2) -> dict[str, float]:
    """Seconds per training step in fp32 and bf16 here, on copies of the run's networks and synthetic data.

    The rule that reads these, and why it is timed rather than read from the CPU's flags, is
    ``pix2pix.speed``'s; this builds its candidates: eager steps, one warm-up then ``rounds`` interleaved,
    best of each, once per process for the run's shapes. The global RNG is left as it was.
    """
    if device.type == "cpu" and not cpu_has_bf16():
        return {"fp32": 1.0, "bf16": float("inf")}
    key = ("training", *cfg.generator_kwargs.values(), cfg.ndf, cfg.n_layers_d, cfg.batch_size, cfg.image_size,
           Objective.of(cfg).copies, str(device), torch.get_num_threads(), rounds)
    return timed_once(key, lambda: _time_steps(cfg, device, rounds))


def _time_steps(cfg: TrainConfig, device: torch.device, rounds: int) -> dict[str, float]:
    objective = Objective.of(cfg)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        G = UnetGenerator(**cfg.generator_kwargs).to(device)
        D = PatchDiscriminator(ndf=cfg.ndf, n_layers=cfg.n_layers_d).to(device)
        x = torch.rand(cfg.batch_size, 3, cfg.image_size, cfg.image_size, device=device) * 2 - 1
        y = torch.rand_like(x) * 2 - 1
        runs = {}
        for p in ("fp32", "bf16"):
            g, d = copy.deepcopy(G), copy.deepcopy(D)
            nets = Networks(g, d, *make_optimizers(cfg, g, d), objective, make_autocast(p, device.type))
            runs[p] = lambda nets=nets: train_step(nets, x, y)
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
        return best_of(runs, rounds, sync)


def choose_precision(cfg: TrainConfig, device: torch.device) -> tuple[str, str]:
    """(precision, why): ``cfg.precision`` unless it is "auto", which is bf16 on CUDA, fp32 on other
    accelerators, and on the CPU what ``pix2pix.speed.pick`` makes of ``time_precisions`` (bf16 only when
    at least ``TRAINING_BF16_MIN_SPEEDUP`` times as fast)."""
    if cfg.precision != "auto":
        return cfg.precision, "as asked"
    if device.type == "cuda":
        return "bf16", "auto: CUDA"
    if device.type != "cpu":
        return "fp32", f"auto: {device.type}"
    seconds = time_precisions(cfg, device)
    if seconds["bf16"] == float("inf"):
        return "fp32", "auto: this CPU has no bf16 kernels"
    choice, _ = pick({(p, "plain"): t for p, t in seconds.items()}, TRAINING_BF16_MIN_SPEEDUP)
    return choice, f"auto: a step in bf16 timed {seconds['fp32'] / seconds['bf16']:.2f}x as fast as in fp32 here"
