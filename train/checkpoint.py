"""Run state on disk: what a checkpoint holds, how it is written safely, and how a run resumes from it.

``latest.pt`` holds the networks (and the generator's EMA), the optimisers, the run's counters
(``RunState``, the plan of a ``--time-budget`` run included), every process's RNG state and the config. A
checkpoint of an earlier version, without the fields ``RunState`` has gained since, resumes with their defaults.
Writes go through a temporary file and a rename, so a crash or a kill mid-save leaves the previous
checkpoint intact. A file that is damaged all the same (a full disk, a copy cut short, another file put in
its place) is named and passed over: the run resumes from the newest readable one (``find_resumable``).
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .step import Networks

# Fields that fix the networks' shapes: a checkpoint only resumes under the same values.
ARCHITECTURE = ("image_size", "ngf", "ndf", "n_layers_d", "direction", "nz", "code_at", "upsample")
#: What an option missing from an older checkpoint's config meant.
OLD_DEFAULTS = {"nz": 0, "code_at": "encoder", "upsample": "transpose"}
#: The keys every checkpoint of this trainer holds.
KEYS = ("generator", "discriminator", "opt_g", "opt_d", "run", "rng", "config")
#: The fields of ``RunState`` that make its plan (what rank 0 decides for every rank).
PLAN_FIELDS = ("epochs", "epochs_decay", "planned", "frozen", "steps", "steps_decay")


class CheckpointError(Exception):
    """A file that cannot be read as a checkpoint of this trainer."""


@dataclass
class RunState:
    """The run's counters and its epoch plan: everything the loop needs to continue where it stopped."""

    epoch: int = 0  # epochs finished
    step_in_epoch: int = 0  # steps done in the current epoch
    global_step: int = 0
    train_seconds: float = 0.0  # time spent in training steps
    elapsed: float = 0.0  # wall time of the run over all its processes: setup, compile, samples, checkpoints
    epochs: int = 0  # the plan: constant-lr epochs ...
    epochs_decay: int = 0  # ... then decay epochs
    planned: bool = False  # a --time-budget run: the plan above came from measured epochs
    frozen: bool = False  # the decay has started: the plan no longer changes
    # A --time-budget run in which fewer than two epochs fit plans in steps: constant-rate steps, then decaying
    # ones (``epochs`` and ``epochs_decay`` then count the epochs they reach into). Both 0: the plan is in epochs.
    steps: int = 0
    steps_decay: int = 0

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay

    @property
    def in_steps(self) -> bool:
        """Whether the plan is one in steps."""
        return bool(self.steps or self.steps_decay)

    def schedule(self, steps_per_epoch: int) -> tuple[int, int]:
        """(constant-rate steps, decaying steps) of the plan: what ``lr_factor`` counts."""
        if self.in_steps:
            return self.steps, self.steps_decay
        return self.epochs * steps_per_epoch, self.epochs_decay * steps_per_epoch

    def finished(self) -> bool:
        """Whether the plan is done: all its epochs, or all its steps for a plan in steps."""
        if self.in_steps:
            return self.global_step >= self.steps + self.steps_decay
        return self.epoch >= self.total_epochs


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoint(state: dict, ckpt_dir: Path, numbered: bool, keep: int) -> Path:
    """Write ``latest.pt`` (and ``epoch_NNNN.pt`` when ``numbered``) atomically; keep the newest ``keep``
    numbered ones (0: all)."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tmp = ckpt_dir / f".tmp-{os.getpid()}.pt"
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    latest = ckpt_dir / "latest.pt"
    if numbered:
        path = ckpt_dir / f"epoch_{state['run']['epoch']:04d}.pt"
        os.replace(tmp, path)
        try:
            os.link(path, tmp)  # the same bytes as latest.pt, without writing them twice
        except OSError:
            shutil.copyfile(path, tmp)
        old = sorted(ckpt_dir.glob("epoch_*.pt"))
        for stale in old[:-keep] if keep > 0 else []:
            stale.unlink(missing_ok=True)
    os.replace(tmp, latest)
    return latest


def make_state(nets: Networks, run: RunState, rngs: list[dict], config: dict, world: int) -> dict:
    """What a checkpoint holds: ``nets``' weights, optimiser moments and EMA, the counters, every rank's RNG
    state (``rngs``, in rank order) and the config."""
    state = {"generator": nets.G.state_dict(), "discriminator": nets.D.state_dict(), "opt_g": nets.opt_g.state_dict(),
             "opt_d": nets.opt_d.state_dict(), "run": dataclasses.asdict(run), "rng": rngs, "config": config,
             "world_size": world}
    if nets.ema is not None:
        state["ema"] = nets.ema.state_dict()
    return state


def read_checkpoint(path: Path) -> dict:
    """A checkpoint's contents; ``CheckpointError`` naming the file and the fault when it is not one."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated zip, not a torch file at all, a pickle of something else, ...
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(ck, dict):
        raise CheckpointError(f"{path} is not a checkpoint of this trainer (it holds a {type(ck).__name__})")
    if "generator" in ck and "run" not in ck:
        raise CheckpointError(f"{path} was written by an older version of this trainer")
    missing = [k for k in KEYS if k not in ck]
    if missing:
        raise CheckpointError(f"{path} is not a checkpoint of this trainer (no {', '.join(missing)})")
    return ck


