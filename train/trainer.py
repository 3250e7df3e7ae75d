"""The training loop: ``python -m train`` (one process) or ``torchrun --nproc_per_node N -m train`` (DDP).

Read top to bottom: ``train`` sets the run up (``setup``: data, networks), resumes it (``resume``), plans a
``--time-budget`` (``plan_budget``), runs ``loop`` and ends it (``finish``: export, evaluation, model card,
push). Everything the loop works on is one ``Run``. The step is in ``train.step``, the checkpoint in
``train.checkpoint``, the budget planning in ``train.budget``, the process group in ``train.distributed``.
Runs are exactly reproducible on one CPU: the data order comes from seed + epoch, the jitter from (seed,
epoch, image), dropout from the global RNG whose state is checkpointed (the latent codes too), and the learning
rate from the step count. With ``--ema`` the generator's moving average is what the sample grids, the
evaluation and the export use.
"""

from __future__ import annotations

import random
import signal
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pix2pix import UnetGenerator, load_generator
from pix2pix.device import keep_freed_memory

from . import distributed
from .budget import BudgetPlanner, time_evaluation
from .checkpoint import PLAN_FIELDS, RunState, find_resumable, make_state, restore, rng_state, save_checkpoint
from .config import TrainConfig, parse_args
from .data import DataError, EpochSampler, PairedDataset, Splits, load_splits, make_batches, split_folder
from .distributed import Dist
from .report import MetricsLog, save_grid, variation_text, write_index, write_model_card
from .step import LOSS_NAMES, Networks, choose_precision, lr_factor, make_networks, train_step


@dataclass
class Run:
    """One training run: its options, its process, its data and networks, its counters and its folder.
    The loop, ``save`` and ``resume`` work on this one object."""

    cfg: TrainConfig
    dist: Dist
    data: Splits
    sampler: EpochSampler
    batches: Callable[[], Iterable]  # one epoch's (input, target) batches, in the sampler's order
    fixed: tuple[torch.Tensor, torch.Tensor]  # the sample grids' inputs and targets
    nets: Networks
    state: RunState
    started: float  # time.monotonic() when this process started
    elapsed_before: float = 0.0  # wall time of the earlier processes of this run
    planner: BudgetPlanner | None = None

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.run_dir)

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.sampler.num_samples // self.cfg.batch_size)

    def total_steps(self) -> int:
        return sum(self.state.schedule(self.steps_per_epoch))

    def elapsed(self) -> float:
        """The run's wall time so far, over all its processes."""
        return self.elapsed_before + time.monotonic() - self.started

    def say(self, text: str) -> None:
        """Print (rank 0 only), above the progress bar."""
        if self.dist.master:
            tqdm.write(text)

    @property
    def metrics(self) -> MetricsLog:
        return MetricsLog(self.run_dir / "metrics.jsonl")


def train(cfg: TrainConfig, started: float | None = None) -> Path:
    """Train ``cfg`` to the end of its plan (or continue its run folder's run); returns the run folder.
    ``started``: the ``time.monotonic()`` at which this process began (``python -m train``), else now."""
    started = time.monotonic() if started is None else started
    ctx = distributed.setup(cfg.device)
    if ctx.device.type == "cpu":
        keep_freed_memory()
    try:
        run = setup(cfg, ctx, started)
        resume(run)
        plan_budget(run)
        run.nets.wrap(ctx.ddp(), cfg.compile)
        if not loop(run):
            stop_interrupted(run)
        if ctx.master:
            finish(run)
        ctx.barrier()
        return run.run_dir
    finally:
        ctx.destroy()


