"""``pix2pix.batcher.Batcher``: callers share forwards, results go back to their callers, errors too."""

from __future__ import annotations

import threading

import pytest

from pix2pix.batcher import Batcher


class Gate:
    """A forward that can be held shut, so that callers pile up behind it."""

    def __init__(self):
        self.open = threading.Event()
        self.open.set()
        self.started = threading.Event()
        self.batches: list[list] = []

    def __call__(self, items):
        self.batches.append(list(items))
        self.started.set()
        assert self.open.wait(10)
        if "boom" in items:
            raise RuntimeError("the forward failed")
        return [item * 10 for item in items]


def test_results_come_back_in_order_to_their_caller():
    gate = Gate()
    batcher = Batcher(gate, max_batch_size=8)
    assert batcher.run([1, 2, 3]) == [10, 20, 30]
    assert gate.batches == [[1, 2, 3]] and batcher.batch_sizes == [3]


def test_callers_waiting_behind_a_forward_share_the_next_one():
    gate = Gate()
    batcher = Batcher(gate, max_batch_size=3)
    gate.open.clear()
    results = {}
    first = threading.Thread(target=lambda: results.setdefault(0, batcher.run([0])))
    first.start()
    assert gate.started.wait(10)
    others = [threading.Thread(target=lambda i=i: results.setdefault(i, batcher.run([i]))) for i in range(1, 6)]
    for t in others:
        t.start()
    while len(batcher._pending) < 5:  # noqa: SLF001 - until all five wait behind the held forward
        threading.Event().wait(0.005)
    gate.open.set()
    for t in [first, *others]:
        t.join(10)
    assert results == {i: [10 * i] for i in range(6)}
    assert gate.batches[0] == [0] and sorted(len(b) for b in gate.batches[1:]) == [2, 3]  # at most 3 a forward


def test_a_failing_forward_fails_its_batch_only():
    gate = Gate()
    batcher = Batcher(gate)
    with pytest.raises(RuntimeError, match="the forward failed"):
        batcher.run([1, "boom"])
    assert batcher.run([2]) == [20]  # the next caller is served: nothing hangs, nothing is left busy


def test_a_forward_returning_the_wrong_count_is_an_error():
    batcher = Batcher(lambda items: items[:-1])
    with pytest.raises(RuntimeError, match="returned 1 results for 2 inputs"):
        batcher.run([1, 2])
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(lambda items: items, max_batch_size=0)
