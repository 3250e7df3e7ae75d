"""Run state on disk: what a checkpoint holds, how it is written safely, and how a run resumes from it.

``latest.pt`` holds the networks (and the generator's EMA), the optimisers, the run's counters
(``RunState``, the epoch plan of a ``--time-budget`` run included), every process's RNG state and the config.
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

# Fields that fix the networks' shapes: a checkpoint only resumes under the same values.
ARCHITECTURE = ("image_size", "ngf", "ndf", "n_layers_d", "direction", "nz")
#: What an option missing from an older checkpoint's config meant.
OLD_DEFAULTS = {"nz": 0}
#: The keys every checkpoint of this trainer holds.
KEYS = ("generator", "discriminator", "opt_g", "opt_d", "run", "rng", "config")


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

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay


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


def make_state(G, D, opt_g, opt_d, run: RunState, rngs: list[dict], config: dict, world: int, ema=None) -> dict:
    state = {"generator": G.state_dict(), "discriminator": D.state_dict(), "opt_g": opt_g.state_dict(),
             "opt_d": opt_d.state_dict(), "run": dataclasses.asdict(run), "rng": rngs, "config": config,
             "world_size": world}
    if ema is not None:
        state["ema"] = ema.state_dict()
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


def restore(ck: dict, G, D, opt_g, opt_d, rank: int, world: int, device: torch.device, ema=None) -> RunState:
    """Load a checkpoint's weights, optimiser moments, EMA and this rank's RNG state; return its counters.

    A checkpoint without an EMA (an older run, or one trained with ``--ema 0``) starts the average afresh
    from the restored generator."""
    G.load_state_dict(ck["generator"])
    D.load_state_dict(ck["discriminator"])
    opt_g.load_state_dict(ck["opt_g"])
    opt_d.load_state_dict(ck["opt_d"])
    if ema is not None:
        if "ema" in ck:
            ema.load_state_dict(ck["ema"])
        else:
            ema.module.load_state_dict(G.state_dict())
            ema.n_averaged.zero_()
    if len(ck["rng"]) == world:
        set_rng_state(ck["rng"][rank], device)
    return RunState(**ck["run"])
