"""Training engine for the inpainting GAN (paper section 5): the run around :mod:`step`.

    cfg = apply_overrides(get_preset("smoke"), ["train.steps=200"])
    summary = train(cfg, Path("runs/smoke"), sources=[Path("photos/")])

A run folder holds ``config.json``, ``metrics.jsonl``, sample grids and checkpoints (docs/usage.md). Everything
random is a function of (seed, step): masks from :func:`masks.step_generator`, the data order and crops
from :mod:`data`, the learning rates from :func:`step.lr_factor`. A run resumed from ``latest.pt``
therefore continues exactly. Before each checkpoint save the moving-average generator (``train.ema``)
gets the batch-norm statistics of its own weights (:func:`refresh_ema_bn`). Ctrl-C / SIGTERM finish
the current step, write ``latest.pt`` and return ``interrupted=True``. A non-finite loss stops the run *without* writing ``latest.pt``, so the last good
checkpoint survives.

Fast paths: ``--data CACHE`` (a folder made by ``inpaintssl prepare``) trains from a uint8 memory map
with crops and flips done on the device (:mod:`cache`); bf16 autocast and channels_last where the device
computes bf16 natively (CUDA, AVX-512 BF16 / AMX CPUs: :func:`step.resolve_precision`), on CUDA also fused
Adam and cuDNN benchmark, and ``train.compile=true`` adds torch.compile. Under ``torchrun`` with
several processes the models are wrapped in DDP with synchronised batch norm (:mod:`distributed`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import distributed
from ..data.cache import CachedBatches, CachedImages
from ..checkpoint import check_compatible, load_checkpoint, save_checkpoint
from ..config import Config, config_to_dict, save_config
from ..data.folder import ImageFolder, embedded_photos, make_loader
from ..data.sources import gather_files, is_cache_dir
from ..errors import InpaintsslError, NonFiniteLossError
from ..data.images import make_grid, save_png, to_uint8
from .masks import make_masks, step_generator
from .step import (TrainState, build_state, compose, generate, generator_input, pick_device, recompute_bn_stats,
                   train_step, training_masks)

RUN_FILES = ("config.json", "metrics.jsonl", "samples", "checkpoints", "skipped_files.txt")
EMA_BN_BATCHES = 8        # batches that recompute the EMA generator's batch-norm statistics before a save


@torch.no_grad()
def sample_grid(state: TrainState, real: torch.Tensor, mask: torch.Tensor):
    """Paper Figure 3 layout: one row per image, real | corrupted | reconstructed (prediction in the hole)."""
    G = state.ema if state.ema is not None else state.models["generator"]
    was_training = G.training
    G.eval()
    gen = generate(G, real, mask, state.cfg).float()
    G.train(was_training)
    rows = []
    for r, msk, g in zip(real, mask, gen):
        rows.append([to_uint8(r), to_uint8(r * (1 - msk)), to_uint8(compose(g, r, msk))])
    return make_grid(rows)


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    run_dir = Path(run_dir)
    existing = [n for n in RUN_FILES if (run_dir / n).exists()]
    if resume:
        if not (run_dir / "checkpoints" / "latest.pt").is_file():
            raise InpaintsslError(f"{run_dir}: nothing to resume (no checkpoints/latest.pt); drop --resume "
                                  "to start a new run")
        return
    if existing and not overwrite:
        raise InpaintsslError(f"{run_dir}: already holds a run ({', '.join(existing)}); use --resume to "
                              "continue it, --overwrite to replace it, or another --out")
    for name in existing:                                           # only files this tool writes
        p = run_dir / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    # the folder itself is made by the first file written (config.json, once the data proved readable),
    # so a run that fails on its data leaves no empty folder behind


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between steps (restores the old handlers on exit)."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:                      # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:                 # second Ctrl-C: give up waiting
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _worker_init(_):
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the main process handles Ctrl-C and saves


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def start_lines(cfg: Config, run_dir: Path, sources: list[Path], ds, state: TrainState,
                device: torch.device) -> list[str]:
    """What a run prints before its first step: data, device and precision, sizes, schedule, hole."""
    n, b = len(ds), cfg.train.batch_size
    index = getattr(ds, "index", None)                             # a prepared cache (CachedImages)
    if index is not None:
        skipped = index.get("skipped", [])
        data = (f"{n:,} photos from the cache {sources[0]} "
                f"({len(skipped) if isinstance(skipped, list) else skipped} skipped when it was prepared)")
    else:
        where = ", ".join(map(str, sources)) if sources else "the scikit-image sample photos"
        data = f"{n:,} photos found in {where} (unreadable ones are skipped and counted as they are met)"
    todo = cfg.train.steps - state.step
    return [f"data: {data}",
            f"device {device.type}, precision {state.precision}"
            + ("" if state.precision == "bf16" or not cfg.train.amp else " (no native bf16 here)"),
            f"run {run_dir}: preset {cfg.preset}, {cfg.model.image_size} px, batch {b}, hole {cfg.mask.kind}; "
            f"steps {state.step} -> {cfg.train.steps} ({todo * b / n:.1f} epochs of {n:,} photos"
            + (f", {cfg.train.steps * b / n:.1f} in all)" if state.step else ")")]


def train(cfg: Config, run_dir: Path, sources: list[Path] | None = None, resume: bool = False,
          overwrite: bool = False, progress: bool = True, log=print) -> dict:
    """Train (or resume) a run; returns a summary dict (step, interrupted, skipped files, timings).

    Under torchrun (``WORLD_SIZE`` > 1) every process calls this; rank 0 alone logs and writes."""
    run_dir = Path(run_dir)
    cfg.validate()
    dist_info, device_name = distributed.setup(cfg.train.device)
    try:
        if not dist_info.is_main:
            progress, log = False, (lambda *_: None)
        return _run(cfg, run_dir, sources, resume, overwrite, progress, log, dist_info, device_name)
    finally:
        distributed.teardown(dist_info)


def ema_bn_inputs(cfg: Config, ds, part: slice, device: torch.device, batches: int = EMA_BN_BATCHES):
    """Generator arguments ``(x, mask)`` (this rank's shard, as :func:`step.generate` passes them) of the
    run's first ``batches`` steps: the images and masks those steps trained on, rebuilt from the seeded
    data order (``ds`` is an ImageFolder or CachedImages; neither the loader nor any random state is
    touched)."""
    b = cfg.train.batch_size
    for step in range(batches):
        real = ds.batch(range(step * b, (step + 1) * b)[part]).to(device)
        mask = training_masks(cfg, step, b)[part].to(device)
        yield generator_input(real, mask, cfg.model.mask_channel, cfg.model.hole_fill), mask


def refresh_ema_bn(state: TrainState, ds, part: slice) -> None:
    """Give the EMA generator the batch-norm statistics of its own weights before it is saved.

    Done at every checkpoint save, on :data:`EMA_BN_BATCHES` seeded training batches
    (:func:`ema_bn_inputs`, :func:`step.recompute_bn_stats`): 8 forward passes without grad plus loading
    8 batches, small next to ``ckpt_every`` training steps, and 8 B samples per channel even at the 1x1
    bottleneck. Saves are where it matters: inference, evaluation and transfer use the saved EMA. The
    statistics are recomputed from scratch, so they depend only on the EMA weights and a resumed run
    saves exactly what the uninterrupted run saves. Between saves the EMA's statistics follow
    :func:`step.update_ema` (the sample grids use them). All ranks must call this at the same steps."""
    if state.ema is not None:
        recompute_bn_stats(state.ema, ema_bn_inputs(state.cfg, ds, part, state.device))


def _training_data(cfg: Config, sources: list[Path], device: torch.device, start: int, part: slice):
    """(dataset, batch iterator) for a prepared cache (the only source) or image files."""
    total, batch = cfg.train.steps, cfg.train.batch_size
    if any(is_cache_dir(s) for s in sources):
        if len(sources) != 1:
            raise InpaintsslError(f"a prepared cache ({[str(s) for s in sources if is_cache_dir(s)][0]}) must be "
                                  "the only --data; prepare one cache from all the photo folders")
        ds = CachedImages(Path(sources[0]), cfg.model.image_size, cfg.data, seed=cfg.train.seed, device=device)
        return ds, CachedBatches(ds, batch, start, total, part)
    files = gather_files(sources) if sources else embedded_photos()
    ds = ImageFolder(files, cfg.model.image_size, cfg.data, seed=cfg.train.seed)
    workers = min(cfg.data.workers, len(files))
    loader = make_loader(ds, batch, start, total, workers, pin_memory=device.type == "cuda", part=part)
    if workers > 0:
        loader.worker_init_fn = _worker_init
    return ds, loader


def _run(cfg: Config, run_dir: Path, sources, resume: bool, overwrite: bool, progress: bool, log,
         dist_info: "distributed.DistInfo", device_name: str) -> dict:
    main = dist_info.is_main
    distributed.on_main(lambda: prepare_run_dir(run_dir, resume, overwrite), dist_info)
    device = pick_device(device_name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    part = distributed.shard(cfg.train.batch_size, dist_info)      # this rank's slice of a global batch
    state = build_state(cfg, device, dist_info)
    if resume:
        ckpt = load_checkpoint(run_dir / "checkpoints" / "latest.pt", map_location=device)
        check_compatible(ckpt, config_to_dict(cfg), "the config of this resumed run")
        state.load_state_dict(ckpt)
        sources = sources or [Path(s) for s in ckpt.get("sources", [])]
        del ckpt
    sources = [Path(s) for s in sources or []]
    state.sources = [str(s) for s in sources]
    total = cfg.train.steps
    if state.step > total:                 # --steps is the run's total: a smaller one is a mistake, say so
        raise InpaintsslError(f"{run_dir}: the run is already at step {state.step}, past --steps {total} "
                              f"(--steps counts the run's total steps, not steps to add); pass --steps "
                              f"{state.step + total} to train {total} more")
    if state.step == total:                # before opening the data (on CUDA a cache is copied to the GPU)
        log(f"{run_dir}: already at step {state.step} of {total}; raise --steps to train further")
        return {"step": state.step, "interrupted": False, "skipped_files": [], "images": None}
    ds, loader = _training_data(cfg, sources, device, state.step, part)
    n_images = len(ds)
    if not sources:
        log(f"no --data: training on {n_images} sample photos shipped with scikit-image")
    for line in start_lines(cfg, run_dir, sources, ds, state, device):
        log(line)
    if dist_info.enabled:
        log(f"{dist_info.world} processes, global batch {cfg.train.batch_size} "
            f"({cfg.train.batch_size // dist_info.world} per process), device {device.type}")

    # fixed images and masks for the sample grids (rank 0): stream positions 0..k-1, seeded masks
    k = min(8, cfg.train.batch_size)
    if main:
        fixed_real = torch.stack([ds[i][0] for i in range(k)]).to(device)
        fixed_mask = make_masks(cfg.mask.kind, k, cfg.model.image_size, step_generator(cfg.train.seed, 0, 2),
                                cfg.mask).to(device)
        save_config(cfg, run_dir / "config.json")                 # after the data proved readable
    # the paper's centre hole is the same every step: build it once on the device
    center = training_masks(cfg, 0, cfg.train.batch_size)[part].to(device) if cfg.mask.kind == "center" else None

    skipped: set[str] = set()
    metrics_path = run_dir / "metrics.jsonl"
    interrupted = False
    t_start = t_last = time.perf_counter()
    seen_since_log = 0
    for m in state.models.values():
        m.train()
    bar = tqdm(total=total, initial=state.step, disable=not progress, unit="step", dynamic_ncols=True,
               file=sys.stderr)
    with _StopFlag() as stop, (open(metrics_path, "a") if main else contextlib.nullcontext()) as metrics_file:
        for real, bad in loader:
            skipped.update(bad)
            real = real.to(device, non_blocking=True)
            if center is not None:
                mask = center
            else:
                mask = training_masks(cfg, state.step, cfg.train.batch_size)[part].to(device, non_blocking=True)
            if state.precision == "bf16":
                real = real.contiguous(memory_format=torch.channels_last)
            next_step = state.step + 1
            log_now = next_step % cfg.train.log_every == 0 or next_step == total
            logs = train_step(state, real, mask, metrics=log_now)
            seen_since_log += real.shape[0] * dist_info.world

            check_now = device.type == "cpu" or log_now
            stop_now = stop.signum is not None
            if dist_info.enabled:                                   # same decision on every rank
                if check_now:
                    logs, stop_now = distributed.reduce_logs(logs, stop_now, dist_info)
                else:
                    stop_now = False
            if check_now and not torch.isfinite(logs["g_total"] + sum(logs.values())):
                bad_terms = [k for k, v in logs.items() if not torch.isfinite(v)]
                raise NonFiniteLossError(
                    f"non-finite loss at step {state.step} ({', '.join(bad_terms)}); stopped without "
                    f"overwriting {run_dir / 'checkpoints' / 'latest.pt'} (the last good checkpoint). "
                    "Lower the learning rates (--set optim.lr_g=...) or the adversarial weights")
            if log_now and main:
                now = time.perf_counter()
                row = {"step": state.step, "epoch": state.step * cfg.train.batch_size / n_images,
                       **{k: round(float(v), 7) for k, v in logs.items()},
                       "images_per_s": round(seen_since_log / max(now - t_last, 1e-9), 2),
                       "precision": state.precision,
                       "time_s": round(now - t_start, 3)}
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
                t_last, seen_since_log = now, 0
                bar.set_postfix(hole=_fmt(row["hole_mse"]), g=_fmt(row["g_total"]),
                                d=_fmt(row.get("d_local", row.get("d_global", 0.0))),
                                img_s=f"{row['images_per_s']:.0f}")
                if not progress:                                  # under nohup / CI: a line per log step
                    log(f"step {row['step']}/{total}  hole_mse {_fmt(row['hole_mse'])}  g {_fmt(row['g_total'])}  "
                        f"d {_fmt(row.get('d_local', row.get('d_global', 0.0)))}  "
                        f"{row['images_per_s']:.0f} img/s  {row['time_s']:.0f} s")
            if main and (state.step % cfg.train.sample_every == 0 or state.step == total):
                save_png(sample_grid(state, fixed_real, fixed_mask), run_dir / "samples" / f"step_{state.step:06d}.png")
            if state.step % cfg.train.ckpt_every == 0 and state.step != total:
                refresh_ema_bn(state, ds, part)                    # every rank (synchronised batch norm)
                if main:
                    save_checkpoint(run_dir / "checkpoints" / "latest.pt", state.state_dict())
                    save_checkpoint(run_dir / "checkpoints" / f"step_{state.step:06d}.pt",
                                    dict(state.weights(), step=state.step, config=config_to_dict(cfg)))
            bar.update(1)
            if stop_now:
                interrupted = True
                break
        bar.close()
        refresh_ema_bn(state, ds, part)
        if main:
            save_checkpoint(run_dir / "checkpoints" / "latest.pt", state.state_dict())

    # a collective (all_gather): no rank returns from it before rank 0 has called it, i.e. written latest.pt
    skipped_all = distributed.gather_strings(sorted(skipped), dist_info)
    if dist_info.enabled:               # every rank done with gloo before any tears it down (an exit race
        torch.distributed.barrier()     # aborted a rank once: "terminate called without an active exception")
    if skipped_all and main:
        (run_dir / "skipped_files.txt").write_text("".join(f"{p}\n" for p in skipped_all))
        log(f"skipped {len(skipped_all)} unreadable file(s) of {n_images}; list in {run_dir / 'skipped_files.txt'}")
    if interrupted:
        log(f"interrupted at step {state.step}: saved {run_dir / 'checkpoints' / 'latest.pt'}; "
            f"continue with --resume")
    return {"step": state.step, "interrupted": interrupted, "skipped_files": skipped_all,
            "images": n_images, "seconds": round(time.perf_counter() - t_start, 2), "rank": dist_info.rank,
            "world": dist_info.world}