# ----------------------------------------------------------------------------------------------- setup
def setup(cfg: TrainConfig, ctx: Dist, started: float) -> Run:
    """The run folder, the data (every file checked up front) and the networks, initialised identically on
    every rank from the seed; then the global RNGs reseeded per rank (dropout, latent codes)."""
    say = tqdm.write if ctx.master else (lambda *a, **k: None)
    if ctx.master:
        Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
    if cfg.recipe == "paper" and ctx.device.type == "cpu":
        say("note: the paper recipe is meant for a GPU (about 1 image/s here); --recipe cpu trains on a CPU")
    data = read_splits(cfg, ctx)
    ds_kw = dict(image_size=cfg.image_size, load_size=cfg.resolved_load_size, direction=cfg.direction,
                 snap_labels=cfg.snap_labels, flip=cfg.flip, seed=cfg.seed)
    dataset = PairedDataset(data.train, **ds_kw)
    sampler = EpochSampler(dataset, num_replicas=ctx.world, rank=ctx.rank, seed=cfg.seed)
    batches, source = make_batches(dataset, sampler, cfg.batch_size, cfg.in_memory, cfg.num_workers,
                                   pin_memory=ctx.device.type == "cuda", seed=cfg.seed,
                                   progress=ctx.master and cfg.progress)
    fixed = PairedDataset(data.samples, **ds_kw)
    fixed_x, fixed_y = (torch.stack(t) for t in zip(*(fixed[i] for i in range(len(fixed))), strict=True))
    say(f"data: {len(data.train)} training pairs from {data.desc}"
        f"{f' ({len(data.skipped)} unreadable skipped)' if data.skipped else ''}, {source}; "
        f"samples from {data.sample_split}/")
    precision, why = ctx.broadcast(choose_precision(cfg, ctx.device))  # rank 0's choice for everyone
    nets = make_networks(cfg, ctx.device, precision, seed=cfg.seed)
    say(f"model: U-Net {cfg.image_size} ngf {cfg.ngf}{f' nz {cfg.nz}' if cfg.nz else ''} "
        f"({sum(p.numel() for p in nets.G.parameters()) / 1e6:.1f}M parameters) + PatchGAN ndf {cfg.ndf}, batch "
        f"{cfg.batch_size}{' x 2 codes' if nets.objective.copies == 2 else ''} x {ctx.world} process(es), lr "
        f"{cfg.lr:g}{f' (discriminator {cfg.lr_d:g})' if cfg.lr_d is not None else ''}, "
        f"{precision} ({why}), on {ctx.device} (recipe {cfg.recipe})")
    say(f"loss: GAN + {cfg.lambda_l1:g} x L1" + (f" + {cfg.lambda_ms:g} x mode seeking" if cfg.lambda_ms else "")
        + (f" + {cfg.lambda_fm:g} x feature matching" if cfg.lambda_fm else "")
        + (f"; codes scaled by U(1/{cfg.code_scale_max:g}, {cfg.code_scale_max:g})" if cfg.code_scale_max > 1 else "")
        + (f"; the discriminator sees DiffAugment ({cfg.diffaug})" if cfg.diffaug else "")
        + variation_text(cfg.to_dict())
        + (f"; code at the {cfg.code_at}" if cfg.code_at != "encoder" else "")
        + ("; resize-convolution decoder" if cfg.upsample != "transpose" else "")
        + (f"; EMA of the generator, decay {cfg.ema:g}" if nets.ema else "")
        + (f"; the first {cfg.d_warmup} steps train the discriminator alone" if cfg.d_warmup else ""))
    torch.manual_seed(cfg.seed + ctx.rank)
    random.seed(cfg.seed + ctx.rank)
    np.random.seed(cfg.seed + ctx.rank)
    return Run(cfg, ctx, data, sampler, batches, (fixed_x, fixed_y), nets,
               RunState(epochs=cfg.epochs, epochs_decay=cfg.epochs_decay), started)


def read_splits(cfg: TrainConfig, ctx: Dist) -> Splits:
    """``--data-a``/``--data-b``, or ``--data``'s train/ (val/, test/), or the facades (downloaded by rank 0)."""
    if cfg.data_a:
        desc, folders = f"{cfg.data_a} + {cfg.data_b}", {"train": (None, Path(cfg.data_a), Path(cfg.data_b))}
    else:
        root = Path(cfg.data) if cfg.data else download_facades(cfg, ctx)
        if not root.is_dir():
            raise DataError(f"{root}: no such folder")
        folders = {s: (split_folder(root, s), None, None) for s in ("train", "val", "test")}
        if folders["train"][0] is None:
            raise DataError(f"{root}: no train/ folder and no images (expected the pix2pix layout: train/, val/, "
                            "test/ of side-by-side pairs)")
        desc, folders = str(root), {s: v for s, v in folders.items() if v[0] is not None}
    with warnings.catch_warnings():
        if not ctx.master:  # rank 0 names the skipped files
            warnings.simplefilter("ignore")
        return load_splits(desc, folders, cfg.limit, cfg.num_samples, cfg.eval_limit, cfg.evaluate)


