"""``Batcher``: many callers, one model, batched forwards, and each caller keeps its own errors.

A server that hands each request to its own thread calls ``batcher.run(items)`` from all of them. The
first caller to find the model free runs a forward for every request waiting at that moment (its own
among them, up to ``max_batch_size``); the others wait for their results, and whoever finds the model free
next takes what has piled up since. No timer: a request alone runs at once, and under load the batches
fill by themselves while the previous forward runs.

Why not Gradio's ``batch=True``: there the whole batch fails when one input is bad, so a bad upload would
cost its neighbours their images. Here each request is checked in its own thread before it joins a batch,
and gets its own error. The forward runs in a caller's thread (no worker thread), which is what ZeroGPU's
``spaces.GPU`` expects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any


class Batcher:
    def __init__(self, forward: Callable[[list[Any]], Sequence[Any]], max_batch_size: int = 8):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.forward, self.max_batch_size = forward, max_batch_size
        self._cond = threading.Condition()
        self._pending: list[tuple[Any, Future]] = []
        self._busy = False
        self.batch_sizes: list[int] = []  # every forward's size, for tests and benchmarks (the last 1000)

    def run(self, items: Sequence[Any]) -> list[Any]:
        """Results for ``items`` (in order), computed in one or more shared forwards."""
        futures = [Future() for _ in items]
        with self._cond:
            self._pending.extend(zip(items, futures))
        for future in futures:
            while not future.done():
                with self._cond:
                    self._cond.wait_for(lambda future=future: future.done() or not self._busy)
                    if future.done():
                        break
                    self._busy = True
                    batch = self._pending[: self.max_batch_size]
                    del self._pending[: len(batch)]
                try:
                    self._forward(batch)
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()
        return [f.result() for f in futures]

    @property
    def pending(self) -> int:
        """Requests waiting for a forward (for tests and benchmarks)."""
        with self._cond:
            return len(self._pending)

    def _forward(self, batch: list[tuple[Any, Future]]) -> None:
        if not batch:
            return
        self.batch_sizes = self.batch_sizes[-999:] + [len(batch)]
        try:
            results = list(self.forward([item for item, _ in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"the forward returned {len(results)} results for {len(batch)} inputs")
        except BaseException as e:  # every waiting caller of this batch gets the error, none hangs
            for _, future in batch:
                future.set_exception(e)
            return
        for (_, future), result in zip(batch, results):
            future.set_result(result)
