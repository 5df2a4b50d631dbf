"""Training engine for the inpainting GAN (paper section 5): explicit arguments, no globals.

    cfg = apply_overrides(get_preset("smoke"), ["train.steps=200"])
    summary = train(cfg, Path("runs/smoke"), sources=[Path("photos/")])

One step (pix2pix-style explicit GAN step):
  1. x_in = I * (1 - M) (+ M as a 4th channel if model.mask_channel); out = G(x_in);
     I_gen = out (M1/M2), or for M3 the corrupted image with the predicted patch pasted into the hole;
  2. D step on I_gen.detach(): L_D_l (+ L_D_g), one Adam (lr_d) over both discriminators;
  3. G step: L_G = w1 L_full + w2 L_masked + w3 (-log D_g(I_gen)) + w4 (-log D_l(I_gen * M)).

Everything random is a function of (seed, step): masks from :func:`masks.step_generator`, the data
order and crops from :mod:`data`. A run resumed from ``latest.pt`` therefore continues exactly.
Ctrl-C / SIGTERM finish the current step, write ``latest.pt`` and return ``interrupted=True``. A
non-finite loss stops the run *without* writing ``latest.pt``, so the last good checkpoint survives.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import losses
from .checkpoint import check_compatible, load_checkpoint, save_checkpoint
from .config import Config, config_to_dict, save_config
from .data import ImageFolder, embedded_photos, gather_files, make_loader
from .errors import InpaintsslError
from .images import make_grid, save_png, to_uint8
from .masks import make_masks, step_generator
from .models import build_models

RUN_FILES = ("config.json", "metrics.jsonl", "samples", "checkpoints", "skipped_files.txt")


class NonFiniteLossError(InpaintsslError):
    pass


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InpaintsslError(f"train.device={name!r} but CUDA is not available here; use train.device=cpu")
    return torch.device(name)


def paste_patch(corrupted: torch.Tensor, patch: torch.Tensor) -> torch.Tensor:
    """M3: put the (B, 3, S/2, S/2) patch into the central hole of the (B, 3, S, S) corrupted image."""
    s, p = corrupted.shape[-1], patch.shape[-1]
    a = (s - p) // 2
    return F.pad(patch, (a, s - p - a, a, s - p - a)) + corrupted


def generator_input(real: torch.Tensor, mask: torch.Tensor, mask_channel: bool) -> torch.Tensor:
    x = real * (1 - mask)                                          # (B, 3, S, S), hole = 0 (mid-gray)
    return torch.cat([x, mask], dim=1) if mask_channel else x


def generate(G: torch.nn.Module, real: torch.Tensor, mask: torch.Tensor, cfg: Config) -> torch.Tensor:
    """I_gen = G(I * (1 - M)) as a full (B, 3, S, S) image (the patch pasted in for M3)."""
    out = G(generator_input(real, mask, cfg.model.mask_channel))
    if cfg.model.predict == "patch":
        return paste_patch(real * (1 - mask), out.to(real.dtype))
    return out


def compose(pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return mask * pred + (1 - mask) * real


@dataclass
class TrainState:
    cfg: Config
    device: torch.device
    models: dict
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    step: int = 0
    sources: list = field(default_factory=list)

    def state_dict(self) -> dict:
        state = {k: m.state_dict() for k, m in self.models.items()}
        state.update(step=self.step, config=config_to_dict(self.cfg), sources=list(self.sources),
                     opt_g=self.opt_g.state_dict(), torch_rng=torch.get_rng_state())
        if self.opt_d is not None:
            state["opt_d"] = self.opt_d.state_dict()
        return state

    def load_state_dict(self, ckpt: dict) -> None:
        for k, m in self.models.items():
            if k not in ckpt:
                raise InpaintsslError(f"{ckpt.get('path')}: checkpoint has no {k} weights")
            m.load_state_dict(ckpt[k])
        self.opt_g.load_state_dict(ckpt["opt_g"])
        if self.opt_d is not None:
            self.opt_d.load_state_dict(ckpt["opt_d"])
        if "torch_rng" in ckpt:
            torch.set_rng_state(ckpt["torch_rng"].cpu())
        self.step = int(ckpt["step"])


def build_state(cfg: Config, device: torch.device) -> TrainState:
    torch.manual_seed(cfg.train.seed)
    models = {k: m.to(device) for k, m in build_models(cfg.model).items()}
    if device.type == "cuda":
        models = {k: m.to(memory_format=torch.channels_last) for k, m in models.items()}
    fused = {"fused": True} if device.type == "cuda" else {}
    betas = (cfg.optim.beta1, cfg.optim.beta2)
    opt_g = torch.optim.Adam(models["generator"].parameters(), lr=cfg.optim.lr_g, betas=betas, **fused)
    d_params = [p for k, m in models.items() if k != "generator" for p in m.parameters()]
    opt_d = torch.optim.Adam(d_params, lr=cfg.optim.lr_d, betas=betas, **fused) if d_params else None
    return TrainState(cfg, device, models, opt_g, opt_d)


def train_step(state: TrainState, real: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """One D update then one G update. real: (B, 3, S, S) in [-1, 1]; mask: (B, 1, S, S), 1 = hole."""
    cfg, m = state.cfg, state.models
    G, Dg, Dl = m["generator"], m.get("d_global"), m.get("d_local")
    amp = state.device.type == "cuda" and cfg.train.amp
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    logs: dict[str, torch.Tensor] = {}

    with autocast:
        gen = generate(G, real, mask, cfg)                         # (B, 3, S, S)
    if state.opt_d is not None:                                    # 1. discriminators, on a detached fake
        fake = gen.detach()
        with autocast:
            d_total = 0.0
            if Dl is not None:
                logs["d_local"] = losses.d_loss(Dl(real * mask), Dl(fake * mask))
                d_total = d_total + logs["d_local"]
            if Dg is not None:
                logs["d_global"] = losses.d_loss(Dg(real), Dg(fake))
                d_total = d_total + logs["d_global"]
        state.opt_d.zero_grad(set_to_none=True)
        d_total.backward()
        state.opt_d.step()

    with autocast:                                                 # 2. generator
        rec = losses.reconstruction_losses(gen, real, mask, cfg.loss.w1, cfg.loss.w2, cfg.loss.mse_norm)
        g_total = rec["mse_total"]
        if Dg is not None:
            logs["g_adv_global"] = losses.g_adv_loss(Dg(gen))
            g_total = g_total + cfg.loss.w3 * logs["g_adv_global"]
        if Dl is not None:
            logs["g_adv_local"] = losses.g_adv_loss(Dl(gen * mask))
            g_total = g_total + cfg.loss.w4 * logs["g_adv_local"]
    state.opt_g.zero_grad(set_to_none=True)
    g_total.backward()
    state.opt_g.step()
    state.step += 1

    logs.update(rec, g_total=g_total, hole_mse=losses.hole_mse(gen.detach(), real, mask))
    return {k: v.detach() for k, v in logs.items()}


def training_masks(cfg: Config, step: int, batch: int) -> torch.Tensor:
    return make_masks(cfg.mask.kind, batch, cfg.model.image_size, step_generator(cfg.train.seed, step), cfg.mask)


@torch.no_grad()
def sample_grid(state: TrainState, real: torch.Tensor, mask: torch.Tensor) -> "np.ndarray":  # noqa: F821
    """Paper Figure 3 layout: one row per image, real | corrupted | reconstructed (prediction in the hole)."""
    G = state.models["generator"]
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
    run_dir.mkdir(parents=True, exist_ok=True)


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


def train(cfg: Config, run_dir: Path, sources: list[Path] | None = None, resume: bool = False,
          overwrite: bool = False, progress: bool = True, log=print) -> dict:
    """Train (or resume) a run; returns a summary dict (step, interrupted, skipped files, timings)."""
    run_dir = Path(run_dir)
    cfg.validate()
    prepare_run_dir(run_dir, resume, overwrite)
    device = pick_device(cfg.train.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    state = build_state(cfg, device)
    if resume:
        ckpt = load_checkpoint(run_dir / "checkpoints" / "latest.pt", map_location=device)
        check_compatible(ckpt, config_to_dict(cfg), "the config of this resumed run")
        state.load_state_dict(ckpt)
        sources = sources or [Path(s) for s in ckpt.get("sources", [])]
        del ckpt
    if sources:
        files = gather_files(sources)
        state.sources = [str(s) for s in sources]
    else:
        files = embedded_photos()
        state.sources = []
        log(f"no --data: training on {len(files)} sample photos shipped with scikit-image")
    save_config(cfg, run_dir / "config.json")
    total = cfg.train.steps
    if state.step >= total:
        log(f"{run_dir}: already at step {state.step} of {total}; raise --steps to train further")
        return {"step": state.step, "interrupted": False, "skipped_files": [], "images": len(files)}

    ds = ImageFolder(files, cfg.model.image_size, cfg.data, seed=cfg.train.seed)
    workers = min(cfg.data.workers, len(files))
    loader = make_loader(ds, cfg.train.batch_size, state.step, total, workers, pin_memory=device.type == "cuda")
    if workers > 0:
        loader.worker_init_fn = _worker_init

    # fixed images and masks for the sample grids: stream positions 0..k-1, seeded masks
    k = min(8, cfg.train.batch_size)
    fixed_real = torch.stack([ds[i][0] for i in range(k)]).to(device)
    fixed_mask = make_masks(cfg.mask.kind, k, cfg.model.image_size, step_generator(cfg.train.seed, 0, 2),
                            cfg.mask).to(device)

    skipped: set[str] = set()
    metrics_path = run_dir / "metrics.jsonl"
    interrupted = False
    t_start = t_last = time.perf_counter()
    seen_since_log = 0
    for m in state.models.values():
        m.train()
    bar = tqdm(total=total, initial=state.step, disable=not progress, unit="step", dynamic_ncols=True,
               file=sys.stderr)
    with _StopFlag() as stop, open(metrics_path, "a") as metrics_file:
        for real, bad in loader:
            skipped.update(bad)
            real = real.to(device, non_blocking=True)
            mask = training_masks(cfg, state.step, real.shape[0]).to(device, non_blocking=True)
            if device.type == "cuda":
                real = real.contiguous(memory_format=torch.channels_last)
            logs = train_step(state, real, mask)
            seen_since_log += real.shape[0]

            check_now = device.type == "cpu" or state.step % cfg.train.log_every == 0 or state.step == total
            if check_now and not torch.isfinite(logs["g_total"] + sum(logs.values())):
                bad_terms = [k for k, v in logs.items() if not torch.isfinite(v)]
                raise NonFiniteLossError(
                    f"non-finite loss at step {state.step} ({', '.join(bad_terms)}); stopped without "
                    f"overwriting {run_dir / 'checkpoints' / 'latest.pt'} (the last good checkpoint). "
                    "Lower the learning rates (--set optim.lr_g=...) or the adversarial weights")
            if state.step % cfg.train.log_every == 0 or state.step == total:
                now = time.perf_counter()
                row = {"step": state.step, "epoch": state.step * cfg.train.batch_size / len(files),
                       **{k: round(float(v), 7) for k, v in logs.items()},
                       "images_per_s": round(seen_since_log / max(now - t_last, 1e-9), 2),
                       "time_s": round(now - t_start, 3)}
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
                t_last, seen_since_log = now, 0
                bar.set_postfix(hole=_fmt(row["hole_mse"]), g=_fmt(row["g_total"]),
                                d=_fmt(row.get("d_local", row.get("d_global", 0.0))),
                                img_s=f"{row['images_per_s']:.0f}")
            if state.step % cfg.train.sample_every == 0 or state.step == total:
                save_png(sample_grid(state, fixed_real, fixed_mask), run_dir / "samples" / f"step_{state.step:06d}.png")
            if state.step % cfg.train.ckpt_every == 0 and state.step != total:
                save_checkpoint(run_dir / "checkpoints" / "latest.pt", state.state_dict())
                weights = {k: m.state_dict() for k, m in state.models.items()}
                save_checkpoint(run_dir / "checkpoints" / f"step_{state.step:06d}.pt",
                                dict(weights, step=state.step, config=config_to_dict(cfg)))
            bar.update(1)
            if stop.signum is not None:
                interrupted = True
                break
        bar.close()
        save_checkpoint(run_dir / "checkpoints" / "latest.pt", state.state_dict())

    if skipped:
        (run_dir / "skipped_files.txt").write_text("".join(f"{p}\n" for p in sorted(skipped)))
        log(f"skipped {len(skipped)} unreadable file(s) of {len(files)}; list in {run_dir / 'skipped_files.txt'}")
    if interrupted:
        log(f"interrupted at step {state.step}: saved {run_dir / 'checkpoints' / 'latest.pt'}; "
            f"continue with --resume")
    return {"step": state.step, "interrupted": interrupted, "skipped_files": sorted(skipped),
            "images": len(files), "seconds": round(time.perf_counter() - t_start, 2)}
