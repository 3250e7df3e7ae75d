"""The training loop: ``python -m train`` (one process) or ``torchrun --nproc_per_node N -m train`` (DDP).

Read top to bottom: setup (device, data, models, optimisers), resume, the loop, the end (export, model
card, evaluation, push). The step is in ``train.step``, the checkpoint in ``train.checkpoint``, the
``--time-budget`` planning in ``train.budget``. Runs are exactly reproducible on one CPU: the data order
comes from seed + epoch, the jitter from (seed, epoch, image), dropout from the global RNG whose state is
checkpointed (the latent codes too), and the learning rate from the step count. With ``--ema`` the
generator's moving average (``train.step.make_ema``) is what the sample grids, the evaluation and the export use.
"""

from __future__ import annotations

import os
import random
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from pix2pix import PatchDiscriminator, UnetGenerator, load_generator, resolve_device
from pix2pix.device import keep_freed_memory

from .budget import BudgetPlanner
from .checkpoint import RunState, find_resumable, make_state, restore, rng_state, save_checkpoint
from .config import TrainConfig, parse_args
from .data import DataError, EpochSampler, PairedDataset, check_pairs, find_pairs, make_batches, split_folder
from .report import MetricsLog, save_grid, write_index, write_model_card
from .step import (LOSS_NAMES, Objective, choose_precision, lr_factor, make_autocast, make_ema, make_optimizers,
                   set_lr, train_step, unwrap)


