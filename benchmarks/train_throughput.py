"""Training throughput: the project's step vs a plain eager fp32 version of the same networks, same run.

    python benchmarks/train_throughput.py --device cpu                      # m1, batch 16, 2 cores: minutes
    python benchmarks/train_throughput.py --device cuda --batch 1024 --compile
    python benchmarks/train_throughput.py --device cuda --cache cache/ --e2e-steps 200   # + end to end

What is timed (images per second, median of ``--rounds`` interleaved rounds so both versions see the
same machine load):

* project: ``inpaintssl.gan.step.train_step`` on a state from ``build_state``: bf16 autocast and
  channels_last where the device computes bf16 natively (CUDA, or a CPU with AVX-512 BF16 / AMX; the
  header prints the resolved precision), on CUDA also fused Adam, cuDNN benchmark, TF32; ``--compile``:
  torch.compile (on CPU, inductor needs a C++ compiler); with the paper's centre hole and a fixed random
  batch already on the device;
* plain: the same architecture written below with its own nn.Modules (same layers, channels, batch-norm
  placement: the parameter counts are checked equal), plain ``torch.optim.Adam``, fp32, NCHW, no
  autocast, PyTorch's default backend flags; the textbook step (D on a detached fake, then G; the G step
  back-propagates into D's weights too, as most GAN code does);
* ``--cache DIR``: ``inpaintssl.gan.train.train`` end to end from a prepared cache (data, masks, logging),
  images/s from its metrics.jsonl, the first log interval (warm-up, compilation) left out.

On CUDA it also measures the card's dense bf16 matmul rate (8192^3 GEMMs) and reports the fraction of
it that the project step reaches, counting the step's FLOPs with torch.utils.flop_counter.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from inpaintssl.config import ModelConfig

from inpaintssl.presets import get_preset
from inpaintssl.gan.step import build_state, train_step, training_masks
from inpaintssl.gan.train import train


# ----------------------------------------------------------------------------- plain reference version
def plain_block(conv, ch, norm, act):
    return nn.Sequential(conv, *([nn.BatchNorm2d(ch)] if norm else []), act)


class PlainGenerator(nn.Module):
    """U-Net encoder-decoder of paper Table 1, written out directly (no shared code with models.py)."""

    def __init__(self, m: ModelConfig):
        super().__init__()
        n = int(math.log2(m.image_size // 4))
        chans = [m.width * (1, 1, 2, 4, 8, 8, 8, 8)[i] for i in range(n)]
        self.skips = m.skips
        self.down = nn.ModuleList()
        prev = 3 + int(m.mask_channel)
        for i, ch in enumerate(chans):
            self.down.append(plain_block(nn.Conv2d(prev, ch, 4, 2, 1, bias=i == 0), ch, i > 0, nn.LeakyReLU(0.2)))
            prev = ch
        self.mid = plain_block(nn.Conv2d(prev, m.bottleneck, 4, 1, 0, bias=False), m.bottleneck, True,
                               nn.LeakyReLU(0.2))
        self.up = nn.ModuleList([plain_block(nn.ConvTranspose2d(m.bottleneck, chans[-1], 4, 1, 0, bias=False),
                                             chans[-1], True, nn.ReLU())])
        outs = chans[-2::-1] + [3] if m.predict == "image" else chans[-2::-1][:n - 2] + [3]
        prev = chans[-1]
        for j, ch in enumerate(outs):
            last = j == len(outs) - 1
            extra = chans[-1 - j] if m.skips else 0
            self.up.append(plain_block(nn.ConvTranspose2d(prev + extra, ch, 4, 2, 1, bias=last), ch, not last,
                                       nn.Tanh() if last else nn.LeakyReLU(0.2)))
            prev = ch

    def forward(self, x):
        feats = []
        for layer in self.down:
            x = layer(x)
            feats.append(x)
        h = self.up[0](self.mid(x))
        for j, layer in enumerate(self.up[1:]):
            h = layer(torch.cat([h, feats[-1 - j]], 1) if self.skips else h)
        return h


class PlainDiscriminator(nn.Module):
    def __init__(self, size: int, width: int, local: bool):
        super().__init__()
        n = int(math.log2(size // 4))
        layers, prev = [], 3
        for i in range(n):
            ch = width * (1, 2, 4, 8, 8, 8, 8, 8)[i]
            layers.append(plain_block(nn.Conv2d(prev, ch, 4, 2, 1, bias=i == 0), ch, i > 0, nn.LeakyReLU(0.2)))
            prev = ch
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(prev * 16, 1)) if local else nn.Conv2d(prev, 1, 4, 2, 0)

    def forward(self, x):
        return self.head(self.body(x)).flatten()


class PlainTrainer:
    """fp32 eager, plain Adam, the textbook GAN step."""

    def __init__(self, cfg, device):
        m, o = cfg.model, cfg.optim
        self.cfg, self.G = cfg, PlainGenerator(m).to(device)
        self.Ds = {}
        if m.global_d:
            self.Ds["global"] = PlainDiscriminator(m.image_size, m.d_width, local=False).to(device)
        if m.local_d:
            self.Ds["local"] = PlainDiscriminator(m.image_size, m.d_width, local=True).to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=o.lr_g, betas=(o.beta1, o.beta2))
        self.opt_d = torch.optim.Adam([p for d in self.Ds.values() for p in d.parameters()], lr=o.lr_d,
                                      betas=(o.beta1, o.beta2))

    def params(self) -> int:
        return sum(p.numel() for mod in [self.G, *self.Ds.values()] for p in mod.parameters())

    def step(self, real, mask):
        c, bce = self.cfg, F.binary_cross_entropy_with_logits
        x = real * (1 - mask)
        out = self.G(torch.cat([x, mask], 1) if c.model.mask_channel else x)
        if c.model.predict == "patch":                                  # M3: paste the patch into the hole
            pad = (real.shape[-1] - out.shape[-1]) // 2
            out = F.pad(out, (pad,) * 4) + x
        fake = out.detach()
        d_loss = 0.0
        for name, D in self.Ds.items():
            r, f = (real * mask, fake * mask) if name == "local" else (real, fake)
            lr, lf = D(r), D(f)
            d_loss = d_loss + bce(lr, torch.ones_like(lr)) + bce(lf, torch.zeros_like(lf))
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()
        n = out.numel()
        err = out - real
        g_loss = c.loss.w1 * (err * (1 - mask)).pow(2).sum() / n + c.loss.w2 * (err * mask).pow(2).sum() / n
        for name, D in self.Ds.items():
            logits = D(out * mask if name == "local" else out)
            g_loss = g_loss + (c.loss.w4 if name == "local" else c.loss.w3) * bce(logits, torch.ones_like(logits))
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()


# ----------------------------------------------------------------------------- measurement helpers
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def set_backend_flags(device, project: bool):
    """The project's CUDA flags (as train() sets them) or PyTorch's defaults for the plain version."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = project
        torch.backends.cuda.matmul.allow_tf32 = project
        torch.backends.cudnn.allow_tf32 = True                      # PyTorch's default for convolutions


