"""One optimisation step of the inpainting GAN (paper section 5) and the state it updates.

    state = build_state(cfg, torch.device("cpu"))
    logs = train_step(state, real, mask)          # real: (B, 3, S, S) in [-1, 1]; mask: (B, 1, S, S), 1 = hole

One step (pix2pix-style explicit GAN step):
  1. x_in = I * (1 - M) (+ M as a 4th channel if model.mask_channel); out = G(x_in);
     I_gen = out (M1/M2), or for M3 the corrupted image with the predicted patch pasted into the hole;
  2. D step on I_gen.detach(): L_D_l (+ L_D_g), one Adam (lr_d) over both discriminators
     (``train.critic_steps`` times; with ``loss.adversarial=wgan-gp`` plus the gradient penalties);
  3. G step: L_G = w1 L_full + w2 L_masked + w3 (-log D_g(I_gen)) + w4 (-log D_l(I_gen * M))
     (the -log D terms become -D for hinge / wgan-gp, :mod:`.losses`).

In the G step the discriminators' parameters are frozen: their gradients there would be thrown away
(the D step starts with ``zero_grad``), so this only skips work and changes no number. Both learning
rates follow ``optim.schedule`` as a function of the step (:func:`lr_factor`); with ``train.ema`` > 0 the
state also keeps a moving average of the generator (:func:`update_ema`), which inference uses.
With ``train.amp`` (default) the forward passes run under bf16 autocast where the device computes bf16
natively: CUDA, or a CPU with AVX-512 BF16 or AMX (:func:`resolve_precision`); elsewhere, or with
``train.amp=false``, everything is fp32. Losses, metrics, batch-norm statistics, the optimiser state and
the EMA stay fp32 on both paths. With bf16 the models and batches are channels_last (measured faster on
CPU and CUDA).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from . import distributed

from . import losses
from ..checkpoint import generator_weights
from ..config import Config, config_to_dict
from ..errors import InpaintsslError
from .masks import make_masks, step_generator
from .models import build_models
from .prefill import telea_fill


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InpaintsslError(f"device {name!r} (--device or train.device) but CUDA is not available here; "
                              "use --device cpu")
    return torch.device(name)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (AVX-512 BF16 or AMX tiles); emulated bf16 is slower
    than fp32, so only these get the bf16 path. Read from the CPU's feature flags in ``/proc/cpuinfo``
    (``avx512_bf16``, ``amx_bf16``: public, unlike torch's ``torch.cpu._is_*`` helpers); where there is no
    such file (macOS, Windows) the answer is False and training runs in fp32."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", text) is not None


def resolve_precision(device: torch.device, amp: bool = True) -> str:
    """"bf16" (autocast) or "fp32" for training and inference on ``device``; ``amp=False`` forces fp32."""
    if not amp:
        return "fp32"
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """bf16 autocast on ``device`` for precision "bf16", a no-op context for "fp32"."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def paste_patch(corrupted: torch.Tensor, patch: torch.Tensor) -> torch.Tensor:
    """M3: put the (B, 3, S/2, S/2) patch into the central hole of the (B, 3, S, S) corrupted image."""
    s, p = corrupted.shape[-1], patch.shape[-1]
    a = (s - p) // 2
    return F.pad(patch, (a, s - p - a, a, s - p - a)) + corrupted


def generator_input(real: torch.Tensor, mask: torch.Tensor, mask_channel: bool, hole_fill: str = "zero") -> torch.Tensor:
    """What the generator reads: the image with its hole set to 0 (mid-gray; ``hole_fill="zero"``, the
    paper's I * (1 - M)) or to OpenCV's Telea fill of the context (``"telea"``, :mod:`.prefill`),
    plus the mask as a 4th channel with ``mask_channel``."""
    if hole_fill == "telea":
        x = telea_fill(real, mask)
    else:
        x = real * (1 - mask)                                      # (B, 3, S, S), hole = 0 (mid-gray)
    return torch.cat([x, mask], dim=1) if mask_channel else x


