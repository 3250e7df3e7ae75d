"""``--time-budget``: turn a wall time into a plan that ends on time, with the learning rate decayed.

The first steps are timed (the first few, which compile, are left out of the speed), then the epochs that
still fit are split half at a constant rate and half decaying, as in the paper. While the rate is still
constant the plan is redone at every epoch's end from the speed measured so far (these machines' speed
wanders); once the decay has begun it is frozen, so the rate falls along one straight line to its end.
When fewer than two epochs fit (a short budget, a slow machine), whole epochs would leave no room for a
decay (or one too short to bring the rate near zero: under ``MIN_DECAY_STEPS`` steps), so the plan is made in
steps instead: half the steps that fit at the constant rate, half decaying, the run ending inside an epoch if
need be. The time kept for the end of the run is what the final
evaluation is measured to cost here (``time_evaluation``), plus the export. The plan lives in ``RunState``,
so it is saved in every checkpoint and a resumed run keeps it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from .checkpoint import RunState

#: Kept free of the budget for what a plan cannot see coming (a slower machine for a while).
MARGIN = 0.02
#: Fixed cost of the end of a run besides evaluating: the last checkpoint, export, model card, report (at most
#: 5% of the budget).
END_SECONDS = 10.0
#: Images per timed batch when the final evaluation is timed (``time_evaluation``).
TIMED_BATCH = 4
#: What the timed pieces of the evaluation leave out (image conversions, the loops around them), and how much
#: slower the same passes can run in the evaluation than when they were timed: a margin on the estimate.
UNTIMED = 1.2
#: The fewest decaying steps a plan has, even past its budget: the rate ends at most 1/11 of where it started.
MIN_DECAY_STEPS = 10
#: A plan in steps has no epoch's end to be redone at: while its rate is constant it is redone every this many
#: steps, from the slower of the run's speed and that of these last steps (a run too short to wait out a slower
#: machine must follow it at once: ending early is better than ending late).
REPLAN_EVERY = 10


def split_epochs(total: int, min_constant: int) -> tuple[int, int]:
    """(constant, decay) epochs for ``total`` in all: half and half, the constant half first and never
    shorter than ``min_constant`` (the epochs already run, or under way, at the constant rate)."""
    total = max(total, min_constant, 1)
    constant = max(total - total // 2, min_constant)
    return constant, total - constant


def split_steps(total: int, min_constant: int) -> tuple[int, int]:
    """(constant, decay) steps for ``total`` in all: half and half, the constant part never shorter than
    ``min_constant`` (the steps already run) and the decay never shorter than ``MIN_DECAY_STEPS`` (taken from
    the constant part while it can give them, else past ``total``)."""
    constant = max(total - max(total // 2, MIN_DECAY_STEPS), min_constant)
    return constant, max(total - constant, MIN_DECAY_STEPS)


def fit_epochs(seconds_left: float, epoch_seconds: float, epochs_done: float) -> int:
    """How many epochs in all: those done (a fraction for an epoch under way) plus what fits in ``seconds_left``."""
    return math.floor(epochs_done + max(0.0, seconds_left) / max(epoch_seconds, 1e-9) + 1e-9)


@dataclass(frozen=True)
class EvalCost:
    """What the final evaluation costs here: seconds per image and seconds whatever the number of images
    (FID's and KID's matrices, once per seed set)."""

    per_image: float
    fixed: float = 0.0

    def seconds(self, images: int) -> float:
        return self.per_image * images + self.fixed if images else 0.0


def _seconds(fn: Callable[[], object], repeats: int = 2) -> float:
    """The fastest of ``repeats`` calls of ``fn`` after a first one (which builds kernels and loads what is
    cached): one call alone is at the mercy of whatever else the machine does at that moment."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def time_evaluation(generator: torch.nn.Module, dataset: Dataset, device: torch.device) -> EvalCost:
    """Time the final evaluation of ``dataset`` piece by piece, as ``train.evaluate`` runs it: reading an image
    pair, generating in fp32 (a batch of ``TIMED_BATCH``: a little slower per image than its batches), SSIM,
    and when FID is installed the Inception on as many images and FID and KID on features of ``len(dataset)``.
    Why: on a CPU the evaluation (several seed sets, an Inception pass over each) can take longer than a short
    budget's training, and how much longer depends on the machine. ``generator`` is copied; the global RNG is
    left as it was."""
    import copy

    from pix2pix import Pix2Pix

    from . import evaluate

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = Pix2Pix(copy.deepcopy(generator).float(), device=device, precision="fp32")
        images, n = len(dataset), TIMED_BATCH
        label = dataset[0][0]
        photos = label.expand(n, -1, -1, -1) * 0.5 + 0.5
        read = _seconds(lambda: dataset[0])
        gen = _seconds(lambda: model.generate_batch([label] * n, list(range(n)))) / n
        fid = evaluate.fid_note() is None
        sets = getattr(evaluate, "SEED_SETS", 1) if fid else 1
        diversity = evaluate.DIVERSITY_SEEDS * min(evaluate.DIVERSITY_MAPS, images) / max(images, 1)
        per_image = (read + gen) * (sets + diversity) + _seconds(lambda: evaluate.ssim(photos, photos)) / n
        fixed = 0.0
        if fid:
            import numpy as np

            from . import fid as fidlib

            per_image += (sets + 1) * _seconds(lambda: fidlib.inception_features(photos)) / n
            a, b = np.random.default_rng(0).random((2, max(images, 2), fidlib.FEATURES))
            start = time.perf_counter()
            fidlib.fid_from_features(a, b)
            fidlib.kid_from_features(a, b)
            fixed = sets * (time.perf_counter() - start)
    return EvalCost(per_image * UNTIMED, fixed * UNTIMED)