def download_facades(cfg: TrainConfig, ctx: Dist) -> Path:
    from .download import find_or_download_facades

    if ctx.master:
        find_or_download_facades(Path(cfg.cache_dir), progress=cfg.progress)
    ctx.barrier()
    return find_or_download_facades(Path(cfg.cache_dir), progress=False)


def init_generator(weights: str, *generators: torch.nn.Module) -> None:
    """Copy trained weights into each of ``generators`` (the generator and its EMA). Why: a model can be improved
    by training on from what was published (its run folder, with the discriminator, may be long gone), which
    costs far less than starting over."""
    try:
        source = load_generator(weights)
    except (OSError, ValueError, RuntimeError) as e:
        raise SystemExit(f"--init-from: {e}") from None
    try:
        with torch.no_grad():
            for G in generators:
                G.load_state_dict(source.state_dict())
    except RuntimeError as e:
        raise SystemExit(f"--init-from {weights}: these weights do not fit the generator this run builds "
                         f"(give the same --ngf and --nz they were trained with): {str(e).splitlines()[0]}") from None


# ----------------------------------------------------------------------------------------------- resume
def resume(run: Run) -> None:
    """Continue from the newest readable checkpoint of the run folder (the same command again continues),
    unless ``--no-resume``; a fresh start takes ``--init-from``'s generator when given."""
    cfg, ctx, metrics = run.cfg, run.dist, run.metrics
    found = find_resumable(run.run_dir / "checkpoints", cfg.to_dict(), warn=run.say) if cfg.resume else None
    if found:
        state = run.state = restore(found[1], run.nets, ctx.rank, ctx.world, ctx.device)
        if cfg.budget_seconds is None:  # this command's schedule (a longer one may continue a finished run)
            state.epochs, state.epochs_decay, state.planned, state.frozen = cfg.epochs, cfg.epochs_decay, False, False
            state.steps = state.steps_decay = 0
        run.say(f"resuming from {found[0]}: epoch {state.epoch + 1}, step {state.step_in_epoch} of the epoch "
                f"(global step {state.global_step})")
        if ctx.master:
            metrics.truncate_after(state.global_step)
    else:
        if cfg.init_from:  # only for a fresh start: a resumed run has its own weights (and needs no file of these)
            init_generator(cfg.init_from, run.nets.G, *([run.nets.ema.module] if run.nets.ema else []))
            run.say(f"generator initialised from {cfg.init_from} (discriminator and optimisers fresh)")
        if ctx.master and metrics.path.exists():
            run.say(f"starting over in {run.run_dir} (--no-resume or no checkpoint)")
            metrics.path.unlink()
    run.elapsed_before = run.state.elapsed


def plan_budget(run: Run) -> None:
    """``--time-budget``: a planner that fits the plan to the budget as the run goes (``train.budget``)."""
    budget, state = run.cfg.budget_seconds, run.state
    if budget is None:
        return
    if not state.planned:  # provisional until enough steps have been timed: constant rate
        state.epochs, state.epochs_decay = state.epoch + 1, 0
    images = len(run.data.eval)
    evaluation = None
    if images and not state.frozen and run.dist.master:  # rank 0 plans (and evaluates)
        evaluation = time_evaluation(run.nets.G_eval, eval_dataset(run), run.dist.device)
    run.planner = BudgetPlanner(budget, run.steps_per_epoch, images, run.cfg.batch_size, elapsed=run.elapsed(),
                                evaluation=evaluation)
    run.say(f"time budget {budget / 60:.1f} min ({run.elapsed_before / 60:.1f} used by earlier processes): "
            + ("the plan is kept from the checkpoint" if state.frozen else
               "the first epoch is timed, then the plan is made"))
    if evaluation:
        run.say(f"the final evaluation ({images} {run.data.eval_split} images) is timed at about "
                f"{evaluation.seconds(images):.0f} s here: kept free of the budget")