def time_steps(fn, steps, device) -> float:
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return time.perf_counter() - t


def count_flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def bf16_matmul_rate(device, n=8192, iters=30) -> float:
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    seconds = time_steps(lambda: a @ b, iters, device)
    return 2 * n ** 3 * iters / seconds


def end_to_end(cfg, cache: Path, steps: int, log_every: int) -> float:
    """images/s of train() from a prepared cache, first log interval excluded."""
    cfg.train.steps, cfg.train.log_every = steps, log_every
    cfg.train.sample_every = cfg.train.ckpt_every = 10 ** 9
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, Path(tmp) / "run", [cache], progress=False, log=lambda *_: None)
        rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_s"] for r in rows[1:]] or [rows[0]["images_per_s"]]
    return statistics.median(rates)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--preset", default="m1")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: 16 on CPU, 1024 on CUDA)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per round (default: 2 CPU, 30 CUDA)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 1 CPU, 10 CUDA)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    ap.add_argument("--compile", action="store_true", help="project step with train.compile=true")
    ap.add_argument("--no-plain", action="store_true", help="skip the plain version (e.g. when it would not fit)")
    ap.add_argument("--cache", type=Path, default=None, help="also time train() end to end from this cache")
    ap.add_argument("--e2e-steps", type=int, default=None,
                    help="steps of the end-to-end run (default: 10 log intervals)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("--device cuda: CUDA is not available here")
    device = torch.device(args.device)
    batch = args.batch or (1024 if cuda else 16)
    steps, warmup = args.steps or (30 if cuda else 2), args.warmup if args.warmup is not None else (10 if cuda else 1)
    cfg = get_preset(args.preset)
    cfg.train.batch_size, cfg.train.device, cfg.train.compile = batch, args.device, args.compile
    name = torch.cuda.get_device_name(device) if cuda else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {name}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    print(f"preset {args.preset} ({cfg.model.image_size} px), batch {batch}, {steps} timed steps x {args.rounds} "
          f"rounds after {warmup} warm-up steps, compile={args.compile}")

    torch.manual_seed(0)
    S = cfg.model.image_size
    real = (torch.rand(batch, 3, S, S, device=device) * 2 - 1)
    mask = training_masks(cfg, 0, batch).to(device)

    set_backend_flags(device, True)
    state = build_state(cfg, device)
    channels_last = state.precision == "bf16"                       # what train() does with the batches
    real_p = real.contiguous(memory_format=torch.channels_last) if channels_last else real
    print(f"project: precision {state.precision}, channels_last {channels_last}, compile {args.compile}; "
          "plain: fp32, NCHW, eager")
    project = lambda: train_step(state, real_p, mask, metrics=False)          # noqa: E731
    n_project = sum(p.numel() for m in state.models.values() for p in m.parameters())
    plain = plain_t = None
    if not args.no_plain:
        plain_t = PlainTrainer(cfg, device)
        if plain_t.params() != n_project:
            sys.exit(f"plain version has {plain_t.params()} parameters, the project {n_project}: not the same network")
        plain = lambda: plain_t.step(real, mask)                               # noqa: E731
    print(f"parameters: {n_project:,} (both versions)")

    results = {"device": name, "preset": args.preset, "batch": batch, "compile": args.compile,
               "precision": state.precision, "channels_last": channels_last}
    t0 = time.perf_counter()
    time_steps(project, warmup, device)
    results["project_warmup_s"] = round(time.perf_counter() - t0, 2)
    print(f"project warm-up ({warmup} steps{', compilation included' if args.compile else ''}): "
          f"{results['project_warmup_s']:.1f} s")
    if plain:
        set_backend_flags(device, False)
        try:
            time_steps(plain, warmup, device)
        except torch.cuda.OutOfMemoryError:
            print(f"plain: out of GPU memory at batch {batch} in fp32; rerun with a smaller --batch to compare")
            plain = plain_t = None
            torch.cuda.empty_cache()
    rates = {"project": [], "plain": []}
    for _ in range(args.rounds):
        set_backend_flags(device, True)
        rates["project"].append(batch * steps / time_steps(project, steps, device))
        if plain:
            set_backend_flags(device, False)
            rates["plain"].append(batch * steps / time_steps(plain, steps, device))
    set_backend_flags(device, True)
    for key in ("project", "plain"):
        if rates[key]:
            results[f"{key}_images_per_s"] = round(statistics.median(rates[key]), 2)
            print(f"{key:8s} {results[f'{key}_images_per_s']:10.2f} images/s   "
                  f"(rounds: {', '.join(f'{r:.2f}' for r in rates[key])})")
    if plain:
        results["ratio"] = round(results["project_images_per_s"] / results["plain_images_per_s"], 3)
        print(f"ratio project/plain: {results['ratio']:.3f}")

    # FLOPs of one step per image, counted on a small batch (FLOPs scale linearly with the batch)
    k = min(batch, 8)
    small_real, small_mask = real_p[:k], mask[:k]
    flop_state = build_state(get_preset(args.preset), device)
    flops = count_flops(lambda: train_step(flop_state, small_real, small_mask, metrics=False))
    results["project_gflop_per_image"] = round(flops / k / 1e9, 4)
    msg = f"FLOPs per image and step: project {results['project_gflop_per_image']:.4g} GFLOP"
    if plain:
        flop_plain = PlainTrainer(cfg, device)
        flops = count_flops(lambda: flop_plain.step(real[:k], mask[:k]))
        results["plain_gflop_per_image"] = round(flops / k / 1e9, 4)
        del flop_plain
        msg += (f", plain {results['plain_gflop_per_image']:.4g} GFLOP (it also back-propagates into D's weights "
                "in the G step)")
    print(msg)
    achieved = results["project_images_per_s"] * results["project_gflop_per_image"] * 1e9
    results["project_tflop_per_s"] = round(achieved / 1e12, 3)
    print(f"project step sustains {achieved / 1e9:.1f} GFLOP/s")
    if cuda:
        peak = bf16_matmul_rate(device)
        results["bf16_matmul_tflop_per_s"] = round(peak / 1e12, 1)
        results["fraction_of_bf16_peak"] = round(achieved / peak, 4)
        print(f"bf16 matmul rate of this card: {peak / 1e12:.1f} TFLOP/s; project step reaches "
              f"{100 * achieved / peak:.1f}% of it")
    if args.cache is not None:
        del state, flop_state, plain, plain_t, project             # free the GPU for the real run
        if cuda:
            torch.cuda.empty_cache()
        e2e_cfg = get_preset(args.preset)
        e2e_cfg.train.batch_size, e2e_cfg.train.device, e2e_cfg.train.compile = batch, args.device, args.compile
        log_every = 10 if cuda else 2
        rate = end_to_end(e2e_cfg, args.cache, args.e2e_steps or 10 * log_every, log_every)
        results["end_to_end_images_per_s"] = round(rate, 2)
        print(f"end to end from the cache (train(), {args.e2e_steps or 10 * log_every} steps): {rate:.2f} images/s"
              f"; one COCO-2014 train epoch (82,783 images) would take {82783 / rate:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
