"""The cpu recipe's pieces: recipes and flags, --time-budget planning (with a fake clock, then a real tiny run
and its resume), and the in-memory data's pairing and flips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import PALETTE
from train.budget import (
    MIN_DECAY_STEPS,
    BudgetPlanner,
    EvalCost,
    fit_epochs,
    split_epochs,
    split_steps,
    time_evaluation,
)
from train.checkpoint import RunState
from train.config import parse_args, parse_duration
from train.data import EpochSampler, InMemoryPairs, PairedDataset, find_pairs, make_batches
from train.step import lr_factor
from train.trainer import main

TINY = ["--image-size", "64", "--ngf", "8", "--ndf", "8", "--num-workers", "0", "--no-progress", "--num-samples", "1",
        "--precision", "fp32"]


# ----------------------------------------------------------------------------------------------- options
def test_recipes_set_defaults_and_explicit_flags_win():
    paper, cpu = parse_args([]), parse_args(["--recipe", "cpu"])
    assert (paper.ngf, paper.ndf, paper.batch_size, paper.lr, paper.compile) == (64, 64, 1, 2e-4, False)
    assert (cpu.ngf, cpu.ndf, cpu.batch_size, cpu.lr, cpu.compile, cpu.num_workers) == (32, 32, 2, 4e-4, True, 0)
    assert (cpu.nz, cpu.lambda_ms, cpu.lambda_l1, cpu.ema, cpu.precision) == (8, 1.0, 10.0, 0.999, "auto")
    assert (paper.nz, paper.lambda_ms, paper.lambda_l1, paper.ema) == (0, 0.0, 100.0, 0.0)  # the paper's, untouched
    mixed = parse_args(["--batch-size", "8", "--recipe", "cpu", "--no-compile", "--lr", "1e-4"])
    assert (mixed.ngf, mixed.batch_size, mixed.compile, mixed.lr) == (32, 8, False, 1e-4)


@pytest.mark.parametrize("text, seconds", [("140m", 8400), ("2h", 7200), ("1h30m", 5400), ("90s", 90),
                                           ("600", 600), ("2.5h", 9000), ("1h 5m", 3900)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "m", "-5m", "0", "5m3"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
    with pytest.raises(SystemExit, match="--time-budget"):
        parse_args([f"--time-budget={text}"])


# ----------------------------------------------------------------------------------------------- planning
def test_split_and_fit():
    assert split_epochs(150, 1) == (75, 75)
    assert split_epochs(151, 1) == (76, 75)
    assert split_epochs(4, 3) == (3, 1)  # never re-decay what already ran at the constant rate
    assert split_epochs(0, 0) == (1, 0)
    assert fit_epochs(100.0, 10.0, 2) == 12
    assert fit_epochs(-5.0, 10.0, 2) == 2
    assert fit_epochs(95.0, 10.0, 0.5) == 10
    assert split_steps(93, 11) == (47, 46)
    assert split_steps(16, 0) == (6, MIN_DECAY_STEPS)  # the decay is never cut short ...
    assert split_steps(25, 20) == (20, MIN_DECAY_STEPS)  # ... nor the steps run re-decayed: past the 25 then


def test_lr_factor_is_the_authors_line_in_steps():
    assert [lr_factor(s, 4, 4) for s in range(8)] == pytest.approx([1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    assert lr_factor(0, 1, 0) == 1.0


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _epoch(planner: BudgetPlanner, clock: FakeClock, run: RunState, steps: int, step_s: float, extra: float):
    for _ in range(steps):
        clock.t += step_s
        planner.step_done(step_s)
        run.step_in_epoch += 1
        run.global_step += 1
    clock.t += extra  # sample grid, checkpoint
    run.epoch, run.step_in_epoch = run.epoch + 1, 0
    return planner.epoch_done(run)


def test_planner_fits_the_budget_with_a_fake_clock():
    clock = FakeClock()
    # 1000 s budget, 10 steps an epoch, 1 s a step after a 60 s compile, 2 s of grid + checkpoint an epoch.
    planner = BudgetPlanner(1000, steps_per_epoch=10, eval_images=20, batch_size=4, clock=clock)
    run = RunState(epochs=1, epochs_decay=0)
    clock.t += 61
    planner.step_done(61)  # the first steps compile: left out of the speed
    planner.step_done(1)
    planner.step_done(1)
    clock.t += 2
    run.step_in_epoch, run.global_step = 3, 3
    assert not planner.ready()
    for _ in range(7):
        clock.t += 1
        planner.step_done(1)
        run.step_in_epoch += 1
        run.global_step += 1
    assert planner.step_seconds == 1.0 and not planner.ready(min_steps=8)
    clock.t += 2
    run.epoch, run.step_in_epoch = 1, 0
    assert planner.epoch_done(run)
    assert planner.overhead == pytest.approx(2.0) and planner.epoch_seconds() == pytest.approx(12.0)
    # Left: 1000 * 0.98 - 72 elapsed - (20 / 4 * 1 s of evaluation + 10 s of export) = 893 s: 74 more epochs.
    assert (run.epochs, run.epochs_decay, run.frozen) == (38, 37, False)
    assert "38 constant-lr + 37 decay" in planner.describe(run)
    # The machine slows down to 1.5 s a step: the plan shrinks while the rate is still constant ...
    while not run.frozen:
        _epoch(planner, clock, run, 10, 1.5, 2.0)
    assert run.total_epochs < 75 and run.epoch == run.epochs  # frozen as the decay begins
    frozen = (run.epochs, run.epochs_decay)
    # ... and stays as it is to the end, which comes on time.
    while run.epoch < run.total_epochs:
        assert not _epoch(planner, clock, run, 10, 1.5, 2.0)
    assert (run.epochs, run.epochs_decay) == frozen
    assert 1000 * 0.9 <= clock.t - 1000 + planner.end_seconds() <= 1000


def test_a_burst_of_other_work_does_not_shorten_the_plan():
    clock = FakeClock()
    planner = BudgetPlanner(10_000, steps_per_epoch=10, eval_images=0, batch_size=1, warmup_steps=0, clock=clock)
    run = RunState(epochs=1, epochs_decay=0)
    for _ in range(5):
        _epoch(planner, clock, run, 10, 1.0, 0.0)
    before = run.total_epochs
    _epoch(planner, clock, run, 10, 3.0, 0.0)  # a test suite beside the run, for one epoch
    assert run.total_epochs >= before - 3  # the median step time held; the mean would have cut the plan by a quarter


def _steps_to_the_end(planner: BudgetPlanner, clock: FakeClock, run: RunState, step_s) -> list[float]:
    """Run ``run``'s plan to its end as the trainer does, step ``i`` taking ``step_s(i)`` seconds (or ``step_s``;
    epoch ends free); the lr factor of each step."""
    factors = []
    while not run.finished():
        factors.append(lr_factor(run.global_step, *run.schedule(planner.steps_per_epoch)))
        seconds = step_s(run.global_step) if callable(step_s) else step_s
        clock.t += seconds
        planner.step_done(seconds)
        run.step_in_epoch += 1
        run.global_step += 1
        if planner.due(run):
            planner.plan(run)
        if run.step_in_epoch == planner.steps_per_epoch or run.finished():
            run.epoch, run.step_in_epoch = run.epoch + 1, 0
            assert not planner.epoch_done(run)  # frozen since the decay began
    return factors


def test_planner_plans_in_steps_when_fewer_than_two_epochs_fit():
    clock = FakeClock()
    planner = BudgetPlanner(100, steps_per_epoch=50, eval_images=0, batch_size=1, warmup_steps=1, clock=clock)
    run = RunState(epochs=1, epochs_decay=0)
    for _ in range(11):
        clock.t += 1
        planner.step_done(1)
        run.step_in_epoch += 1
        run.global_step += 1
    assert planner.ready()
    assert planner.plan(run) and run.planned and not run.frozen
    # 100 * 0.98 - 11 - 5 = 82 s left at 1 s a step: 93 steps in all (less than two epochs of 50), half decaying.
    assert (run.steps, run.steps_decay) == (47, 46) and run.in_steps
    assert (run.epochs, run.epochs_decay) == (1, 1)  # the epochs these steps reach into
    assert "47 constant-lr + 46 decay steps, 1.86 epochs (too few fit" in planner.describe(run)
    factors = _steps_to_the_end(planner, clock, run, 1.0)
    assert run.global_step == 93 and run.epoch == 2 and run.frozen
    assert factors[0] == 1.0 and factors[-1] <= 0.1 and factors == sorted(factors, reverse=True)
    assert clock.t - 1000 + planner.end_seconds() <= 100


def _slow_cpu_planner() -> tuple[FakeClock, BudgetPlanner]:
    """A 3-minute budget, 100 steps an epoch, an evaluation measured at 40 s (a slow CPU)."""
    clock = FakeClock()
    return clock, BudgetPlanner(180, steps_per_epoch=100, eval_images=106, batch_size=2, elapsed=10, clock=clock,
                                evaluation=EvalCost(per_image=0.3, fixed=8.2))


def _first_steps(planner: BudgetPlanner, clock: FakeClock) -> RunState:
    """13 steps at 0.8 s each after a 60 s compile, timed by the planner."""
    run = RunState(epochs=1, epochs_decay=0)
    for i in range(13):
        seconds = 60.8 if i == 0 else 0.8
        clock.t += seconds
        planner.step_done(seconds)
        run.step_in_epoch += 1
        run.global_step += 1
    return run


def test_planner_plans_in_steps_when_not_even_one_epoch_fits():
    """The case of a slow CPU: a 3-minute budget, 100 steps an epoch at 0.8 s each after a 60 s compile, and an
    evaluation measured at 40 s."""
    clock, planner = _slow_cpu_planner()
    assert planner.end_seconds() == pytest.approx(0.3 * 106 + 8.2 + 9)  # + 5% of the budget for the export
    run = _first_steps(planner, clock)
    assert planner.plan(run) and run.in_steps and run.steps + run.steps_decay < 100
    factors = _steps_to_the_end(planner, clock, run, 0.8)
    assert run.epoch == 1 and run.global_step == run.steps + run.steps_decay  # ended inside the first epoch
    assert factors[-1] <= 0.1
    assert 180 * 0.9 <= clock.t - 1000 + 10 + planner.end_seconds() <= 180  # the budget used, and held


def test_a_plan_in_steps_follows_a_machine_that_slows_down():
    """The same slow CPU, twice as slow from step 20 on (other work beside the run): the plan in steps is redone
    every few steps while its rate is constant, so the run still ends within its budget."""
    clock, planner = _slow_cpu_planner()
    run = _first_steps(planner, clock)
    planner.plan(run)
    first = run.steps + run.steps_decay
    factors = _steps_to_the_end(planner, clock, run, lambda step: 0.8 if step < 20 else 1.6)
    assert run.steps + run.steps_decay < first and factors[-1] <= 0.1
    assert clock.t - 1000 + 10 + planner.end_seconds() <= 180


def test_a_budget_too_short_for_any_training_still_decays():
    clock = FakeClock()
    planner = BudgetPlanner(60, steps_per_epoch=100, eval_images=10, batch_size=1, clock=clock,
                            evaluation=EvalCost(per_image=1.0, fixed=30.0))
    run = RunState(epochs=1, epochs_decay=0)
    for _ in range(13):
        clock.t += 1
        planner.step_done(1)
        run.step_in_epoch += 1
        run.global_step += 1
    assert planner.plan(run) and run.frozen  # nothing fits: the decay begins now, at its shortest
    assert (run.steps, run.steps_decay) == (13, MIN_DECAY_STEPS)
    assert "too short" in planner.describe(run)
    assert _steps_to_the_end(planner, clock, run, 1.0)[-1] <= 0.1


def test_timing_the_evaluation_costs_the_passes_it_makes(monkeypatch, tmp_path):
    from pix2pix import UnetGenerator
    from train import evaluate, fid

    torch.manual_seed(0)
    G = UnetGenerator(ngf=8, num_downs=6, nz=4)
    before = torch.get_rng_state()
    monkeypatch.setattr(evaluate, "fid_note", lambda: "not installed")
    dataset = PairedDataset(find_pairs(_pairs(tmp_path / "data", (("test", 10),)) / "test"), 64, 64)
    plain = time_evaluation(G, dataset, torch.device("cpu"))
    assert plain.per_image > 0 and plain.fixed == 0 and torch.equal(torch.get_rng_state(), before)
    calls = []
    monkeypatch.setattr(evaluate, "fid_note", lambda: None)
    monkeypatch.setattr(fid, "inception_features", lambda x, *a, **k: calls.append("inception") or x.new_zeros(1))
    monkeypatch.setattr(fid, "fid_from_features", lambda a, b: calls.append(("fid", a.shape)))
    monkeypatch.setattr(fid, "kid_from_features", lambda a, b: calls.append(("kid", b.shape)))
    with_fid = time_evaluation(G, dataset, torch.device("cpu"))
    assert calls[-2:] == [("fid", (10, fid.FEATURES)), ("kid", (10, fid.FEATURES))]  # once, on as many features
    assert set(calls[:-2]) == {"inception"}
    assert with_fid.fixed >= 0 and with_fid.seconds(10) == pytest.approx(10 * with_fid.per_image + with_fid.fixed)
    assert EvalCost(1.0, 5.0).seconds(0) == 0  # nothing to evaluate: no cost


# ----------------------------------------------------------------------------------------------- real runs
def _pairs(root: Path, counts=(("train", 4), ("test", 2))) -> Path:
    rng = np.random.default_rng(1)
    for split, n in counts:
        (root / split).mkdir(parents=True)
        for i in range(n):
            labels = np.empty((64, 64, 3), np.uint8)
            labels[:] = PALETTE[1]
            labels[8:40, 4:20] = PALETTE[rng.integers(2, 12)]
            photo = np.clip(labels.astype(int) // 2 + rng.integers(0, 96, (64, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(np.concatenate([photo, labels], axis=1)).save(root / split / f"{i}.png")
    return root


@pytest.fixture
def no_fid(monkeypatch):
    """FID and KID off, as on a machine without the Inception: on two busy cores their matrices alone (a seed set
    each) take longer than these budgets."""
    from train import evaluate

    monkeypatch.setattr(evaluate, "fid_note", lambda: "off in this test")


def test_budget_run_ends_on_time_decayed_and_resume_keeps_its_plan(tmp_path, capsys, no_fid):
    import time

    data = _pairs(tmp_path / "data")
    args = [*TINY, "--data", str(data), "--run-dir", str(tmp_path / "run"), "--save-every", "1000"]
    t0 = time.monotonic()
    main([*args, "--time-budget", "6s"])
    seconds = time.monotonic() - t0
    assert seconds < 6 * 10, seconds  # loose: a loaded machine may overrun the frozen decay; benchmarks check speed
    out = capsys.readouterr().out
    assert "the first epoch is timed" in out and "plan:" in out
    ck = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=False)["run"]
    # How many epochs fit in 6 s depends on the machine's load (a run beside it); that the plan ends with a
    # decay, on time, does not. Where too few fit to decay over whole epochs, the plan is in steps.
    assert ck["planned"] and ck["frozen"] and ck["epoch"] == ck["epochs"] + ck["epochs_decay"] >= 2
    if ck["steps"]:
        assert ck["global_step"] == ck["steps"] + ck["steps_decay"] and ck["steps_decay"] >= MIN_DECAY_STEPS
    else:  # half and half, less when the speed rose after the first plan
        assert MIN_DECAY_STEPS <= 4 * ck["epochs_decay"] and ck["epochs_decay"] <= ck["epochs"]
    epochs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in epochs if r["type"] == "epoch"]
    assert lrs[0] == 2e-4 and lrs[-1] <= 2e-4 / (MIN_DECAY_STEPS + 1) * 1.000001  # decayed to (nearly) zero on time
    card = (tmp_path / "run" / "export" / "README.md").read_text()
    schedule = (f"{ck['steps']} steps at constant lr + {ck['steps_decay']}" if ck["steps"] else
                f"{ck['epochs']} epochs at constant lr + {ck['epochs_decay']}")  # planned in steps under load
    assert "--time-budget 6s" in card and schedule in card
    # The same command with a longer budget resumes the finished run: its frozen plan is kept.
    main([*args, "--time-budget", "1h"])
    again = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=False)["run"]
    assert (again["epochs"], again["epochs_decay"], again["global_step"]) == (ck["epochs"], ck["epochs_decay"],
                                                                            ck["global_step"])
    assert "plan is kept from the checkpoint" in capsys.readouterr().out


class SlowMachine(BudgetPlanner):
    """The planner of a run on a slow machine: 5 s of start-up, then every step takes 1 s and the first compiles
    for 20 s more, on a clock that only these move (what the test process really takes does not count)."""

    instances: list = []

    def __init__(self, *args, **kwargs):
        self.now = 0.0
        super().__init__(*args, **{**kwargs, "elapsed": 5.0, "clock": lambda: self.now})
        SlowMachine.instances.append(self)

    def step_done(self, seconds: float) -> None:
        seconds = 1.0 + (20.0 if self.seen_steps == 0 else 0.0)
        self.now += seconds
        super().step_done(seconds)


@pytest.mark.parametrize("budget, steps, epochs", [("75s", (15, 15), 1), ("120s", (36, 36), 2)])
def test_a_budget_shorter_than_two_epochs_ends_decayed_and_on_time(tmp_path, capsys, monkeypatch, no_fid, budget,
                                                                   steps, epochs):
    """40 steps an epoch at 1 s each after a 20 s compile, an evaluation measured at 14 s: a 75 s budget fits
    less than an epoch, a 120 s one between one and two. Either is planned in steps, half decaying, and ends
    inside an epoch with the rate near zero, within the budget with the evaluation and export counted."""
    import train.trainer

    monkeypatch.setattr(train.trainer, "BudgetPlanner", SlowMachine)
    monkeypatch.setattr(train.trainer, "time_evaluation", lambda G, dataset, device: EvalCost(2.0, 10.0))
    data = _pairs(tmp_path / "data", counts=(("train", 40), ("test", 2)))
    args = [*TINY, "--data", str(data), "--run-dir", str(tmp_path / "run"), "--time-budget", budget]
    main(args)
    planner = SlowMachine.instances[-1]
    assert planner.elapsed() + planner.end_seconds() <= parse_duration(budget)
    out = capsys.readouterr().out
    assert f"plan: {steps[0]} constant-lr + {steps[1]} decay steps" in out and "too few fit" in out
    ck = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=False)["run"]
    assert (ck["steps"], ck["steps_decay"], ck["global_step"], ck["epoch"]) == (*steps, sum(steps), epochs)
    assert ck["global_step"] < 40 * epochs  # the last epoch was cut short where the plan ended
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in records if r["type"] == "epoch"]
    assert len(lrs) == epochs and lrs[-1] <= 2e-4 * 0.1  # the last step's rate: 1 / (decay steps + 1) of the start
    assert f"{sum(steps)} steps" in (tmp_path / "run" / "export" / "README.md").read_text()
    main(args)  # the same command again: the run is done, its plan kept
    again = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=False)["run"]
    assert again["global_step"] == sum(steps) and "plan is kept from the checkpoint" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------- data
def _asymmetric_pairs(tmp_path: Path) -> list:
    rng = np.random.default_rng(2)
    for i in range(3):
        labels = np.empty((40, 40, 3), np.uint8)
        labels[:] = PALETTE[1]
        labels[:, : 8 + 4 * i] = PALETTE[i + 3]  # a band on the left: a flip shows
        photo = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(np.concatenate([photo, labels], axis=1)).save(tmp_path / f"{i}.png")
    return find_pairs(tmp_path)


def test_in_memory_batches_equal_the_streamed_ones(tmp_path):
    dataset = PairedDataset(_asymmetric_pairs(tmp_path), image_size=32, load_size=36, seed=3)
    memory = InMemoryPairs(dataset)
    flips = set()
    for epoch in range(6):
        keys = [(epoch, i) for i in range(3)]
        x, y = memory.batch(keys)
        streamed = [dataset[k] for k in keys]
        assert torch.equal(x, torch.stack([s[0] for s in streamed]))  # same crop, flip and pixels, bit for bit
        assert torch.equal(y, torch.stack([s[1] for s in streamed]))  # and the target paired with its input
        flips |= {dataset.jitter(epoch, i)[2] for i in range(3)}
        band_left = x[:, :, :, :4].flatten(1).mean(1) != x[:, :, :, -4:].flatten(1).mean(1)
        assert band_left.all()
    assert flips == {True, False}


def test_make_batches_picks_memory_and_both_sources_agree(tmp_path):
    dataset = PairedDataset(_asymmetric_pairs(tmp_path), image_size=32, load_size=36, seed=0)
    sampler = EpochSampler(dataset, seed=0)
    memory, desc_m = make_batches(dataset, sampler, batch_size=2, mode="auto")
    stream, desc_s = make_batches(dataset, sampler, batch_size=2, mode="off")
    assert desc_m.startswith("in memory") and desc_s.startswith("streamed")
    for epoch in range(2):
        sampler.set_epoch(epoch)
        sampler.skip = 1 if epoch else 0  # resuming mid-epoch skips the same samples in both
        got_m, got_s = list(memory()), list(stream())
        assert [len(b[0]) for b in got_m] == [2, 1] if epoch == 0 else [2]
        for (xm, ym), (xs, ys) in zip(got_m, got_s, strict=True):
            assert torch.equal(xm, xs) and torch.equal(ym, ys)


# ----------------------------------------------------------------------------------------------- tools
def test_benchmark_measures_both_loaders_and_is_reachable_from_train(tmp_path):
    import dataclasses
    import subprocess
    import sys

    from train.benchmark import Setting, measure
    from train.config import TrainConfig

    data = _pairs(tmp_path / "data")
    pairs = find_pairs(data / "train")
    cfg = TrainConfig(image_size=64, ngf=8, ndf=8, batch_size=2, num_workers=0)
    rows = [measure(Setting(name, dataclasses.replace(cfg), in_memory=mem, fast=True), pairs, torch.device("cpu"),
                    steps=2, warmup=1) for name, mem in (("stream", False), ("memory", True))]
    assert rows[0]["data"].startswith("streamed") and rows[1]["data"].startswith("in memory")
    assert all(r["img_s"] > 0 and r["img_s"] == pytest.approx(2 * r["it_s"]) for r in rows)
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-m", "train", "--benchmark", "--help"], cwd=root, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and "python -m train.benchmark" in out.stdout and "--steps" in out.stdout


def test_bundle_writes_fp16_weights_card_and_results(tmp_path, tiny_generator):
    from safetensors import safe_open

    from pix2pix import Pix2Pix, example_labels
    from train.bundle import bundle

    run = tmp_path / "run"
    tiny_generator.save_pretrained(run / "export")
    (run / "export" / "README.md").write_text("# card\n\n![samples](sample.png)\n")
    out, results = tmp_path / "weights", tmp_path / "results.jpg"
    bundle(run, out, results)
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    bundled, original = Pix2Pix.load(out, device="cpu"), Pix2Pix(tiny_generator, device="cpu")
    assert next(bundled.generator.parameters()).dtype == torch.float32  # upcast on load
    label = example_labels()[0]
    a = np.asarray(bundled.generate(label, seed=1)[0], dtype=int)
    b = np.asarray(original.generate(label, seed=1)[0], dtype=int)
    assert np.abs(a - b).max() <= 3  # fp16 storage moves the image by a grey level or so
    card = (out / "README.md").read_text()
    assert "![results](../results.jpg)" in card and "differs from the paper" in card
    n = len(example_labels())
    # label | 4 seeds | photo, a row each
    assert Image.open(results).format == "JPEG" and Image.open(results).size == (6 * 256 + 7 * 4, n * 256 + (n + 1) * 4)


def test_the_bundled_card_says_what_the_mode_seeking_term_measured():
    from train.bundle import differences
    from train.report import recipe_rows

    summary = {"steps": 10, "epochs_constant": 1, "epochs_decay": 1, "load_size": 286}
    base = {**vars(parse_args(["--recipe", "cpu"])), "ms_on": "pixel"}
    for ms_on, says in (("pixel", False), ("dfeat", True)):
        card = "".join(f"| {k} | {v} |\n" for k, v in recipe_rows({**base, "ms_on": ms_on}, summary))
        assert ("measured on D's features" in differences(card)) is says, ms_on


def test_the_card_sets_the_replaced_model_beside_the_new_one():
    from train.bundle import comparison

    old = {"fid": 166.44, "kid": 0.11651, "diversity": 8.04, "l1": 0.18, "psnr": 12.8, "ssim": 0.23, "n": 100}
    new = {"fid": 120.0, "kid": 0.05, "diversity": 30.0, "l1": 0.2, "psnr": 12.1, "ssim": 0.2, "n": 100}
    table = comparison(old, new, "val")
    assert "| FID (lower is better) | 166.4 | 120.0 |" in table
    assert "| seed diversity (grey levels) | 8.0 | 30.0 |" in table
    assert "`val`" in table and "| KID | 0.1165 | 0.0500 |" in table
    assert "fidelity" not in table  # neither was scored for layout
    old_f, new_f = {**old, "fidelity_worst": 0.818, "region_worst": 0.428}, {**new, "fidelity_worst": 0.93,
                                                                             "region_worst": 0.81}
    table = comparison(old_f, new_f, "val")
    assert "| layout fidelity, worst of seeds 0..31 | 0.818 | 0.930 |" in table
    assert "| region fidelity (worst 4x4 cell), worst of seeds 0..31 | 0.428 | 0.810 |" in table
    without_fid = {k: v for k, v in old.items() if k not in ("fid", "kid")}
    assert "FID" not in comparison(without_fid, new, "val").split("|", 1)[1]


def test_user_facing_text_names_no_path_of_our_machines(capsys):
    from pix2pix.predictor import HOW_TO_GET_WEIGHTS
    from train.config import build_parser
    from train.evaluate import main as evaluate_main

    texts = [HOW_TO_GET_WEIGHTS, build_parser().format_help()]
    with pytest.raises(SystemExit):
        evaluate_main(["--help"])
    texts.append(capsys.readouterr().out)
    assert all("shared" not in text for text in texts)
    assert "--recipe cpu" in HOW_TO_GET_WEIGHTS