def generate(G: torch.nn.Module, real: torch.Tensor, mask: torch.Tensor, cfg: Config) -> torch.Tensor:
    """I_gen = G(I * (1 - M)) as a full (B, 3, S, S) image (the patch pasted in for M3).

    G also gets the mask, which only a partial-convolution encoder reads (``model.conv=partial``)."""
    out = G(generator_input(real, mask, cfg.model.mask_channel, cfg.model.hole_fill), mask)
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
    # forward callables for training (DDP-wrapped and/or compiled versions of ``models``; empty = the
    # models themselves). ``d_frozen``: the discriminators as called in the G step (no DDP gradient sync)
    runners: dict = field(default_factory=dict)
    d_frozen: dict = field(default_factory=dict)
    ema: torch.nn.Module | None = None                 # moving average of the generator (train.ema > 0)
    precision: str = "fp32"                            # "bf16" (autocast) or "fp32": resolve_precision
    _ema_pairs: tuple | None = None                    # (ema floats, model floats, ema others, model others)
    _d_params: list = field(default_factory=list)      # discriminator parameters, frozen in the G step

    def weights(self) -> dict:
        """The models' state dicts (+ ``generator_ema``), as saved in every checkpoint."""
        out = {k: m.state_dict() for k, m in self.models.items()}
        if self.ema is not None:
            out["generator_ema"] = self.ema.state_dict()
        return out

    def state_dict(self) -> dict:
        state = self.weights()
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
        if self.ema is not None:
            self.ema.load_state_dict(generator_weights(ckpt))
        self.opt_g.load_state_dict(ckpt["opt_g"])
        if self.opt_d is not None:
            self.opt_d.load_state_dict(ckpt["opt_d"])
        if "torch_rng" in ckpt:
            torch.set_rng_state(ckpt["torch_rng"].cpu())
        self.step = int(ckpt["step"])
        # load_state_dict restored the saved learning rates: the config (which --set may change) wins
        set_learning_rates(self)


def build_state(cfg: Config, device: torch.device, dist_info: "distributed.DistInfo | None" = None) -> TrainState:
    torch.manual_seed(cfg.train.seed)
    models = {k: m.to(device) for k, m in build_models(cfg.model).items()}
    precision = resolve_precision(device, cfg.train.amp)
    if precision == "bf16":
        models = {k: m.to(memory_format=torch.channels_last) for k, m in models.items()}
    runners, d_frozen = {}, {}
    if dist_info is not None and dist_info.enabled:
        models, runners = distributed.wrap_models(models, device, dist_info)
        d_frozen = {k: m for k, m in models.items() if k != "generator"}
    if cfg.train.compile:
        runners = {k: torch.compile(runners.get(k, m)) for k, m in models.items()}
        d_frozen = {k: torch.compile(m) for k, m in d_frozen.items()} if d_frozen else \
            {k: r for k, r in runners.items() if k != "generator"}
    fused = {"fused": True} if device.type == "cuda" else {}
    betas = (cfg.optim.beta1, cfg.optim.beta2)
    opt_g = torch.optim.Adam(models["generator"].parameters(), lr=cfg.optim.lr_g, betas=betas, **fused)
    d_params = [p for k, m in models.items() if k != "generator" for p in m.parameters()]
    opt_d = torch.optim.Adam(d_params, lr=cfg.optim.lr_d, betas=betas, **fused) if d_params else None
    ema = copy.deepcopy(models["generator"]).eval().requires_grad_(False) if cfg.train.ema > 0 else None
    return TrainState(cfg, device, models, opt_g, opt_d, runners=runners, d_frozen=d_frozen, ema=ema,
                      precision=precision, _d_params=d_params)


def lr_factor(cfg: Config, step: int) -> float:
    """Multiplier of both learning rates for the update that takes the run from ``step`` to ``step + 1``."""
    if cfg.optim.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(step, cfg.train.steps) / cfg.train.steps))
    return 1.0


def set_learning_rates(state: TrainState) -> None:
    f = lr_factor(state.cfg, state.step)
    for opt, lr in ((state.opt_g, state.cfg.optim.lr_g), (state.opt_d, state.cfg.optim.lr_d)):
        for group in (opt.param_groups if opt is not None else []):
            group["lr"] = lr * f