def check_architecture(path: Path, ck: dict, config: dict) -> None:
    """Refuse a checkpoint whose networks have another shape than ``config`` asks for (a user's mistake, not
    a damaged file: it stops the run rather than falling back to an older checkpoint)."""
    saved = {k: ck["config"].get(k, OLD_DEFAULTS.get(k)) for k in ARCHITECTURE}
    changed = [k for k in ARCHITECTURE if saved[k] != config[k]]
    if changed:
        was = ", ".join(f"{k}={saved[k]}" for k in changed)
        raise SystemExit(f"error: {path} was trained with different {', '.join(changed)} ({was}); use the same "
                         "options, another --run-dir, or --no-resume to start over")


def find_resumable(ckpt_dir: Path, config: dict, warn=print) -> tuple[Path, dict] | None:
    """The newest readable checkpoint in ``ckpt_dir``: ``latest.pt``, else the numbered ones, newest first.

    Each unreadable file is named (``warn``) and left where it is; the next save replaces ``latest.pt``.
    None when the folder holds no checkpoint at all; ``SystemExit`` when it holds only unreadable ones, so
    that a damaged run is never silently started over.
    """
    candidates = [ckpt_dir / "latest.pt"] + sorted(ckpt_dir.glob("epoch_*.pt"), reverse=True)
    bad = []
    for path in candidates:
        if not path.is_file():
            continue
        try:
            ck = read_checkpoint(path)
        except CheckpointError as e:
            warn(f"warning: {e}; trying an older checkpoint")
            bad.append(path)
            continue
        check_architecture(path, ck, config)
        if bad:
            warn(f"resuming from {path} (epoch {ck['run']['epoch']}) instead of the unreadable "
                 f"{', '.join(p.name for p in bad)}")
        return path, ck
    if bad:
        raise SystemExit(f"error: no readable checkpoint in {ckpt_dir} ({', '.join(p.name for p in bad)} cannot be "
                         "read; see above). Restore one from a backup, or start over with --no-resume (or another "
                         "--run-dir); the files are left as they are")
    return None


def restore(ck: dict, nets: Networks, rank: int, world: int, device: torch.device) -> RunState:
    """Load a checkpoint's weights, optimiser moments, EMA and this rank's RNG state into ``nets`` and this
    process; return its counters.

    A checkpoint without an EMA (an older run, or one trained with ``--ema 0``) starts the average afresh
    from the restored generator."""
    nets.G.load_state_dict(ck["generator"])
    nets.D.load_state_dict(ck["discriminator"])
    nets.opt_g.load_state_dict(ck["opt_g"])
    nets.opt_d.load_state_dict(ck["opt_d"])
    if nets.ema is not None:
        if "ema" in ck:
            nets.ema.load_state_dict(ck["ema"])
        else:
            nets.ema.module.load_state_dict(nets.G.state_dict())
            nets.ema.n_averaged.zero_()
    if len(ck["rng"]) == world:
        set_rng_state(ck["rng"][rank], device)
    return RunState(**ck["run"])
