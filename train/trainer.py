"""The training loop: ``python -m train`` (one process) or ``torchrun --nproc_per_node N -m train`` (DDP).

Read top to bottom: setup (devices, data, models, optimisers), resume, the loop, the end (export, model
card, evaluation, push). Runs are exactly reproducible on one CPU: the data order comes from seed + epoch,
the jitter from (seed, epoch, image), dropout from the global RNG whose state is checkpointed.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm import tqdm

from pix2pix import PatchDiscriminator, UnetGenerator, default_device

from .config import TrainConfig, parse_args
from .data import EpochSampler, PairedDataset, check_pairs, find_pairs, split_folder
from .report import MetricsLog, save_grid, write_index, write_model_card

# Fields that fix the networks' shapes: a checkpoint only resumes under the same values.
ARCHITECTURE = ("image_size", "ngf", "ndf", "n_layers_d", "direction")


# ----------------------------------------------------------------------------------------------- setup
def setup_distributed(cfg: TrainConfig) -> tuple[int, int, torch.device]:
    """(rank, world size, device). Under torchrun: NCCL with one GPU per process, else gloo on the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.device == "auto":
        device = default_device()
    else:
        device = torch.device(cfg.device)
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


def resolve_data(cfg: TrainConfig, rank: int, world: int) -> tuple[str, dict[str, tuple]]:
    """A description of the data and, per split, the arguments of ``find_pairs``."""
    if cfg.data_a:
        return f"{cfg.data_a} + {cfg.data_b}", {"train": (None, Path(cfg.data_a), Path(cfg.data_b))}
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
        from .data import DataError

        raise DataError(f"{root}: no such folder")
    splits = {s: (split_folder(root, s), None, None) for s in ("train", "val", "test")}
    if splits["train"][0] is None:
        from .data import DataError

        raise DataError(f"{root}: no train/ folder and no images (expected the pix2pix layout: train/, val/, test/ "
                        "of side-by-side pairs)")
    return str(root), {s: v for s, v in splits.items() if v[0] is not None}


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoint(state: dict, ckpt_dir: Path, numbered: bool, keep: int) -> Path:
    """Write ``latest.pt`` (and ``epoch_NNNN.pt``) through a temp file and a rename: a crash mid-save
    leaves the previous checkpoint intact."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tmp = ckpt_dir / f".tmp-{os.getpid()}.pt"
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    latest = ckpt_dir / "latest.pt"
    if numbered:
        path = ckpt_dir / f"epoch_{state['epoch']:04d}.pt"
        os.replace(tmp, path)
        try:
            os.link(path, tmp)  # the same bytes as latest.pt, without writing them twice
        except OSError:
            import shutil

            shutil.copyfile(path, tmp)
        old = sorted(ckpt_dir.glob("epoch_*.pt"))
        for stale in old[:-keep] if keep > 0 else []:
            stale.unlink(missing_ok=True)
    os.replace(tmp, latest)
    return latest


class StopFlag:
    """Ctrl-C / SIGTERM set a flag; the loop saves a checkpoint at the next step and exits."""

    def __init__(self):
        self.signum = 0
        self.previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.signum:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.signum = signum

    def restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _ignore_sigint(_worker_id: int) -> None:
    # Workers leave Ctrl-C to the main process, which saves and then shuts them down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_optimizers(cfg: TrainConfig, G, D, fused: bool):
    kw = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2)}
    if fused:
        kw["fused"] = True
    opt_g, opt_d = torch.optim.Adam(G.parameters(), **kw), torch.optim.Adam(D.parameters(), **kw)
    # The authors' schedule: constant for `epochs`, then linear towards 0 over `epochs_decay`.
    rule = lambda e: 1.0 - max(0, e + 1 - cfg.epochs) / float(cfg.epochs_decay + 1)  # noqa: E731
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt_g, rule)
    scheduler_d = torch.optim.lr_scheduler.LambdaLR(opt_d, rule)
    return opt_g, opt_d, scheduler, scheduler_d


def train_step(G, D, D_for_g, opt_g, opt_d, x, y, lambda_l1: float, autocast) -> torch.Tensor:
    """One pix2pix step. Returns (g_gan, g_l1, d_real, d_fake) as a detached tensor.

    The discriminator sees (fake, real) in one batched call (exact per sample: instance norm); the
    generator's step calls it without DDP (``D_for_g``) with its parameters frozen.
    """
    with autocast():
        fake = G(x)
    # Discriminator: 0.5 * (BCE(D(x, fake), 0) + BCE(D(x, real), 1))
    D.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    with autocast():
        logits = D(torch.cat([x, x]), torch.cat([fake.detach(), y])).float()
    fake_logits, real_logits = logits.chunk(2)
    d_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    d_real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    (0.5 * (d_fake + d_real)).backward()
    opt_d.step()
    # Generator: BCE(D(x, fake), 1) + lambda * L1(fake, real)
    D.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    with autocast():
        logits = D_for_g(x, fake).float()
    g_gan = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    g_l1 = F.l1_loss(fake.float(), y.float())
    (g_gan + lambda_l1 * g_l1).backward()
    opt_g.step()
    return torch.stack([g_gan, g_l1, d_real, d_fake]).detach()


LOSS_NAMES = ("g_gan", "g_l1", "d_real", "d_fake")


def unwrap(model):
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


# ----------------------------------------------------------------------------------------------- train
def train(cfg: TrainConfig) -> Path:
    rank, world, device = setup_distributed(cfg)
    try:
        return _train(cfg, rank, world, device)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, rank: int, world: int, device: torch.device) -> Path:
    master = rank == 0
    is_cuda = device.type == "cuda"
    amp, channels_last, fused = cfg.amp and is_cuda, cfg.channels_last and is_cuda, cfg.fused_adam and is_cuda
    say = print if master else (lambda *a, **k: None)

    run_dir = Path(cfg.run_dir)
    ckpt_dir, samples_dir = run_dir / "checkpoints", run_dir / "samples"
    latest = ckpt_dir / "latest.pt"
    if master:
        run_dir.mkdir(parents=True, exist_ok=True)
    metrics = MetricsLog(run_dir / "metrics.jsonl")

    # Data: decode everything once; unreadable files are skipped, a bad layout stops here.
    data_desc, splits = resolve_data(cfg, rank, world)
    with warnings.catch_warnings():
        if not master:  # rank 0 names the skipped files
            warnings.simplefilter("ignore")
        train_pairs, skipped = check_pairs(find_pairs(*splits["train"], limit=cfg.limit))
    sample_split = "val" if "val" in splits else "train"
    sample_pairs, _ = (check_pairs(find_pairs(*splits[sample_split], limit=cfg.num_samples))
                       if sample_split != "train" else (train_pairs[: cfg.num_samples], []))
    ds_kw = dict(image_size=cfg.image_size, load_size=cfg.resolved_load_size, direction=cfg.direction,
                 snap_labels=cfg.snap_labels, flip=cfg.flip, seed=cfg.seed)
    dataset = PairedDataset(train_pairs, **ds_kw)
    sampler = EpochSampler(dataset, num_replicas=world, rank=rank, seed=cfg.seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        pin_memory=is_cuda, persistent_workers=cfg.num_workers > 0, drop_last=False,
                        worker_init_fn=_ignore_sigint, generator=torch.Generator().manual_seed(cfg.seed))
    fixed = PairedDataset(sample_pairs, **ds_kw)
    fixed_x = fixed_y = None
    if len(fixed):
        fixed_x, fixed_y = (torch.stack(t) for t in zip(*(fixed[i] for i in range(len(fixed)))))
    say(f"data: {len(train_pairs)} training pairs from {data_desc}"
        f"{f' ({len(skipped)} unreadable skipped)' if skipped else ''}; samples from {sample_split}/")

    # Models: the library's own, initialised identically on every rank from the seed.
    torch.manual_seed(cfg.seed)
    G = UnetGenerator(ngf=cfg.ngf, num_downs=cfg.num_downs).to(device)
    D = PatchDiscriminator(ndf=cfg.ndf, n_layers=cfg.n_layers_d).to(device)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_g, opt_d, sched_g, sched_d = make_optimizers(cfg, G, D, fused)

    # Resume: from latest.pt in the run folder (the same command again continues), unless --no-resume.
    epoch, step_in_epoch, global_step, train_seconds = 0, 0, 0, 0.0
    torch.manual_seed(cfg.seed + rank)
    random.seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)
    if cfg.resume and latest.is_file():
        ck = torch.load(latest, map_location="cpu", weights_only=False)
        changed = [k for k in ARCHITECTURE if ck["config"].get(k) != getattr(cfg, k)]
        if changed:
            was = ", ".join(f"{k}={ck['config'][k]}" for k in changed)
            raise SystemExit(f"error: {latest} was trained with different {', '.join(changed)} "
                             f"({was}); use the same options, "
                             "another --run-dir, or --no-resume to start over")
        G.load_state_dict(ck["generator"])
        D.load_state_dict(ck["discriminator"])
        opt_g.load_state_dict(ck["opt_g"])
        opt_d.load_state_dict(ck["opt_d"])
        sched_g.load_state_dict(ck["scheduler_g"])
        sched_d.load_state_dict(ck["scheduler_d"])
        # The lr follows this run's --epochs/--epochs-decay (a longer schedule may continue a finished run).
        for opt, sched in ((opt_g, sched_g), (opt_d, sched_d)):
            for group, base, rule in zip(opt.param_groups, sched.base_lrs, sched.lr_lambdas):
                group["lr"] = base * rule(sched.last_epoch)
            sched._last_lr = [group["lr"] for group in opt.param_groups]
        epoch, step_in_epoch, global_step = ck["epoch"], ck["step_in_epoch"], ck["global_step"]
        train_seconds = ck["train_seconds"]
        if len(ck["rng"]) == world:
            set_rng_state(ck["rng"][rank], device)
        say(f"resuming from {latest}: epoch {epoch + 1}, step {step_in_epoch} of the epoch (global step {global_step})")
        if master:
            metrics.truncate_after(global_step)
    elif master and metrics.path.exists():
        say(f"starting over in {run_dir} (--no-resume or no checkpoint)")
        metrics.path.unlink()

    G_train, D_train, D_for_g = G, D, D
    if world > 1:
        ids = [device.index] if is_cuda else None
        G_train, D_train = DDP(G, device_ids=ids), DDP(D, device_ids=ids)
    if cfg.compile:
        G_train, D_train = torch.compile(G_train), torch.compile(D_train)
        D_for_g = D_train if world == 1 else torch.compile(D)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext

    writer = None
    if master and cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:
            pass

    saved_step = -1

    def checkpoint(numbered: bool) -> None:
        nonlocal saved_step
        saved_step = global_step
        rngs = [rng_state(device)]
        if world > 1:
            rngs = [None] * world
            dist.all_gather_object(rngs, rng_state(device))
        if master:
            state = {"generator": G.state_dict(), "discriminator": D.state_dict(), "opt_g": opt_g.state_dict(),
                     "opt_d": opt_d.state_dict(), "scheduler_g": sched_g.state_dict(),
                     "scheduler_d": sched_d.state_dict(), "epoch": epoch, "step_in_epoch": step_in_epoch,
                     "global_step": global_step, "train_seconds": train_seconds, "rng": rngs,
                     "config": cfg.to_dict(), "world_size": world}
            save_checkpoint(state, ckpt_dir, numbered, cfg.keep_checkpoints)

    def samples(epoch_number: int) -> None:
        if fixed_x is None:
            return
        with torch.no_grad():
            x = fixed_x.to(device)
            seeds = list(range(len(x)))  # fixed dropout: the grids change only because the weights do
            with autocast():
                fake = G(x.contiguous(memory_format=torch.channels_last) if channels_last else x, seeds=seeds)
        save_grid(fixed_x, fake.float().cpu(), fixed_y, samples_dir / f"epoch_{epoch_number:04d}.png")

    # ------------------------------------------------------------------------------------------- loop
    steps_per_epoch = -(-sampler.num_samples // cfg.batch_size)
    total_steps = steps_per_epoch * cfg.total_epochs
    stop = StopFlag()
    bar = tqdm(total=total_steps, initial=min(global_step, total_steps), disable=not (master and cfg.progress),
               unit="it", dynamic_ncols=True)
    interrupted = False
    try:
        while epoch < cfg.total_epochs and not interrupted:
            sampler.set_epoch(epoch)
            sampler.skip = step_in_epoch * cfg.batch_size
            G_train.train()
            D_train.train()
            bar.set_description(f"epoch {epoch + 1}/{cfg.total_epochs}")
            sums = torch.zeros(4, device=device)
            stopping = 0
            n_steps = 0
            t0 = time.perf_counter()
            for x, y in loader:
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                if channels_last:
                    x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
                losses = train_step(G_train, D_train, D_for_g, opt_g, opt_d, x, y, cfg.lambda_l1, autocast)
                sums += losses
                n_steps += 1
                step_in_epoch += 1
                global_step += 1
                bar.update(1)
                if global_step % 10 == 0 or n_steps == 1:
                    bar.set_postfix({k: f"{v:.3f}" for k, v in zip(LOSS_NAMES, losses.tolist())}, refresh=False)
                if master and global_step % cfg.log_every == 0:
                    metrics.write({"type": "step", "epoch": epoch + 1, "step": global_step,
                                   **dict(zip(LOSS_NAMES, losses.tolist())), "lr": sched_g.get_last_lr()[0]})
                stopping = stop.signum
                if world > 1:  # every rank must stop at the same step
                    stopping = 0
                    if global_step % 10 == 0 or step_in_epoch == steps_per_epoch:
                        flag = torch.tensor([stop.signum], device=device)
                        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                        stopping = int(flag.item())
                if stopping and step_in_epoch < steps_per_epoch:
                    train_seconds += time.perf_counter() - t0
                    interrupted = True
                    break
            if interrupted:
                break
            epoch_seconds = time.perf_counter() - t0
            train_seconds += epoch_seconds
            lr = sched_g.get_last_lr()[0]
            sched_g.step()
            sched_d.step()
            epoch += 1
            step_in_epoch = 0
            if world > 1:
                dist.all_reduce(sums)
                n_steps *= world
            if master:
                means = dict(zip(LOSS_NAMES, (sums / max(n_steps, 1)).tolist()))
                record = {"type": "epoch", "epoch": epoch, "step": global_step, **means, "lr": lr,
                          "epoch_seconds": round(epoch_seconds, 3), "train_seconds": round(train_seconds, 3),
                          "images_per_s": round(n_steps * cfg.batch_size / max(epoch_seconds, 1e-9), 2)}
                metrics.write(record)
                if writer:
                    for k, v in means.items():
                        writer.add_scalar(f"loss/{k}", v, epoch)
                samples(epoch)
                write_index(run_dir, metrics.read(), cfg.to_dict())
            if epoch % cfg.save_every == 0 or epoch == cfg.total_epochs:
                checkpoint(numbered=True)
            if stopping and epoch < cfg.total_epochs:
                interrupted = True
    finally:
        bar.close()
        stop.restore()
    if interrupted:
        if saved_step != global_step:
            checkpoint(numbered=False)
        say(f"\ninterrupted: saved {latest} at epoch {epoch + 1}, step {step_in_epoch} of the epoch. "
            "Run the same command again to continue.")
        if world > 1:
            dist.barrier()
        raise SystemExit(130)
    if writer:
        writer.close()

    # ------------------------------------------------------------------------------------------- end
    if master:
        finish(cfg, run_dir, G, device, data_desc, splits, len(train_pairs), len(skipped), metrics,
               global_step, train_seconds, world)
    if world > 1:
        dist.barrier()
    return run_dir


def finish(cfg, run_dir, G, device, data_desc, splits, n_train, n_skipped, metrics, steps, train_seconds, world):
    """Export (save_pretrained), evaluate, model card, optional push."""
    export_dir = run_dir / "export"
    export = UnetGenerator(ngf=cfg.ngf, num_downs=cfg.num_downs)
    export.load_state_dict({k: v.detach().float().cpu().contiguous() for k, v in G.state_dict().items()})
    export.eval().save_pretrained(export_dir)
    grids = sorted((run_dir / "samples").glob("epoch_*.png"))
    if grids:
        (export_dir / "sample.png").write_bytes(grids[-1].read_bytes())
    result, eval_split = None, None
    eval_split = "test" if "test" in splits else "val" if "val" in splits else None
    if cfg.evaluate and eval_split:
        from .evaluate import evaluate_generator

        pairs, _ = check_pairs(find_pairs(*splits[eval_split], limit=cfg.eval_limit))
        ds = PairedDataset(pairs, cfg.image_size, cfg.image_size, cfg.direction, cfg.snap_labels)
        result = evaluate_generator(export, ds, device=device, progress=cfg.progress)
    epochs = [r for r in metrics.read() if r.get("type") == "epoch"]
    summary = {"data": data_desc, "train_images": n_train, "skipped": n_skipped, "epochs_done": cfg.total_epochs,
               "steps": steps, "train_seconds": train_seconds, "device": str(device) + (f" x {world}" if world > 1 else ""),
               "world_size": world, "load_size": cfg.resolved_load_size, "metrics": result, "eval_split": eval_split,
               "last": epochs[-1] if epochs else {}}
    write_model_card(export_dir, cfg.to_dict(), summary)
    export = None
    print(f"done: {cfg.total_epochs} epochs, {steps} steps, {train_seconds / 60:.1f} min of training; "
          f"{n_skipped} unreadable image(s) skipped")
    if result:
        print(f"{eval_split}: L1 {result['l1']:.4f}  PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f} "
              f"over {result['n']} images")
    print(f"export: {export_dir}  (Pix2Pix.load('{export_dir}') or app.py --weights {export_dir}); "
          f"report: {run_dir / 'index.html'}")
    if cfg.push_to_hub:
        from .hub import push_to_hub

        url = push_to_hub(export_dir, cfg.push_to_hub, private=cfg.private)
        print(f"pushed {export_dir} to {url}")


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    if cfg.benchmark:
        from .benchmark import run_benchmark

        run_benchmark(cfg)
        return
    train(cfg)