# ----------------------------------------------------------------------------------------------- loop
def loop(run: Run) -> bool:
    """Train to the end of the plan. False when Ctrl-C or SIGTERM stopped it (before a step: nothing is lost)."""
    cfg, ctx, state, nets = run.cfg, run.dist, run.state, run.nets
    stop, progress = StopFlag(), Progress(run)
    try:
        while not state.finished():
            if ctx.agree_to_stop(stop.requested, state.global_step, sync=True):
                return False
            run.sampler.set_epoch(state.epoch)
            run.sampler.skip = state.step_in_epoch * cfg.batch_size
            nets.train()
            progress.epoch_started()
            sums, n_steps, lr = torch.zeros(len(LOSS_NAMES), device=ctx.device), 0, cfg.lr
            t_epoch = tick = time.perf_counter()
            for x, y in run.batches():
                if n_steps and ctx.agree_to_stop(stop.requested, state.global_step):
                    state.train_seconds += time.perf_counter() - t_epoch
                    return False
                factor = lr_factor(state.global_step, *state.schedule(run.steps_per_epoch))
                lr = cfg.lr * factor
                nets.set_lr(lr, cfg.resolved_lr_d * factor)
                losses = train_step(nets, nets.to_input(x), nets.to_input(y), train_g=state.global_step >= cfg.d_warmup)
                sums += losses
                n_steps += 1
                state.step_in_epoch += 1
                state.global_step += 1
                now = time.perf_counter()
                budget_step(run, progress, now - tick)
                progress.step(losses, lr, now - tick, n_steps)
                tick = now
                if state.finished():  # a plan in steps may end inside an epoch
                    break
            seconds = time.perf_counter() - t_epoch
            state.train_seconds += seconds
            end_epoch(run, progress, sums, n_steps, seconds, lr)
    finally:
        progress.close()
        stop.restore()
    return True


def budget_step(run: Run, progress: Progress, seconds: float) -> None:
    """Time a step for the budget; plan inside the epoch when the planner says so (the first plan, and a plan in
    steps while its rate is constant)."""
    if run.planner is None:
        return
    run.planner.step_done(seconds)
    state = run.state
    if run.planner.due(state):  # the same step on every rank
        first, was_frozen = not state.planned, state.frozen
        run.planner.plan(state)
        share_plan(run)
        if first or state.frozen and not was_frozen:  # the plan, and where its decay begins (not every update)
            run.say(run.planner.describe(state))
        progress.replanned()


def end_epoch(run: Run, progress: Progress, sums: torch.Tensor, n_steps: int, seconds: float, lr: float) -> None:
    """At an epoch's end: its metrics, sample grid and report; the budget's new plan; the checkpoint."""
    cfg, state = run.cfg, run.state
    state.epoch, state.step_in_epoch = state.epoch + 1, 0
    run.dist.sum(sums)
    n_steps *= run.dist.world
    if run.dist.master:
        progress.epoch_done(dict(zip(LOSS_NAMES, (sums / max(n_steps, 1)).tolist(), strict=True)), n_steps, seconds, lr)
    if run.planner:
        was_frozen = state.frozen
        changed = run.planner.epoch_done(state)
        share_plan(run)
        if changed or state.frozen and not was_frozen:  # a new plan, or the decay begins
            run.say(run.planner.describe(state))
        progress.replanned()
    state.elapsed = run.elapsed()
    if state.epoch % cfg.save_every == 0 or state.finished():
        save(run, numbered=True)


def share_plan(run: Run) -> None:
    """Rank 0's plan for every rank (each times its own steps)."""
    plan = run.dist.broadcast({k: getattr(run.state, k) for k in PLAN_FIELDS})
    for k, v in plan.items():
        setattr(run.state, k, v)


def save(run: Run, numbered: bool) -> None:
    """Checkpoint the run (every rank passes its RNG state to rank 0, which writes)."""
    rngs = run.dist.gather(rng_state(run.dist.device))
    if run.dist.master:
        state = make_state(run.nets, run.state, rngs, run.cfg.to_dict(), run.dist.world)
        save_checkpoint(state, run.run_dir / "checkpoints", numbered, run.cfg.keep_checkpoints)


