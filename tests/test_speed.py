"""The one speed policy (``pix2pix.speed``): the rule that picks a precision and the fast path by timing."""

from __future__ import annotations

import pytest

from pix2pix import speed


def test_the_fastest_fp32_wins_whatever_the_margin_and_bf16_needs_its_threshold():
    seconds = {("fp32", "plain"): 1.0, ("fp32", "gemm"): 0.99, ("bf16", "gemm"): 0.99 / 1.15}
    assert speed.pick(seconds, 1.2) == ("fp32", "gemm")  # 1.15x over the best fp32: not enough for serving
    assert speed.pick(seconds, 1.1) == ("bf16", "gemm")  # enough for training's threshold
    assert speed.pick({("fp32", "plain"): 1.0, ("fp32", "gemm"): 1.3}, 1.2) == ("fp32", "plain")
    assert speed.pick({("fp32", "plain"): 1.0, ("bf16", "plain"): float("inf")}, 1.1) == ("fp32", "plain")


def test_the_thresholds_sit_side_by_side_and_serving_asks_more():
    assert speed.INFERENCE_BF16_MIN_SPEEDUP > speed.TRAINING_BF16_MIN_SPEEDUP >= 1.0


def test_best_of_interleaves_warms_up_and_keeps_the_best_round():
    order = []
    runs = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    best = speed.best_of(runs, rounds=2)
    assert order == ["a", "b"] * 3  # one warm-up round, then two timed, interleaved
    assert set(best) == {"a", "b"} and all(0 <= s < 1 for s in best.values())


def test_timed_once_measures_once_per_key():
    speed.forget_timings()
    calls = []
    measure = lambda: calls.append(1) or {("fp32", "plain"): 1.0}  # noqa: E731
    assert speed.timed_once("k", measure) == speed.timed_once("k", measure) == {("fp32", "plain"): 1.0}
    speed.timed_once("other", measure)
    assert len(calls) == 2


def test_describe_names_each_candidate_against_the_plain_network():
    seconds = {("fp32", "plain"): 1.0, ("fp32", "gemm"): 0.5, ("bf16", "gemm"): float("inf")}
    text = speed.describe(seconds, ("fp32", "gemm"))
    assert text == "auto: timed here against plain fp32: fp32 + GEMM layers 2.00x"
    assert speed.describe({("fp32", "plain"): 1.0, ("bf16", "plain"): float("inf")}, ("fp32", "plain")) == (
        "auto: this CPU has no bf16 kernels")


@pytest.mark.parametrize("precision", ["half", "int8"])
def test_unknown_precisions_are_named(precision):
    import torch

    with pytest.raises(ValueError, match=f"unknown precision '{precision}'"):
        speed.check_precision(precision, torch.device("cpu"))
