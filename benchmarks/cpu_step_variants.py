"""Which CPU-side changes speed up one training step? Measures variants of the step on the same models.

    python benchmarks/cpu_step_variants.py --preset m1 --batch 8 --rounds 4
    python benchmarks/cpu_step_variants.py --preset m1-64 --batch 32 --variants base,freeze,cl,fused

Each variant builds its own state with ``inpaintssl.gan.step.build_state`` and runs the textbook step
(``base``: D on a detached fake, then G, with D's weight gradients computed in the G step and the
hole MSE every step) plus the listed changes, joined with ``+``:

* ``freeze``  D's parameters frozen in the G step (what train_step does now; no number changes);
* ``nohole``  no monitoring hole MSE (train_step computes it on log steps only);
* ``cl``      channels_last models and inputs (changes convolution rounding);
* ``fused`` / ``foreach``  Adam implementation (fused differs from the for-loop Adam in the last bit).

Timing is process CPU time with ONE intra-op thread, so other jobs on a shared machine change the
numbers little; rounds are interleaved and the median images per CPU-second is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from inpaintssl.gan import losses
from inpaintssl.presets import get_preset
from inpaintssl.gan.step import build_state, generate, training_masks


def textbook_step(state, real, mask, freeze: bool, hole: bool):
    cfg, m = state.cfg, state.models
    G, Dg, Dl = m["generator"], m.get("d_global"), m.get("d_local")
    gen = generate(G, real, mask, cfg)
    fake = gen.detach()
    d_total = 0.0
    if Dl is not None:
        d_total = d_total + losses.d_loss(Dl(real * mask), Dl(fake * mask))
    if Dg is not None:
        d_total = d_total + losses.d_loss(Dg(real), Dg(fake))
    state.opt_d.zero_grad(set_to_none=True)
    d_total.backward()
    state.opt_d.step()
    d_params = [p for k, mod in m.items() if k != "generator" for p in mod.parameters()]
    for p in d_params:
        p.requires_grad_(not freeze)
    g_total = losses.reconstruction_losses(gen, real, mask, cfg.loss.w1, cfg.loss.w2, cfg.loss.mse_norm)["mse_total"]
    if Dg is not None:
        g_total = g_total + cfg.loss.w3 * losses.g_adv_loss(Dg(gen))
    if Dl is not None:
        g_total = g_total + cfg.loss.w4 * losses.g_adv_loss(Dl(gen * mask))
    state.opt_g.zero_grad(set_to_none=True)
    g_total.backward()
    state.opt_g.step()
    for p in d_params:
        p.requires_grad_(True)
    if hole:
        losses.hole_mse(gen.detach(), real, mask)


def make_variant(name: str, cfg, real, mask):
    parts = set(name.split("+"))
    unknown = parts - {"base", "freeze", "nohole", "cl", "fused", "foreach"}
    if unknown:
        raise SystemExit(f"unknown variant part(s): {', '.join(sorted(unknown))}")
    state = build_state(cfg, torch.device("cpu"))
    if "cl" in parts:
        state.models = {k: m.to(memory_format=torch.channels_last) for k, m in state.models.items()}
        real = real.contiguous(memory_format=torch.channels_last)
    impl = {"fused": True} if "fused" in parts else {"foreach": True} if "foreach" in parts else {}
    if impl:
        betas = (cfg.optim.beta1, cfg.optim.beta2)
        state.opt_g = torch.optim.Adam(state.models["generator"].parameters(), lr=cfg.optim.lr_g, betas=betas, **impl)
        state.opt_d = torch.optim.Adam([p for k, m in state.models.items() if k != "generator" for p in m.parameters()],
                                       lr=cfg.optim.lr_d, betas=betas, **impl)
    return lambda: textbook_step(state, real, mask, "freeze" in parts, "nohole" not in parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="m1")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=1, help="steps per round and variant")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--variants", default="base,freeze+nohole,cl,fused,freeze+nohole+fused,freeze+nohole+cl+fused")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = get_preset(args.preset)
    cfg.train.batch_size = args.batch
    S = cfg.model.image_size
    torch.manual_seed(0)
    real, mask = torch.rand(args.batch, 3, S, S) * 2 - 1, training_masks(cfg, 0, args.batch)
    names = args.variants.split(",")
    steps = {n: make_variant(n, cfg, real, mask) for n in names}
    for fn in steps.values():
        fn()                                                     # warm-up
    rates = {n: [] for n in names}
    for _ in range(args.rounds):
        for n, fn in steps.items():
            t = time.process_time()
            for _ in range(args.steps):
                fn()
            rates[n].append(args.steps * args.batch / (time.process_time() - t))
    base = statistics.median(rates[names[0]])
    print(f"preset {args.preset}, batch {args.batch}, 1 thread, images per CPU-second (median of {args.rounds})")
    for n in names:
        r = statistics.median(rates[n])
        print(f"{n:28s} {r:8.2f}  x{r / base:5.2f} vs {names[0]}   rounds: {', '.join(f'{x:.2f}' for x in rates[n])}")


if __name__ == "__main__":
    main()