def ema_pairs(ema: torch.nn.Module, model: torch.nn.Module) -> tuple[list, list, list, list]:
    """The tensors :func:`update_ema` updates, listed once: (ema floats, model floats, ema ints, model ints)."""
    pairs = list(zip(ema.state_dict().values(), model.state_dict().values()))
    floats = [p for p in pairs if p[0].dtype.is_floating_point]
    others = [p for p in pairs if not p[0].dtype.is_floating_point]
    return [e for e, _ in floats], [m for _, m in floats], [e for e, _ in others], [m for _, m in others]


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int,
               pairs: tuple | None = None) -> None:
    """ema <- d * ema + (1 - d) * model over weights and batch-norm statistics, d = min(decay, (1+step)/(10+step)).

    One ``_foreach_lerp_`` over all floating tensors; integer buffers (batch counts) are copied.
    ``pairs`` is :func:`ema_pairs` computed once (the training state keeps it)."""
    d = min(decay, (1 + step) / (10 + step))
    e_f, m_f, e_i, m_i = pairs if pairs is not None else ema_pairs(ema, model)
    if e_f:
        torch._foreach_lerp_(e_f, m_f, 1 - d)
    for e, m in zip(e_i, m_i):
        e.copy_(m)


@torch.no_grad()
def recompute_bn_stats(model: torch.nn.Module, batches) -> int:
    """Replace every batch norm's running statistics by those of ``batches``: inputs of ``model``, each a
    tensor or a tuple of arguments (the generator's ``(x, mask)``).

    :func:`update_ema` averages the running statistics along with the weights, but the average of the
    statistics is not the statistics of the averaged weights, which are what eval mode needs. Here each
    layer is reset and the batches run through ``model`` in train mode with ``momentum=None`` (torch's
    cumulative average), no grad, fp32: running_mean becomes the mean of the batch means and running_var
    the mean of the (unbiased) batch variances. Weights do not change, nor does the mode the model was in.
    Under a process group synchronised batch norm makes them the statistics of the global batches, so
    every rank must call it with its shard. Returns the number of batches (at least one is needed)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
           and m.track_running_stats]
    momenta, was_training = [m.momentum for m in bns], model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    n = 0
    try:
        for args in batches:
            model(*(args if isinstance(args, tuple) else (args,)))
            n += 1
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        model.train(was_training)
    if n == 0:
        raise ValueError("recompute_bn_stats needs at least one batch")
    return n


def _gradient_penalties(models: dict, real: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor,
                        logs: dict) -> torch.Tensor:
    """WGAN-GP: the sum of the local D's penalty (on the masked images, gradient inside the hole) and the
    global D's (whole images); each is logged as ``gp_local`` / ``gp_global``.

    Computed on the plain modules (``models``, not the DDP or compiled runners): the double backward then
    runs eagerly (torch.compile has none), and under DDP the penalty's weight gradients still land in the
    parameters' ``.grad`` that DDP all-reduces in the backward that follows."""
    total = 0.0
    if "d_local" in models:
        logs["gp_local"] = losses.gradient_penalty(models["d_local"], real * mask, fake * mask, mask)
        total = total + logs["gp_local"]
    if "d_global" in models:
        logs["gp_global"] = losses.gradient_penalty(models["d_global"], real, fake)
        total = total + logs["gp_global"]
    return total


def adversarial_shares(cfg: Config, logs: dict, gen: torch.Tensor, rec_total: torch.Tensor,
                       g_total: torch.Tensor) -> dict[str, torch.Tensor]:
    """How much of L_G is adversarial (log steps only: it costs two backward passes down to I_gen, not
    through G). ``g_adv_share`` = (w3 adv_g + w4 adv_l) / L_G (with hinge / wgan-gp the adversarial term
    can be negative, and so can the share); ``g_adv_grad_share`` = ||d adv / d I_gen|| / ||d L_G / d I_gen||,
    norms over the whole batch. Empty without discriminators."""
    terms = [w * logs[k] for w, k in ((cfg.loss.w3, "g_adv_global"), (cfg.loss.w4, "g_adv_local")) if k in logs]
    if not terms:
        return {}
    adv = sum(terms)
    (grad_adv,) = torch.autograd.grad(adv, gen, retain_graph=True)
    (grad_rec,) = torch.autograd.grad(rec_total, gen, retain_graph=True)
    grad_adv, grad_all = grad_adv.float(), grad_adv.float() + grad_rec.float()
    return {"g_adv_share": (adv / g_total).detach(),
            "g_adv_grad_share": grad_adv.norm() / grad_all.norm().clamp_min(1e-30)}