def stop_interrupted(run: Run) -> None:
    """After Ctrl-C / SIGTERM: save where the run stopped and exit with 130."""
    run.state.elapsed = run.elapsed()
    save(run, numbered=False)
    run.say(f"\ninterrupted: saved {run.run_dir / 'checkpoints' / 'latest.pt'} at epoch {run.state.epoch + 1}, "
            f"step {run.state.step_in_epoch} of the epoch. Run the same command again to continue.")
    run.dist.barrier()
    raise SystemExit(130)


class StopFlag:
    """Ctrl-C / SIGTERM set a flag; the loop saves a checkpoint before its next step and exits."""

    def __init__(self):
        self.signum = 0
        self.previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum, frame):
        if self.signum:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.signum = signum

    @property
    def requested(self) -> bool:
        return bool(self.signum)

    def restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class Progress:
    """What the run shows and writes as it goes (rank 0): the tqdm bar, metrics.jsonl, TensorBoard, the sample
    grids and index.html."""

    def __init__(self, run: Run):
        self.run, cfg = run, run.cfg
        master = run.dist.master
        self.bar = tqdm(total=run.total_steps(), initial=run.state.global_step, unit="it", dynamic_ncols=True,
                        disable=not (master and cfg.progress))
        self.writer = tensorboard_writer(run.run_dir) if master and cfg.tensorboard else None
        self.first_step = True
        if cfg.compile:
            run.say("compiling the networks: the first step takes a minute or two on a CPU (once per process)")

    def epoch_started(self) -> None:
        state = self.run.state
        self.bar.set_description(f"epoch {state.epoch + 1}/{state.total_epochs}"
                                 + ("?" if self.run.planner and not state.planned else ""))

    def replanned(self) -> None:
        self.bar.total = self.run.total_steps()
        self.epoch_started()
        self.bar.refresh()

    def step(self, losses: torch.Tensor, lr: float, seconds: float, n_steps: int) -> None:
        run, state = self.run, self.run.state
        if self.first_step and run.cfg.compile:
            run.say(f"compiled: the first step took {seconds:.0f} s")
        self.first_step = False
        self.bar.update(1)
        if state.global_step % 10 == 0 or n_steps == 1:
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in zip(LOSS_NAMES, losses.tolist(), strict=True)
                                  if (k != "g_ms" or run.nets.objective.lambda_ms)
                                  and (k != "g_fm" or run.nets.objective.lambda_fm)}, refresh=False)
        if run.dist.master and state.global_step % run.cfg.log_every == 0:
            run.metrics.write({"type": "step", "epoch": state.epoch + 1, "step": state.global_step,
                               **dict(zip(LOSS_NAMES, losses.tolist(), strict=True)), "lr": lr})

    def epoch_done(self, means: dict, n_steps: int, seconds: float, lr: float) -> None:
        """The epoch's line in metrics.jsonl (and TensorBoard), its sample grid, index.html."""
        run, state, cfg = self.run, self.run.state, self.run.cfg
        maps = n_steps * cfg.batch_size
        run.metrics.write({"type": "epoch", "epoch": state.epoch, "step": state.global_step, **means, "lr": lr,
                           "epoch_seconds": round(seconds, 3), "train_seconds": round(state.train_seconds, 3),
                           "images_per_s": round(maps * run.nets.objective.copies / max(seconds, 1e-9), 2),
                           "maps_per_s": round(maps / max(seconds, 1e-9), 2)})
        if self.writer:
            for k, v in means.items():
                self.writer.add_scalar(f"loss/{k}", v, state.epoch)
        fixed_x, fixed_y = run.fixed
        with torch.no_grad(), run.nets.autocast():  # fixed dropout seeds: the grids change only as the weights do
            fake = run.nets.G_eval(run.nets.to_input(fixed_x), seeds=list(range(len(fixed_x))))
        save_grid(fixed_x, fake.float().cpu(), fixed_y, run.run_dir / "samples" / f"epoch_{state.epoch:04d}.png")
        write_index(run.run_dir, run.metrics.read(), cfg.to_dict(), state.total_epochs)

    def close(self) -> None:
        self.bar.close()
        if self.writer:
            self.writer.close()


