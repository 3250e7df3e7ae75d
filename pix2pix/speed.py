"""The one speed policy, for inference and training: which precision, and which inference runtime and layout (the
plain network, its fast path, or ONNX Runtime), is decided by timing the candidates on the machine at hand.

Why timed, not read from the CPU's feature flags: the same choice is twice as fast on one CPU and slower on
another. bf16 doubles the arithmetic where the vector units multiply it natively and loses where they merely
support it; oneDNN's kernels for the U-Net's tiny inner layers, which the fast path replaces by GEMMs, are
good on some CPUs and poor on others; ONNX Runtime's CPU kernels beat torch's fp32 on some CPUs and not on
others. (Figures per CPU: docs/speed.md.)

The rule (``pick``), the same for both:
- every candidate runs in interleaved rounds after a warm-up, and its best round counts (``best_of``), so
  machine noise hits all of them alike;
- among the fp32 candidates the fastest wins, whatever the margin: the fast path and ONNX Runtime compute the
  same numbers as the plain network up to float rounding (ONNX Runtime's with the weights rounded to fp16,
  a fraction of a grey level: ``pix2pix.export``), so the plain eager fp32 forward is always a candidate and
  the choice is never slower than it (as timed);
- a reduced-precision candidate replaces that fp32 choice only when it is at least ``*_BF16_MIN_SPEEDUP``
  times as fast. The two thresholds differ for a reason:

  - inference, ``INFERENCE_BF16_MIN_SPEEDUP``: bf16 moves a served facade by a grey level or so, which is
    worth a clear gain, not a coin toss between two equally fast choices;
  - training, ``TRAINING_BF16_MIN_SPEEDUP``: bf16 autocast keeps fp32 master weights and no one compares a
    run's pixels with another's; a run lasts hours, so a smaller but sure gain pays.

When: once per process for each network shape, device and thread count (``timed_once``): inference when
``Pix2Pix.choose_fastest`` is first called for that shape on the CPU (never by loading), training when a run
starts. An explicit precision
(``fp32``, ``bf16``) skips the precision timing; on CUDA nothing is timed (fp16 autocast for inference, bf16
for training).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping

import torch

#: The precisions a model runs in; "auto" picks one of the others by this module's rule.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISION_HELP = ("auto (the fastest here: on the CPU bf16 or fp32, timed once per process; fp16 on CUDA), fp32, "
                  "bf16, or fp16 (CUDA only). bf16 and fp16 move a facade by a grey level or so (default: auto)")

#: bf16 replaces the fp32 choice for serving facades only when it is at least this much faster (see above).
INFERENCE_BF16_MIN_SPEEDUP = 1.2
#: bf16 autocast replaces fp32 for training only when a step is at least this much faster (see above).
TRAINING_BF16_MIN_SPEEDUP = 1.1

#: How a network is laid out to run: torch's plain modules, torch with the small layers as GEMMs
#: (``pix2pix.fast``), or the ONNX export run by ONNX Runtime (``pix2pix.export``; fp32 arithmetic).
LAYOUTS = ("plain", "gemm", "onnxruntime")
#: A candidate: (precision, layout). Training runs "plain" throughout.
Variant = tuple[str, str]

_TIMINGS: dict[Hashable, dict] = {}


def check_precision(precision: str, device: torch.device) -> None:
    """``ValueError`` for a precision that does not exist or cannot run on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("fp16 runs on CUDA; on the CPU use bf16 or fp32 (or auto)")


def cpu_has_bf16() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU at all (without them bf16 is not even a candidate)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def best_of(runs: Mapping[Hashable, Callable[[], object]], rounds: int = 3,
            sync: Callable[[], None] = lambda: None) -> dict[Hashable, float]:
    """Seconds of the best of ``rounds`` calls of each run, interleaved, after one warm-up round (which builds
    oneDNN's kernels and is not counted)."""
    best = {name: float("inf") for name in runs}
    for i in range(rounds + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            sync()
            if i:
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def timed_once(key: Hashable, measure: Callable[[], dict]) -> dict:
    """``measure()``'s timings, measured once per process for ``key`` (a network shape, device, threads...)."""
    if key not in _TIMINGS:
        _TIMINGS[key] = measure()
    return _TIMINGS[key]


def forget_timings() -> None:
    """Drop what ``timed_once`` remembers (for tests, or after changing the thread count by hand)."""
    _TIMINGS.clear()


def pick(seconds: Mapping[Variant, float], bf16_min_speedup: float) -> Variant:
    """The rule: the fastest fp32 candidate, unless the fastest other one is ``bf16_min_speedup`` times as fast."""
    fp32 = min((v for v in seconds if v[0] == "fp32"), key=lambda v: seconds[v])
    others = [v for v in seconds if v[0] != "fp32" and seconds[v] < float("inf")]
    if not others:
        return fp32
    low = min(others, key=lambda v: seconds[v])
    return low if seconds[fp32] / seconds[low] >= bf16_min_speedup else fp32


def describe(seconds: Mapping[Variant, float], choice: Variant) -> str:
    """How the candidates compared, e.g. ``auto: timed here against plain fp32: fp32 + GEMM layers 1.02x,
    fp32 on onnxruntime 1.30x, bf16 + GEMM layers 1.71x``."""
    base = seconds.get(("fp32", "plain"))
    if base is None:
        return f"auto: {name(choice)}"
    rest = [f"{name(v)} {base / s:.2f}x" for v, s in seconds.items() if v != ("fp32", "plain") and s < float("inf")]
    if not rest:
        return "auto: this CPU has no bf16 kernels"
    return f"auto: timed here against plain fp32: {', '.join(rest)}"


def name(variant: Variant) -> str:
    """``fp32``, ``bf16 + GEMM layers``, ``fp32 on onnxruntime``: a variant in the start-up line's words."""
    precision, layout = variant
    words = {"plain": precision, "gemm": f"{precision} + GEMM layers", "onnxruntime": f"{precision} on onnxruntime"}
    return words[layout]
