"""Run state on disk: what a checkpoint holds, how it is written safely, and how a run resumes from it.

``latest.pt`` holds the networks, the optimisers, the run's counters (``RunState``, the epoch plan of a
``--time-budget`` run included), every process's RNG state and the config. Writes go through a temporary
file and a rename, so a crash or a kill mid-save leaves the previous checkpoint intact.
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
ARCHITECTURE = ("image_size", "ngf", "ndf", "n_layers_d", "direction")


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


def make_state(G, D, opt_g, opt_d, run: RunState, rngs: list[dict], config: dict, world: int) -> dict:
    return {"generator": G.state_dict(), "discriminator": D.state_dict(), "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(), "run": dataclasses.asdict(run), "rng": rngs, "config": config,
            "world_size": world}


def load_checkpoint(path: Path, config: dict) -> dict:
    """Read a checkpoint and refuse one whose networks have another shape than ``config`` asks for."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if "run" not in ck:
        raise SystemExit(f"error: {path} was written by an older version of this trainer; use another --run-dir "
                         "or --no-resume to start over")
    changed = [k for k in ARCHITECTURE if ck["config"].get(k) != config[k]]
    if changed:
        was = ", ".join(f"{k}={ck['config'][k]}" for k in changed)
        raise SystemExit(f"error: {path} was trained with different {', '.join(changed)} ({was}); use the same "
                         "options, another --run-dir, or --no-resume to start over")
    return ck


def restore(ck: dict, G, D, opt_g, opt_d, rank: int, world: int, device: torch.device) -> RunState:
    """Load a checkpoint's weights, optimiser moments and this rank's RNG state; return its counters."""
    G.load_state_dict(ck["generator"])
    D.load_state_dict(ck["discriminator"])
    opt_g.load_state_dict(ck["opt_g"])
    opt_d.load_state_dict(ck["opt_d"])
    if len(ck["rng"]) == world:
        set_rng_state(ck["rng"][rank], device)
    return RunState(**ck["run"])