def tensorboard_writer(run_dir: Path):
    """A TensorBoard writer into ``run_dir/tensorboard``, or None when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


# ----------------------------------------------------------------------------------------------- end
def finish(run: Run) -> None:
    """Export (save_pretrained) the generator that is sampled (the EMA's when there is one), evaluate it, write
    the model card, push it when asked."""
    cfg, state, data = run.cfg, run.state, run.data
    export_dir, G = export(run)
    result = None
    if data.eval:
        from .evaluate import evaluate_generator

        result = evaluate_generator(G, eval_dataset(run), device=run.dist.device, progress=cfg.progress)
    write_model_card(export_dir, cfg.to_dict(), summary(run, result))
    plan = (f"{state.steps} constant-lr + {state.steps_decay} decay steps" if state.in_steps else
            f"{state.epochs} constant-lr + {state.epochs_decay} decay")
    print(f"done: {state.epoch} epochs ({plan}), {state.global_step} steps, {state.train_seconds / 60:.1f} min of "
          f"training; {len(data.skipped)} unreadable image(s) skipped")
    if result:
        from .evaluate import summary_line

        if result.get("fid_note"):
            print(f"FID and KID skipped: {result['fid_note']}")
        print(f"{data.eval_split}: {summary_line(result)}")
        if "fidelity" in result:
            from .fidelity import fidelity_line, region_line

            print(f"{data.eval_split}: {fidelity_line(result)}\n{data.eval_split}: {region_line(result)}")
        write_index(run.run_dir, run.metrics.read(), cfg.to_dict(), state.total_epochs, evaluation=result,
                    split=data.eval_split)
        print(f"{data.eval_split}: L1 {result['l1']:.4f}  PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f} "
              f"over {result['n']} images")
    print(f"export: {export_dir}  (Pix2Pix.load('{export_dir}') or app.py --weights {export_dir}); "
          f"report: {run.run_dir / 'index.html'}")
    if cfg.push_to_hub:
        from .hub import PushError, push_to_hub

        try:
            url = push_to_hub(export_dir, cfg.push_to_hub, private=cfg.private)
        except PushError as e:  # the run is done and its export on disk: say so, exit 1, no traceback
            raise SystemExit(f"error: {e}") from None
        print(f"pushed {export_dir} to {url}")


def eval_dataset(run: Run) -> PairedDataset:
    """The final evaluation's images: plain resize, no jitter."""
    cfg = run.cfg
    return PairedDataset(run.data.eval, cfg.image_size, cfg.image_size, cfg.direction, cfg.snap_labels)


def export(run: Run) -> tuple[Path, UnetGenerator]:
    """``export/``: the generator in fp32 on the CPU (``save_pretrained``) and the last sample grid. Returns the
    folder and the exported generator."""
    cfg, export_dir = run.cfg, run.run_dir / "export"
    G = UnetGenerator(**cfg.generator_kwargs)
    G.load_state_dict({k: v.detach().float().cpu().contiguous() for k, v in run.nets.G_eval.state_dict().items()})
    G.eval().save_pretrained(export_dir)
    grids = sorted((run.run_dir / "samples").glob("epoch_*.png"))
    if grids:
        (export_dir / "sample.png").write_bytes(grids[-1].read_bytes())
    return export_dir, G


def summary(run: Run, result: dict | None) -> dict:
    """What the model card says of the run."""
    cfg, state, data, epochs = run.cfg, run.state, run.data, run.metrics.read()
    epochs = [r for r in epochs if r.get("type") == "epoch"]
    plan = {"steps_constant": state.steps, "steps_decay": state.steps_decay} if state.in_steps else {}
    return {"data": data.desc, "train_images": len(data.train), "skipped": len(data.skipped),
            "epochs_done": state.epoch, "epochs_constant": state.epochs, "epochs_decay": state.epochs_decay, **plan,
            "steps": state.global_step, "train_seconds": state.train_seconds, "wall_seconds": run.elapsed(),
            "time_budget": cfg.time_budget, "world_size": run.dist.world,
            "device": str(run.dist.device) + (f" x {run.dist.world}" if run.dist.world > 1 else ""),
            "load_size": cfg.resolved_load_size, "metrics": result, "eval_split": data.eval_split,
            "last": epochs[-1] if epochs else {}}


def main(argv: list[str] | None = None, started: float | None = None) -> None:
    train(parse_args(argv), started)