# ----------------------------------------------------------------------------------------------- setup
def setup_distributed(cfg: TrainConfig) -> tuple[int, int, torch.device]:
    """(rank, world size, device). Under torchrun: NCCL with one GPU per process, else gloo on the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        device = resolve_device(cfg.device)
    except ValueError as e:
        raise SystemExit(f"error: --device: {e}") from None
    if world == 1:
        return 0, 1, device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


@dataclass
class Data:
    """Where the data came from and, per split, the arguments of ``find_pairs``."""

    desc: str
    splits: dict[str, tuple]
    num_train: int = 0
    num_skipped: int = 0


def resolve_data(cfg: TrainConfig, rank: int, world: int) -> Data:
    if cfg.data_a:
        return Data(f"{cfg.data_a} + {cfg.data_b}", {"train": (None, Path(cfg.data_a), Path(cfg.data_b))})
    if cfg.data:
        root = Path(cfg.data)
    else:
        from .download import find_or_download_facades

        if rank == 0:
            root = find_or_download_facades(Path(cfg.cache_dir), progress=cfg.progress)
        if world > 1:
            dist.barrier()
        root = find_or_download_facades(Path(cfg.cache_dir), progress=False)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    splits = {s: (split_folder(root, s), None, None) for s in ("train", "val", "test")}
    if splits["train"][0] is None:
        raise DataError(f"{root}: no train/ folder and no images (expected the pix2pix layout: train/, val/, test/ "
                        "of side-by-side pairs)")
    return Data(str(root), {s: v for s, v in splits.items() if v[0] is not None})


class StopFlag:
    """Ctrl-C / SIGTERM set a flag; the loop saves a checkpoint before its next step and exits."""

    def __init__(self):
        self.signum = 0
        self.previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum, frame):
        if self.signum:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.signum = signum

    def requested(self, world: int, device: torch.device, step: int, sync: bool = False) -> bool:
        """Whether to stop now; under DDP every rank agrees (checked every 10 steps and when ``sync``)."""
        if world == 1:
            return bool(self.signum)
        if not (sync or step % 10 == 0):
            return False
        flag = torch.tensor([self.signum], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def save(cfg: TrainConfig, G, D, opt_g, opt_d, ema, run: RunState, rank: int, world: int, device: torch.device,
         numbered: bool) -> None:
    """Checkpoint (every rank passes its RNG state to rank 0, which writes)."""
    rngs = [rng_state(device)]
    if world > 1:
        rngs = [None] * world
        dist.all_gather_object(rngs, rng_state(device))
    if rank == 0:
        state = make_state(G, D, opt_g, opt_d, run, rngs, cfg.to_dict(), world, ema)
        save_checkpoint(state, Path(cfg.run_dir) / "checkpoints", numbered, cfg.keep_checkpoints)


# ----------------------------------------------------------------------------------------------- train
def init_generator(weights: str, *generators: torch.nn.Module) -> None:
    """Copy trained weights into each of ``generators`` (the generator and its EMA). Why: a model can be improved by training on from what was published
    (its run folder, with the discriminator, may be long gone), which costs far less than starting over."""
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


def train(cfg: TrainConfig) -> Path:
    started = time.monotonic()
    rank, world, device = setup_distributed(cfg)
    if device.type == "cpu":
        keep_freed_memory()
    try:
        return _train(cfg, rank, world, device, started)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, rank: int, world: int, device: torch.device, started: float) -> Path:
    master = rank == 0
    is_cuda = device.type == "cuda"
    channels_last = cfg.channels_last and is_cuda
    say = tqdm.write if master else (lambda *a, **k: None)
    run_dir = Path(cfg.run_dir)
    latest = run_dir / "checkpoints" / "latest.pt"
    if master:
        run_dir.mkdir(parents=True, exist_ok=True)
    metrics = MetricsLog(run_dir / "metrics.jsonl")
    if cfg.recipe == "paper" and device.type == "cpu" and master:
        say("note: the paper recipe is meant for a GPU (about 1 image/s here); --recipe cpu trains on a CPU")

    # Data: every file is checked up front (unreadable ones skipped, a bad layout stops here).
    data = resolve_data(cfg, rank, world)
    with warnings.catch_warnings():
        if not master:  # rank 0 names the skipped files
            warnings.simplefilter("ignore")
        train_pairs, skipped = check_pairs(find_pairs(*data.splits["train"], limit=cfg.limit))
    data.num_train, data.num_skipped = len(train_pairs), len(skipped)
    ds_kw = dict(image_size=cfg.image_size, load_size=cfg.resolved_load_size, direction=cfg.direction,
                 snap_labels=cfg.snap_labels, flip=cfg.flip, seed=cfg.seed)
    dataset = PairedDataset(train_pairs, **ds_kw)
    sampler = EpochSampler(dataset, num_replicas=world, rank=rank, seed=cfg.seed)
    epoch_batches, source = make_batches(dataset, sampler, cfg.batch_size, cfg.in_memory, cfg.num_workers,
                                         pin_memory=is_cuda, seed=cfg.seed, progress=master and cfg.progress)
    sample_split = "val" if "val" in data.splits else "train"
    sample_pairs = (check_pairs(find_pairs(*data.splits["val"], limit=cfg.num_samples))[0]
                    if sample_split == "val" else train_pairs[: cfg.num_samples])
    fixed = PairedDataset(sample_pairs, **ds_kw)
    fixed_x, fixed_y = (torch.stack(t) for t in zip(*(fixed[i] for i in range(len(fixed)))))
    say(f"data: {len(train_pairs)} training pairs from {data.desc}"
        f"{f' ({len(skipped)} unreadable skipped)' if skipped else ''}, {source}; samples from {sample_split}/")

    # Models: the library's own, initialised identically on every rank from the seed.
    torch.manual_seed(cfg.seed)
    G = UnetGenerator(ngf=cfg.ngf, num_downs=cfg.num_downs, nz=cfg.nz).to(device)
    D = PatchDiscriminator(ndf=cfg.ndf, n_layers=cfg.n_layers_d).to(device)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_g, opt_d = make_optimizers(cfg, G, D, fused=cfg.fused_adam and is_cuda)
    ema = make_ema(G, cfg.ema) if cfg.ema else None
    objective = Objective.of(cfg)
    precision, why = choose_precision(cfg, device)
    if world > 1:  # rank 0's choice for everyone
        choice = [precision, why]
        dist.broadcast_object_list(choice, src=0)
        precision, why = choice
    say(f"model: U-Net {cfg.image_size} ngf {cfg.ngf}{f' nz {cfg.nz}' if cfg.nz else ''} "
        f"({sum(p.numel() for p in G.parameters()) / 1e6:.1f}M parameters) + PatchGAN ndf {cfg.ndf}, batch "
        f"{cfg.batch_size}{' x 2 codes' if objective.copies == 2 else ''} x {world} process(es), lr {cfg.lr:g}"
        f"{f' (discriminator {cfg.lr_d:g})' if cfg.lr_d is not None else ''}, "
        f"{precision} ({why}), on {device} (recipe {cfg.recipe})")
    say(f"loss: GAN + {cfg.lambda_l1:g} x L1" + (f" + {cfg.lambda_ms:g} x mode seeking" if cfg.lambda_ms else "")
        + (f"; EMA of the generator, decay {cfg.ema:g}" if ema else "")
        + (f"; the first {cfg.d_warmup} steps train the discriminator alone" if cfg.d_warmup else ""))

    # Resume from latest.pt in the run folder (the same command again continues), unless --no-resume.
    torch.manual_seed(cfg.seed + rank)
    random.seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)
    run = RunState(epochs=cfg.epochs, epochs_decay=cfg.epochs_decay)
    budget = cfg.budget_seconds
    found = find_resumable(latest.parent, cfg.to_dict(), warn=say) if cfg.resume else None
    if found:
        run = restore(found[1], G, D, opt_g, opt_d, rank, world, device, ema)
        if budget is None:  # this command's schedule (a longer one may continue a finished run)
            run.epochs, run.epochs_decay, run.planned, run.frozen = cfg.epochs, cfg.epochs_decay, False, False
        say(f"resuming from {found[0]}: epoch {run.epoch + 1}, step {run.step_in_epoch} of the epoch "
            f"(global step {run.global_step})")
        if master:
            metrics.truncate_after(run.global_step)
    else:
        if cfg.init_from:  # only for a fresh start: a resumed run has its own weights (and needs no file of these)
            init_generator(cfg.init_from, G, *([ema.module] if ema else []))
            say(f"generator initialised from {cfg.init_from} (discriminator and optimisers fresh)")
        if master and metrics.path.exists():
            say(f"starting over in {run_dir} (--no-resume or no checkpoint)")
            metrics.path.unlink()
    elapsed_before = run.elapsed  # wall time of earlier processes of this run
    steps_per_epoch = -(-sampler.num_samples // cfg.batch_size)
    planner = None
    if budget is not None:
        if not run.planned:  # provisional until the first epoch has been timed: constant rate
            run.epochs, run.epochs_decay = run.epoch + 1, 0
        eval_split = "test" if "test" in data.splits else "val" if "val" in data.splits else None
        eval_images = 0
        if cfg.evaluate and eval_split:
            eval_images = len(find_pairs(*data.splits[eval_split], limit=cfg.eval_limit))
        planner = BudgetPlanner(budget, steps_per_epoch, eval_images, cfg.batch_size,
                                elapsed=elapsed_before + time.monotonic() - started)
        say(f"time budget {budget / 60:.1f} min ({elapsed_before / 60:.1f} used by earlier processes): "
            + ("the plan is kept from the checkpoint" if run.frozen else "the first epoch is timed, then the plan is made"))

    G_train, D_train, D_for_g = G, D, D
    if world > 1:
        ids = [device.index] if is_cuda else None
        G_train, D_train = DDP(G, device_ids=ids), DDP(D, device_ids=ids)
    if cfg.compile:
        G_train, D_train = torch.compile(G_train), torch.compile(D_train)
        D_for_g = D_train if world == 1 else torch.compile(D)
    autocast = make_autocast(precision, device.type)
    G_eval = ema.module if ema else G  # what is sampled, evaluated and exported
    writer = None
    if master and cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:
            pass

    # ------------------------------------------------------------------------------------------- loop
    stop = StopFlag()
    bar = tqdm(total=run.total_epochs * steps_per_epoch, initial=run.global_step, unit="it", dynamic_ncols=True,
               disable=not (master and cfg.progress))
    if cfg.compile:
        say("compiling the networks: the first step takes a minute or two on a CPU (once per process)")
    first_step = True
    interrupted = False
    try:
        while run.epoch < run.total_epochs and not interrupted:
            interrupted = stop.requested(world, device, run.global_step, sync=True)
            if interrupted:
                break
            sampler.set_epoch(run.epoch)
            sampler.skip = run.step_in_epoch * cfg.batch_size
            G_train.train()
            D_train.train()
            bar.set_description(f"epoch {run.epoch + 1}/{run.total_epochs}" + ("?" if planner and not run.planned else ""))
            sums, n_steps = torch.zeros(len(LOSS_NAMES), device=device), 0
            t_epoch = tick = time.perf_counter()
            for x, y in epoch_batches():
                if n_steps and stop.requested(world, device, run.global_step):
                    interrupted = True
                    break
                factor = lr_factor(run.global_step, run.epochs * steps_per_epoch, run.epochs_decay * steps_per_epoch)
                lr = cfg.lr * factor
                set_lr(opt_g, lr)
                set_lr(opt_d, cfg.resolved_lr_d * factor)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if channels_last:
                    x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
                losses = train_step(G_train, D_train, D_for_g, opt_g, opt_d, x, y, objective, autocast, ema,
                                    train_g=run.global_step >= cfg.d_warmup)
                sums += losses
                n_steps += 1
                run.step_in_epoch += 1
                run.global_step += 1
                now = time.perf_counter()
                if planner:
                    planner.step_done(now - tick)
                    if not run.planned and planner.ready() and world == 1 and planner.plan(run):
                        say(planner.describe(run))
                        bar.total = run.total_epochs * steps_per_epoch
                        bar.set_description(f"epoch {run.epoch + 1}/{run.total_epochs}")
                if first_step and cfg.compile:
                    say(f"compiled: the first step took {now - tick:.0f} s")
                first_step, tick = False, now
                bar.update(1)
                if run.global_step % 10 == 0 or n_steps == 1:
                    bar.set_postfix({k: f"{v:.3f}" for k, v in zip(LOSS_NAMES, losses.tolist()) if k != "g_ms" or objective.lambda_ms},
                                    refresh=False)
                if master and run.global_step % cfg.log_every == 0:
                    metrics.write({"type": "step", "epoch": run.epoch + 1, "step": run.global_step,
                                   **dict(zip(LOSS_NAMES, losses.tolist())), "lr": lr})
            seconds = time.perf_counter() - t_epoch
            run.train_seconds += seconds
            if interrupted:
                break

            # End of an epoch: metrics, sample grid, report, the budget plan, checkpoint.
            run.epoch, run.step_in_epoch = run.epoch + 1, 0
            if world > 1:
                dist.all_reduce(sums)
                n_steps *= world
            if master:
                means = dict(zip(LOSS_NAMES, (sums / max(n_steps, 1)).tolist()))
                metrics.write({"type": "epoch", "epoch": run.epoch, "step": run.global_step, **means, "lr": lr,
                               "epoch_seconds": round(seconds, 3), "train_seconds": round(run.train_seconds, 3),
                               "images_per_s": round(n_steps * cfg.batch_size * objective.copies / max(seconds, 1e-9), 2),
                               "maps_per_s": round(n_steps * cfg.batch_size / max(seconds, 1e-9), 2)})
                if writer:
                    for k, v in means.items():
                        writer.add_scalar(f"loss/{k}", v, run.epoch)
                with torch.no_grad(), autocast():  # fixed dropout seeds: the grids change only as the weights do
                    x = fixed_x.to(device)
                    fake = G_eval(x.contiguous(memory_format=torch.channels_last) if channels_last else x,
                                  seeds=list(range(len(x))))
                save_grid(fixed_x, fake.float().cpu(), fixed_y, run_dir / "samples" / f"epoch_{run.epoch:04d}.png")
                write_index(run_dir, metrics.read(), cfg.to_dict(), run.total_epochs)
            if planner:
                changed = planner.epoch_done(run)
                if world > 1:  # rank 0's plan for everyone
                    plan = [(run.epochs, run.epochs_decay, run.planned, run.frozen)]
                    dist.broadcast_object_list(plan, src=0)
                    run.epochs, run.epochs_decay, run.planned, run.frozen = plan[0]
                if changed or run.frozen and run.epoch == run.epochs:
                    say(planner.describe(run))
                bar.total = run.total_epochs * steps_per_epoch
                bar.refresh()
            run.elapsed = elapsed_before + time.monotonic() - started
            if run.epoch % cfg.save_every == 0 or run.epoch == run.total_epochs:
                save(cfg, G, D, opt_g, opt_d, ema, run, rank, world, device, numbered=True)
    finally:
        bar.close()
        stop.restore()
    if interrupted:
        run.elapsed = elapsed_before + time.monotonic() - started
        save(cfg, G, D, opt_g, opt_d, ema, run, rank, world, device, numbered=False)
        say(f"\ninterrupted: saved {latest} at epoch {run.epoch + 1}, step {run.step_in_epoch} of the epoch. "
            "Run the same command again to continue.")
        if world > 1:
            dist.barrier()
        raise SystemExit(130)
    if writer:
        writer.close()

    # ------------------------------------------------------------------------------------------- end
    if master:
        finish(cfg, run_dir, G_eval, device, data, run, metrics, world, elapsed_before + time.monotonic() - started)
    if world > 1:
        dist.barrier()
    return run_dir


def finish(cfg: TrainConfig, run_dir: Path, G: UnetGenerator, device: torch.device, data: Data, run: RunState,
           metrics: MetricsLog, world: int, elapsed: float) -> None:
    """Export (save_pretrained), evaluate, model card, optional push. ``elapsed``: the run's wall time so far.
    ``G``: the generator to export (the EMA's when there is one)."""
    t0 = time.monotonic()
    export_dir = run_dir / "export"
    export = UnetGenerator(ngf=cfg.ngf, num_downs=cfg.num_downs, nz=cfg.nz)
    export.load_state_dict({k: v.detach().float().cpu().contiguous() for k, v in G.state_dict().items()})
    export.eval().save_pretrained(export_dir)
    grids = sorted((run_dir / "samples").glob("epoch_*.png"))
    if grids:
        (export_dir / "sample.png").write_bytes(grids[-1].read_bytes())
    result = None
    eval_split = "test" if "test" in data.splits else "val" if "val" in data.splits else None
    if cfg.evaluate and eval_split:
        from .evaluate import evaluate_generator

        pairs, _ = check_pairs(find_pairs(*data.splits[eval_split], limit=cfg.eval_limit))
        ds = PairedDataset(pairs, cfg.image_size, cfg.image_size, cfg.direction, cfg.snap_labels)
        result = evaluate_generator(export, ds, device=device, progress=cfg.progress)
    epochs = [r for r in metrics.read() if r.get("type") == "epoch"]
    total_seconds = elapsed + time.monotonic() - t0
    summary = {"data": data.desc, "train_images": data.num_train, "skipped": data.num_skipped,
               "epochs_done": run.epoch, "epochs_constant": run.epochs, "epochs_decay": run.epochs_decay,
               "steps": run.global_step, "train_seconds": run.train_seconds, "wall_seconds": total_seconds,
               "time_budget": cfg.time_budget,
               "device": str(device) + (f" x {world}" if world > 1 else ""), "world_size": world,
               "load_size": cfg.resolved_load_size, "metrics": result, "eval_split": eval_split,
               "last": epochs[-1] if epochs else {}}
    write_model_card(export_dir, cfg.to_dict(), summary)
    print(f"done: {run.epoch} epochs ({run.epochs} constant-lr + {run.epochs_decay} decay), {run.global_step} steps, "
          f"{run.train_seconds / 60:.1f} min of training; {data.num_skipped} unreadable image(s) skipped")
    if result:
        from .evaluate import summary_line

        if result.get("fid_note"):
            print(f"FID and KID skipped: {result['fid_note']}")
        print(f"{eval_split}: {summary_line(result)}")
        write_index(run_dir, metrics.read(), cfg.to_dict(), run.total_epochs, evaluation=result, split=eval_split)
        print(f"{eval_split}: L1 {result['l1']:.4f}  PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f} "
              f"over {result['n']} images")
    print(f"export: {export_dir}  (Pix2Pix.load('{export_dir}') or app.py --weights {export_dir}); "
          f"report: {run_dir / 'index.html'}")
    if cfg.push_to_hub:
        from .hub import push_to_hub

        url = push_to_hub(export_dir, cfg.push_to_hub, private=cfg.private)
        print(f"pushed {export_dir} to {url}")


def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))