class BudgetPlanner:
    """Measures the run as it goes and keeps ``RunState``'s plan fitted to the budget.

    ``clock`` is injectable so tests can drive the planning with a fake one; ``evaluation`` is what the final
    evaluation costs (``time_evaluation``; without it, an image is taken to cost what a training step costs
    per image).
    """

    def __init__(self, budget_seconds: float, steps_per_epoch: int, eval_images: int, batch_size: int,
                 elapsed: float = 0.0, warmup_steps: int = 3, clock: Callable[[], float] = time.monotonic,
                 evaluation: EvalCost | None = None):
        self.budget, self.steps_per_epoch = budget_seconds, steps_per_epoch
        self.eval_images, self.batch_size, self.warmup_steps = eval_images, batch_size, warmup_steps
        self.clock, self.evaluation = clock, evaluation
        self.origin = clock() - elapsed  # so that elapsed() continues a resumed run's count
        self.window_start = clock()
        self.window_steps = 0.0
        # The latest step durations after this process's warm-up (compilation), five epochs' worth. Their
        # median follows a lasting change of the machine's speed within a few epochs, but not a burst of other
        # work beside the run, which would otherwise shorten the plan for good if the decay began during it.
        self.steady: deque[float] = deque(maxlen=max(20, 5 * steps_per_epoch))
        self.seen_steps = 0
        self.overhead = 0.0  # per-epoch time outside the steps: sample grid, checkpoint
        self.past_budget = False  # the latest plan ends after the budget (its decay's shortest length)

    def elapsed(self) -> float:
        return self.clock() - self.origin

    def step_done(self, seconds: float) -> None:
        """One training step (data included) took ``seconds``."""
        self.seen_steps += 1
        self.window_steps += seconds
        if self.seen_steps > self.warmup_steps:
            self.steady.append(seconds)

    @property
    def step_seconds(self) -> float | None:
        return statistics.median(self.steady) if self.steady else None

    def epoch_seconds(self) -> float | None:
        step = self.step_seconds
        return None if step is None else step * self.steps_per_epoch + self.overhead

    def end_seconds(self) -> float:
        """The final evaluation and the export."""
        if self.evaluation is not None:
            evaluating = self.evaluation.seconds(self.eval_images)
        else:
            evaluating = (self.step_seconds or 0.0) / self.batch_size * self.eval_images
        return evaluating + min(END_SECONDS, 0.05 * self.budget)

    def ready(self, min_steps: int = 10) -> bool:
        """Enough steady steps to plan before the first epoch ends (so a short run still gets its decay)."""
        return len(self.steady) >= min_steps

    def due(self, run: RunState) -> bool:
        """Whether to plan after this step, inside an epoch: the first plan as soon as enough steps have been
        timed, then every ``REPLAN_EVERY`` steps while a plan in steps runs at its constant rate. The same on
        every rank (it counts steps, not seconds)."""
        if not run.planned:
            return self.ready()
        return run.in_steps and not run.frozen and run.global_step % REPLAN_EVERY == 0

    def epoch_done(self, run: RunState) -> bool:
        """At an epoch's end: measure its overhead, then re-plan unless the decay has begun."""
        now = self.clock()
        if self.window_steps:
            self.overhead = max(0.0, (now - self.window_start) - self.window_steps)
        self.window_start, self.window_steps = now, 0.0
        return self.plan(run)

    def seconds_left(self) -> float:
        """What the budget leaves for training from now on."""
        return self.budget * (1 - MARGIN) - self.elapsed() - self.end_seconds()

    def plan(self, run: RunState) -> bool:
        """Fit the plan to the time left: in epochs when the decaying ones still make ``MIN_DECAY_STEPS`` steps or
        more, else in steps. Returns True when it changed."""
        epoch_seconds = self.epoch_seconds()
        if run.in_steps and run.global_step >= run.steps:  # a plan in steps whose decay has begun
            run.frozen = True
        if run.frozen or epoch_seconds is None:
            return False
        before = (run.epochs, run.epochs_decay, run.steps, run.steps_decay)
        done = run.epoch + run.step_in_epoch / self.steps_per_epoch
        min_constant = run.epoch + (1 if run.step_in_epoch else 0)  # never decay inside an epoch under way
        constant, decay = split_epochs(fit_epochs(self.seconds_left(), epoch_seconds, done), min_constant)
        if decay * self.steps_per_epoch >= MIN_DECAY_STEPS:
            run.epochs, run.epochs_decay, run.steps, run.steps_decay = constant, decay, 0, 0
            self.past_budget = False
            # At an epoch's end with the next epoch decaying (or none left): keep this plan to the end.
            run.frozen = run.step_in_epoch == 0 and run.epoch >= run.epochs
        else:
            self.plan_steps(run)
        changed = (run.epochs, run.epochs_decay, run.steps, run.steps_decay) != before or not run.planned
        run.planned = True
        return changed

    def plan_steps(self, run: RunState) -> None:
        """The plan in steps: the steps that fit (each epoch's end, and the last one, cost ``overhead``), half
        at the constant rate and half decaying; frozen at once when the decay begins now."""
        spe, step = self.steps_per_epoch, self.latest_step_seconds()
        fit = math.floor(max(0.0, self.seconds_left() - self.overhead) / max(step + self.overhead / spe, 1e-9) + 1e-9)
        constant, decay = split_steps(run.global_step + fit, run.global_step)
        self.past_budget = constant + decay > run.global_step + fit
        run.steps, run.steps_decay = constant, decay
        run.epochs = self.epochs_reached(run, constant)  # for the progress bar, the report and the model card
        run.epochs_decay = self.epochs_reached(run, constant + decay) - run.epochs
        run.frozen = run.global_step >= constant

    def latest_step_seconds(self) -> float:
        """The slower of the run's step time and that of its last ``REPLAN_EVERY`` steps."""
        return max(self.step_seconds, statistics.median(list(self.steady)[-REPLAN_EVERY:]))

    def epochs_reached(self, run: RunState, steps: int) -> int:
        """The epochs that ``steps`` steps in all reach into, the one under way counted."""
        return run.epoch + max(0, -(-(steps - run.global_step + run.step_in_epoch) // self.steps_per_epoch))

    def describe(self, run: RunState) -> str:
        eta = self.budget - self.elapsed()
        step = self.latest_step_seconds() if run.in_steps else self.step_seconds
        speed = f"{self.epoch_seconds():.0f} s per epoch, {step * 1000:.0f} ms per step"
        if run.in_steps:
            what = (f"{run.steps} constant-lr + {run.steps_decay} decay steps, "
                    f"{(run.steps + run.steps_decay) / self.steps_per_epoch:.2f} epochs (too few fit to decay over "
                    f"whole epochs; {speed})")
        else:
            what = f"{run.epochs} constant-lr + {run.epochs_decay} decay epochs ({speed})"
        return (f"plan: {what}; budget {self.budget / 60:.1f} min, {max(eta, 0) / 60:.1f} min left"
                + (f", {self.end_seconds():.0f} s of it for the evaluation and export" if run.in_steps else "")
                + (" (frozen: the decay has begun)" if run.frozen and not run.finished() else "")
                + (f"; the budget is too short here: it ends past it, with the shortest decay ({MIN_DECAY_STEPS} "
                   "steps)" if self.past_budget else ""))
