"""``--time-budget``: turn a wall time into an epoch plan that ends on time.

The first epoch is timed (its first steps, which compile, are left out of the speed), then the epochs that
still fit are split half at a constant rate and half decaying, as in the paper. While the rate is still
constant the plan is redone at every epoch's end from the speed measured so far (these machines' speed
wanders); once the decay has begun it is frozen, so the rate falls along one straight line to its end.
The plan lives in ``RunState``, so it is saved in every checkpoint and a resumed run keeps it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Callable

from .checkpoint import RunState

#: Kept free of the budget for what a plan cannot see coming (a slower machine for a while).
MARGIN = 0.02
#: Fixed cost of the end of a run besides evaluating: export, model card, report (at most 5% of the budget).
END_SECONDS = 5.0


def split_epochs(total: int, min_constant: int) -> tuple[int, int]:
    """(constant, decay) epochs for ``total`` in all: half and half, the constant half first and never
    shorter than ``min_constant`` (the epochs already run, or under way, at the constant rate)."""
    total = max(total, min_constant, 1)
    constant = max(total - total // 2, min_constant)
    return constant, total - constant


def fit_epochs(seconds_left: float, epoch_seconds: float, epochs_done: float) -> int:
    """How many epochs in all: those done (a fraction for an epoch under way) plus what fits in ``seconds_left``."""
    return math.floor(epochs_done + max(0.0, seconds_left) / max(epoch_seconds, 1e-9) + 1e-9)


class BudgetPlanner:
    """Measures the run as it goes and keeps ``RunState``'s plan fitted to the budget.

    ``clock`` is injectable so tests can drive the planning with a fake one.
    """

    def __init__(self, budget_seconds: float, steps_per_epoch: int, eval_images: int, batch_size: int,
                 elapsed: float = 0.0, warmup_steps: int = 3, clock: Callable[[], float] = time.monotonic):
        self.budget, self.steps_per_epoch = budget_seconds, steps_per_epoch
        self.eval_images, self.batch_size, self.warmup_steps = eval_images, batch_size, warmup_steps
        self.clock = clock
        self.origin = clock() - elapsed  # so that elapsed() continues a resumed run's count
        self.window_start = clock()
        self.window_steps = 0.0
        # The latest step durations after this process's warm-up (compilation), five epochs' worth. Their
        # median follows a lasting change of the machine's speed within a few epochs, but not a burst of other
        # work beside the run, which would otherwise shorten the plan for good if the decay began during it.
        self.steady: deque[float] = deque(maxlen=max(20, 5 * steps_per_epoch))
        self.seen_steps = 0
        self.overhead = 0.0  # per-epoch time outside the steps: sample grid, checkpoint

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
        """The final evaluation (a forward per image costs well under a training step per image) and export."""
        return (self.step_seconds or 0.0) / self.batch_size * self.eval_images + min(END_SECONDS, 0.05 * self.budget)

    def ready(self, min_steps: int = 10) -> bool:
        """Enough steady steps to plan before the first epoch ends (so a short run still gets its decay)."""
        return len(self.steady) >= min_steps

    def epoch_done(self, run: RunState) -> bool:
        """At an epoch's end: measure its overhead, then re-plan unless the decay has begun."""
        now = self.clock()
        if self.window_steps:
            self.overhead = max(0.0, (now - self.window_start) - self.window_steps)
        self.window_start, self.window_steps = now, 0.0
        return self.plan(run)

    def plan(self, run: RunState) -> bool:
        """Fit the plan to the time left. Returns True when it changed."""
        epoch_seconds = self.epoch_seconds()
        if run.frozen or epoch_seconds is None:
            return False
        done = run.epoch + run.step_in_epoch / self.steps_per_epoch
        left = self.budget * (1 - MARGIN) - self.elapsed() - self.end_seconds()
        min_constant = run.epoch + (1 if run.step_in_epoch else 0)  # never decay inside an epoch under way
        constant, decay = split_epochs(fit_epochs(left, epoch_seconds, done), min_constant)
        changed = (constant, decay) != (run.epochs, run.epochs_decay) or not run.planned
        run.epochs, run.epochs_decay, run.planned = constant, decay, True
        # At an epoch's end with the next epoch decaying (or none left): keep this plan to the end.
        run.frozen = run.step_in_epoch == 0 and run.epoch >= run.epochs
        return changed

    def describe(self, run: RunState) -> str:
        eta = self.budget - self.elapsed()
        return (f"plan: {run.epochs} constant-lr + {run.epochs_decay} decay epochs "
                f"({self.epoch_seconds():.0f} s per epoch, {self.step_seconds * 1000:.0f} ms per step); "
                f"budget {self.budget / 60:.1f} min, {max(eta, 0) / 60:.1f} min left"
                + (" (frozen: the decay has begun)" if run.frozen and run.epoch < run.total_epochs else ""))