def train_step(state: TrainState, real: torch.Tensor, mask: torch.Tensor,
               metrics: bool = True) -> dict[str, torch.Tensor]:
    """One D update then one G update. real: (B, 3, S, S) in [-1, 1]; mask: (B, 1, S, S), 1 = hole.

    ``metrics=False`` skips the monitoring-only ``hole_mse``, ``g_adv_share`` and ``g_adv_grad_share`` (the
    loop asks for them on log steps only). ``train.critic_steps`` > 1 repeats the D update on the same
    batch and the same (detached) fake: the generator does not change between them; only WGAN-GP's
    interpolation is drawn afresh. (The WGAN-GP paper draws a new batch per critic step; one data batch
    per step keeps the loop's data order, resume and DDP sharding as they are.)"""
    cfg, m = state.cfg, state.models
    run = {k: state.runners.get(k, mod) for k, mod in m.items()}
    G, Dg, Dl = run["generator"], run.get("d_global"), run.get("d_local")
    cast = autocast(state.device, state.precision)
    logs: dict[str, torch.Tensor] = {}
    set_learning_rates(state)

    kind = cfg.loss.adversarial
    with cast:
        gen = generate(G, real, mask, cfg)                         # (B, 3, S, S)
    if state.opt_d is not None:                                    # 1. discriminators, on a detached fake
        fake = gen.detach()
        for _ in range(cfg.train.critic_steps):                    # extra critic steps: same batch and fake
            with cast:
                d_total = 0.0
                if Dl is not None:
                    logs["d_local"] = losses.d_loss(Dl(real * mask), Dl(fake * mask), kind)
                    d_total = d_total + logs["d_local"]
                if Dg is not None:
                    logs["d_global"] = losses.d_loss(Dg(real), Dg(fake), kind)
                    d_total = d_total + logs["d_global"]
            if kind == "wgan-gp":
                d_total = d_total + cfg.loss.gp_weight * _gradient_penalties(m, real, fake, mask, logs)
            state.opt_d.zero_grad(set_to_none=True)
            d_total.backward()
            state.opt_d.step()

    # 2. generator, with the discriminators frozen: no weight gradients for D (they would be discarded)
    Dg, Dl = state.d_frozen.get("d_global", Dg), state.d_frozen.get("d_local", Dl)
    frozen = [p for p in state._d_params if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        with cast:
            rec = losses.reconstruction_losses(gen, real, mask, cfg.loss.w1, cfg.loss.w2, cfg.loss.mse_norm)
            g_total = rec["mse_total"]
            if Dg is not None:
                logs["g_adv_global"] = losses.g_adv_loss(Dg(gen), kind)
                g_total = g_total + cfg.loss.w3 * logs["g_adv_global"]
            if Dl is not None:
                logs["g_adv_local"] = losses.g_adv_loss(Dl(gen * mask), kind)
                g_total = g_total + cfg.loss.w4 * logs["g_adv_local"]
        if metrics:
            logs.update(adversarial_shares(cfg, logs, gen, rec["mse_total"], g_total))
        state.opt_g.zero_grad(set_to_none=True)
        g_total.backward()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    state.opt_g.step()
    if state.ema is not None:
        if state._ema_pairs is None:
            state._ema_pairs = ema_pairs(state.ema, m["generator"])
        update_ema(state.ema, m["generator"], cfg.train.ema, state.step, state._ema_pairs)
    state.step += 1

    logs.update(rec, g_total=g_total)
    if metrics:
        logs["hole_mse"] = losses.hole_mse(gen.detach(), real, mask)
    return {k: v.detach() for k, v in logs.items()}


def training_masks(cfg: Config, step: int, batch: int) -> torch.Tensor:
    return make_masks(cfg.mask.kind, batch, cfg.model.image_size, step_generator(cfg.train.seed, step), cfg.mask)
