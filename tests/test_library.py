"""The library stays thin: loading only loads (nothing timed, exported or written), and no module of ``pix2pix``
imports another that imports it back, even inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pix2pix.fast
import pix2pix.speed
from pix2pix import Pix2Pix

PACKAGE = Path(pix2pix.fast.__file__).parent


def _imports(path: Path) -> set[str]:
    """The ``pix2pix`` modules a file imports anywhere in it (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pix2pix."):
            found.add(node.module.removeprefix("pix2pix."))
    return {name.split(".")[0] for name in found}


def test_no_import_circle_in_the_package():
    graph = {p.stem: _imports(p) - {p.stem} for p in PACKAGE.glob("*.py") if p.stem != "__init__"}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    circles = sorted(name for name in graph if reaches(name, name, {name}))
    assert not circles, f"modules in an import circle: {circles} ({ {n: sorted(graph[n]) for n in circles} })"
    assert "weights" in graph["export"] and "predictor" not in graph["export"]  # the circle there is gone


def test_load_only_loads(monkeypatch, tmp_path, tiny_weights):
    monkeypatch.setenv("PIX2PIX_CACHE", str(tmp_path / "cache"))
    pix2pix.speed.forget_timings()

    def no_timing(*args, **kwargs):
        raise AssertionError("Pix2Pix.load timed the variants")

    monkeypatch.setattr(pix2pix.fast, "time_inference", no_timing)
    model = Pix2Pix.load(tiny_weights, device="cpu")
    assert (model.precision, model.plan.layout) == ("fp32", "plain") and "not timed" in model.plan.why
    assert not (tmp_path / "cache").exists() and not pix2pix.speed._TIMINGS  # no ONNX export, nothing remembered
    assert Pix2Pix.load(tiny_weights, device="cpu", precision="bf16").plan.layout == "gemm"  # as asked, untimed
    [facade] = model.generate(PACKAGE.parent / "tests" / "data" / "label_jpeg_noisy.jpg", seed=1)
    assert facade.size == (256, 256)


def test_choose_fastest_times_when_asked(monkeypatch, tiny_weights):
    seconds = {("fp32", "plain"): 1.0, ("fp32", "gemm"): 0.5}
    monkeypatch.setattr(pix2pix.fast, "time_inference", lambda generator, variants: seconds)
    model = Pix2Pix.load(tiny_weights, device="cpu")
    plan = model.choose_fastest(precision="fp32", runtime="torch")
    assert plan is model.plan and (plan.precision, plan.layout) == ("fp32", "gemm") and "2.00x" in plan.why
