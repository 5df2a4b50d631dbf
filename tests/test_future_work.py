"""Issue 15, the paper's future work and beyond: partial / gated convs, resize up-sampling, hinge and WGAN-GP,
the adversarial share of the generator's loss, and the sharpness metric. Every option is off in the presets."""

from __future__ import annotations

import itertools
import math
import os
import socket

import pytest
import torch
import torch.nn.functional as F

from inpaintssl.config import apply_overrides, config_to_dict

from inpaintssl.presets import PRESETS, get_preset
from inpaintssl.errors import InpaintsslError
from inpaintssl.evaluation.metrics import METRIC_KEYS, checkerboard, image_metrics, sharpness_ratio
from inpaintssl.evaluation.report import metrics_table
from inpaintssl.gan import losses
from inpaintssl.gan.layers import GatedBlock, PartialConv2d, ResizeConv2d
from inpaintssl.gan.models import Generator, build_models
from inpaintssl.gan.step import build_state, train_step

OFF = {"model": {"conv": "standard", "upsample": "transposed", "d_norm": "batch", "spectral_norm": False},
       "loss": {"adversarial": "bce", "gp_weight": 10.0}, "train": {"critic_steps": 1}}


def smoke(*overrides: str):
    return apply_overrides(get_preset("smoke"), ["train.batch_size=4", "train.amp=false", *overrides]).validate()


def batch(n: int = 4, size: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    mask = torch.zeros(n, 1, size, size)
    mask[..., size // 4:3 * size // 4, size // 4:3 * size // 4] = 1
    return real, mask


# --- partial and gated convolutions --------------------------------------------------------------------

def test_partial_conv_matches_hand_computation():
    conv = PartialConv2d(1, 1, 2, 1, 0, bias=True)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(0.5)
    x = torch.arange(1.0, 10.0).view(1, 1, 3, 3).repeat(2, 1, 1, 1)        # 1..9, row-major
    known = torch.tensor([[[[1., 1., 0.], [0., 0., 0.], [1., 0., 1.]]],
                          [[[1., 0., 0.], [0., 0., 0.], [0., 0., 0.]]]])
    out, new = conv(x, known)
    # image 0: windows hold 2, 1, 1, 1 known pixels -> sum(known x) * 4 / count + bias
    assert out[0, 0].tolist() == [[(1 + 2) * 2 + 0.5, 2 * 4 + 0.5], [7 * 4 + 0.5, 9 * 4 + 0.5]]
    assert new[0, 0].tolist() == [[1, 1], [1, 1]]
    # image 1: only the first window sees a known pixel; the others are 0 (no bias) and become holes
    assert out[1, 0].tolist() == [[1 * 4 + 0.5, 0], [0, 0]]
    assert new[1, 0].tolist() == [[1, 0], [0, 0]]


def test_partial_conv_without_mask_is_a_renormalised_standard_conv():
    """No mask = every pixel known: the standard conv, times |W| / (taps inside the image) at the border."""
    conv = PartialConv2d(1, 1, 3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    out, new = conv(torch.ones(1, 1, 3, 3))
    standard = F.conv2d(torch.ones(1, 1, 3, 3), conv.weight, padding=1)
    assert standard[0, 0, 0].tolist() == [4, 6, 4]
    assert torch.equal(out, torch.full_like(out, 9.0)) and torch.equal(new, torch.ones_like(new))


def test_partial_conv_and_generator_ignore_hole_pixels():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    known = (torch.rand(2, 1, 16, 16) > 0.4).float()
    x2 = x + 5 * torch.randn_like(x) * (1 - known)                 # change only the hole pixels
    conv = PartialConv2d(3, 8, 4, 2, 1, bias=True)
    assert torch.equal(conv(x, known)[0], conv(x2, known)[0])
    std = torch.nn.Conv2d(3, 8, 4, 2, 1)
    assert not torch.allclose(std(x), std(x2))                     # a standard conv does see them
    G = Generator(smoke("model.conv=partial").model).eval()
    real, mask = batch(2)
    noisy = real + 5 * torch.randn_like(real) * mask
    assert torch.equal(G(real * (1 - mask), mask), G(noisy, mask))            # the hole may hold anything


def test_gated_block_shapes_and_gate_range():
    torch.manual_seed(0)
    block = GatedBlock(3, 8, 4, 2, 1, bias=True, norm=False)
    x = torch.randn(2, 3, 16, 16)
    out, known = block(x)
    assert out.shape == (2, 8, 8, 8) and known is None
    gate = torch.sigmoid(block.gate(x))
    assert gate.shape == out.shape and (gate > 0).all() and (gate < 1).all()
    feature = F.leaky_relu(block.conv(x), 0.2)
    assert torch.allclose(out, feature * gate) and (out.abs() <= feature.abs()).all()


@pytest.mark.parametrize("conv", ["standard", "partial", "gated"])
def test_forward_features_for_each_conv(conv):
    cfg = smoke(f"model.conv={conv}")
    G = Generator(cfg.model).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = G.forward_features(x)
    assert feats.shape == (2, cfg.model.bottleneck, 1, 1) and torch.isfinite(feats).all()
    assert torch.equal(feats, G.forward_features(x, torch.zeros(2, 1, 32, 32)))    # no mask = no hole
    with_hole = G.forward_features(x, batch(2)[1])
    assert (conv == "partial") != torch.equal(feats, with_hole)    # only partial conv reads the mask


def test_resize_upsampling_replaces_the_stride2_transposed_convs():
    G = Generator(smoke("model.upsample=resize").model)
    kinds = [type(layer[0]) for layer in G.decoder]
    assert kinds[0] is torch.nn.ConvTranspose2d                    # 1x1 -> 4x4 stays transposed
    assert all(k is ResizeConv2d for k in kinds[1:])
    assert ResizeConv2d(4, 2)(torch.zeros(1, 4, 5, 5)).shape == (1, 2, 10, 10)


# --- every combination trains; the presets are unchanged -----------------------------------------------

@pytest.mark.parametrize("conv,upsample,adversarial", list(itertools.product(
    ["standard", "partial", "gated"], ["transposed", "resize"], ["bce", "hinge", "wgan-gp"])))
def test_every_combination_trains_one_step(conv, upsample, adversarial):
    extra = {"bce": [], "hinge": ["model.spectral_norm=true", "model.d_norm=none"],
             "wgan-gp": ["model.d_norm=layer", "train.critic_steps=2"]}[adversarial]
    cfg = smoke(f"model.conv={conv}", f"model.upsample={upsample}", f"loss.adversarial={adversarial}", *extra)
    state = build_state(cfg, torch.device("cpu"))
    before = [p.detach().clone() for p in state.models["generator"].parameters()]
    logs = train_step(state, *batch())
    assert all(torch.isfinite(v) for v in logs.values()), logs
    assert ("gp_local" in logs) == (adversarial == "wgan-gp")
    assert any(not torch.equal(a, b) for a, b in zip(before, state.models["generator"].parameters()))


@pytest.mark.parametrize("conv", ["partial", "gated"])
def test_patch_predictor_m3_with_partial_and_gated(conv):
    cfg = smoke("model.skips=false", "model.global_d=false", "model.predict=patch", f"model.conv={conv}")
    logs = train_step(build_state(cfg, torch.device("cpu")), *batch())
    assert all(torch.isfinite(v) for v in logs.values()) and logs["mse_full"] == 0


@pytest.mark.parametrize("name", [n for n in PRESETS if n not in ("m1-plus-64-pconv", "m1-plus-64-sharp")])
def test_presets_gain_the_new_keys_switched_off(name):
    d = config_to_dict(get_preset(name))
    for section, values in OFF.items():
        assert {k: d[section][k] for k in values} == values


def test_the_partial_conv_preset_is_m1_plus_64_with_partial_convolutions():
    plus, pconv = config_to_dict(get_preset("m1-plus-64")), config_to_dict(get_preset("m1-plus-64-pconv"))
    assert pconv["model"] == dict(plus["model"], conv="partial")
    assert {k: v for k, v in pconv.items() if k not in ("model", "preset")} == \
        {k: v for k, v in plus.items() if k not in ("model", "preset")}


def test_the_sharp_preset_adds_a_resize_decoder_and_hinge_sn_to_the_partial_conv_preset():
    pconv, sharp = config_to_dict(get_preset("m1-plus-64-pconv")), config_to_dict(get_preset("m1-plus-64-sharp"))
    assert sharp["model"] == dict(pconv["model"], upsample="resize", spectral_norm=True)
    assert sharp["loss"] == dict(pconv["loss"], adversarial="hinge", w3=3e-4, w4=3e-4)
    assert {k: v for k, v in sharp.items() if k not in ("model", "loss", "preset")} == \
        {k: v for k, v in pconv.items() if k not in ("model", "loss", "preset")}


@pytest.mark.parametrize("model", ["m1", "m3"])
def test_train_step_losses_are_the_papers_formulas(model):
    """One step of the smoke M1 / M3 against the paper's loss written out here from scratch (not through
    ``gan.losses``): w1 ||(G - I)(1 - M)||^2 / N + w2 ||(G - I) M||^2 / N + w3 (-log Dg(G)) + w4 (-log Dl(G M)),
    and the discriminators' -log D(I) - log(1 - D(G)), on copies of the networks taken before the step (the
    generator terms on the discriminators after their update, as the step orders them)."""
    import copy

    import torch.nn.functional as F
    over = ["train.amp=false"] + (["model.skips=false", "model.global_d=false", "model.predict=patch"]
                                  if model == "m3" else [])
    cfg = apply_overrides(get_preset("smoke"), over)
    state = build_state(cfg, torch.device("cpu"))
    real = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(123)) * 2 - 1
    mask = torch.zeros(8, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    before = {k: copy.deepcopy(v) for k, v in state.models.items()}
    logs = train_step(state, real, mask)
    with torch.no_grad():
        out = before["generator"](real * (1 - mask))
        if model == "m3":                                          # the central patch, pasted into the hole
            gen = real * (1 - mask)
            gen[:, :, 8:24, 8:24] += out
        else:
            gen = out
        sq, n = (gen - real) ** 2, gen.numel()
        want = {"mse_full": (sq * (1 - mask)).sum() / n, "mse_masked": (sq * mask).sum() / n,
                "hole_mse": (sq * mask).sum() / (3 * mask.sum())}
        want["mse_total"] = cfg.loss.w1 * want["mse_full"] + cfg.loss.w2 * want["mse_masked"]
        want["g_total"] = want["mse_total"].clone()
        neg_log_d = lambda logits: -F.logsigmoid(logits).mean()               # noqa: E731
        for name, view, w in (("global", lambda x: x, cfg.loss.w3), ("local", lambda x: x * mask, cfg.loss.w4)):
            if f"d_{name}" not in state.models:
                continue
            D = before[f"d_{name}"]
            want[f"d_{name}"] = neg_log_d(D(view(real))) + neg_log_d(-D(view(gen)))   # log(1 - s(x)) = logs(-x)
            want[f"g_adv_{name}"] = neg_log_d(state.models[f"d_{name}"](view(gen)))
            want["g_total"] += w * want[f"g_adv_{name}"]
    assert set(want) <= set(logs)
    assert {k: float(logs[k]) for k in want} == pytest.approx({k: float(v) for k, v in want.items()}, rel=1e-5)
    keys = set(state.models["generator"].state_dict())
    assert "encoder.1.0.weight" in keys and "decoder.1.0.weight" in keys      # the paper's key layout


# --- adversarial losses, gradient penalty, critic steps, shares ----------------------------------------

def test_hinge_and_wasserstein_values_on_known_logits():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-3.0, 0.0, 1.5])
    hinge_d = (0 + 0.5 + 2) / 3 + (0 + 1 + 2.5) / 3
    assert math.isclose(losses.d_loss(real, fake, "hinge").item(), hinge_d, rel_tol=1e-6)
    assert math.isclose(losses.d_loss(real, fake, "wgan-gp").item(), (-1.5 / 3) - (1.5 / 3), rel_tol=1e-6)
    for kind in ("hinge", "wgan-gp"):
        assert math.isclose(losses.g_adv_loss(fake, kind).item(), 1.5 / 3, rel_tol=1e-6)
    assert torch.equal(losses.d_loss(real, fake), losses.d_loss(real, fake, "bce"))
    with pytest.raises(ValueError):
        losses.g_adv_loss(fake, "lsgan")


def test_gradient_penalty_of_linear_critics():
    torch.manual_seed(0)
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    w = torch.randn(3, 8, 8)
    w = w / w.norm()

    def linear(scale):
        return lambda x: (x * scale * w).flatten(1).sum(1)
    assert losses.gradient_penalty(linear(1.0), real, fake).item() < 1e-10        # ||grad|| = 1
    assert math.isclose(losses.gradient_penalty(linear(3.0), real, fake).item(), 4.0, rel_tol=1e-5)
    region = torch.zeros(4, 1, 8, 8)
    region[..., :4, :] = 1                                         # the gradient counts only inside
    inside = (w[:, :4, :].norm() * 3 - 1) ** 2
    assert math.isclose(losses.gradient_penalty(linear(3.0), real, fake, region).item(), inside.item(), rel_tol=1e-5)


def test_gradient_penalty_reaches_the_critic_weights():
    D = build_models(smoke("model.d_norm=layer").model)["d_local"]
    real, mask = batch()
    gp = losses.gradient_penalty(D, real * mask, real.flip(0) * mask, mask)
    gp.backward()
    weights = [p for name, p in D.named_parameters() if name.endswith("weight") and p.ndim > 1]   # convs, linear
    assert gp > 0 and all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
                          for p in weights)


def test_critic_steps_update_the_discriminators_that_many_times():
    state = build_state(smoke("loss.adversarial=wgan-gp", "model.d_norm=layer", "train.critic_steps=3"),
                        torch.device("cpu"))
    train_step(state, *batch())
    assert {int(s["step"]) for s in state.opt_d.state.values()} == {3}
    assert {int(s["step"]) for s in state.opt_g.state.values()} == {1}


def test_adversarial_shares_are_logged_on_metric_steps_only():
    state = build_state(smoke(), torch.device("cpu"))
    logs = train_step(state, *batch())
    adv = 1e-5 * (logs["g_adv_global"] + logs["g_adv_local"])
    assert math.isclose(logs["g_adv_share"].item(), (adv / logs["g_total"]).item(), rel_tol=1e-5)
    assert 0 < logs["g_adv_grad_share"] < 1
    assert "g_adv_share" not in train_step(state, *batch(), metrics=False)
    only_adv = build_state(smoke("loss.w1=0", "loss.w2=0"), torch.device("cpu"))
    logs = train_step(only_adv, *batch())
    assert math.isclose(logs["g_adv_share"].item(), 1, rel_tol=1e-6)
    assert math.isclose(logs["g_adv_grad_share"].item(), 1, rel_tol=1e-5)


def test_discriminator_norm_and_spectral_norm_options():
    m = build_models(smoke("model.d_norm=layer", "model.spectral_norm=true").model)
    for name in ("d_global", "d_local"):
        mods = list(m[name].modules())
        assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in mods)
        assert any(isinstance(x, torch.nn.GroupNorm) for x in mods)
        conv = m[name].features[1][0]
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert math.isclose(sigma.item(), 1.0, rel_tol=0.05)
    bare = build_models(smoke("model.d_norm=none").model)["d_global"]
    assert all(x.bias is not None for x in bare.modules() if isinstance(x, torch.nn.Conv2d))
    assert not any(isinstance(x, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)) for x in bare.modules())


@pytest.mark.parametrize("overrides,message", [
    (["model.conv=dilated"], "choose standard, partial, gated"),
    (["model.upsample=bilinear"], "choose transposed, resize"),
    (["loss.adversarial=lsgan"], "choose bce, hinge, wgan-gp"),
    (["model.d_norm=instance"], "choose batch, layer, none"),
    (["loss.adversarial=wgan-gp"], "model.d_norm=layer"),
    (["model.conv=partial", "model.mask_channel=true"], "mask_channel=false"),
    (["train.critic_steps=0"], ">= 1"),
])
def test_validation_names_the_choices(overrides, message):
    with pytest.raises(InpaintsslError, match=message.replace("+", r"\+")):
        apply_overrides(get_preset("smoke"), overrides).validate()


# --- DDP: the gradient penalty's double backward -------------------------------------------------------

def _ddp_rank(rank: int, port: int, queue) -> None:
    import torch.distributed as dist
    from inpaintssl.gan import distributed
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        info, _ = distributed.setup("cpu")
        queue.put((rank, _gp_step_grads(build_state(DDP_CFG(), torch.device("cpu"), info),
                                        distributed.shard(4, info)).numpy()))
    finally:
        dist.destroy_process_group()


def DDP_CFG():
    return smoke("loss.adversarial=wgan-gp", "model.d_norm=layer", "model.spectral_norm=true", "model.conv=partial")


def _gp_step_grads(state, part: slice) -> torch.Tensor:
    """One train_step on the shard ``part`` with fixed interpolation weights; the discriminators' gradients."""
    eps = torch.tensor([0.3, 0.7, 0.2, 0.9]).view(4, 1, 1, 1)[part]
    real, mask = batch()
    rand = torch.rand
    torch.rand = lambda *a, **k: eps.clone()                     # the only torch.rand of the step: e
    try:
        train_step(state, real[part], mask[part])
    finally:
        torch.rand = rand
    return torch.cat([p.grad.flatten() for k, m in state.models.items() if k != "generator" for p in m.parameters()])


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="this PyTorch build has no torch.distributed gloo backend")
def test_wgan_gp_under_ddp_gives_the_single_process_gradient():
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_rank, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    grads = dict(queue.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert (grads[0] == grads[1]).all()                            # DDP averaged the same gradient on both
    single = _gp_step_grads(build_state(DDP_CFG(), torch.device("cpu")), slice(0, 4))
    torch.testing.assert_close(torch.from_numpy(grads[0]), single, rtol=1e-4, atol=1e-5 * single.abs().max().item())


# --- sharpness metric ----------------------------------------------------------------------------------

def test_sharpness_is_one_for_identical_images_and_lower_for_a_blurred_hole():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    hole = torch.zeros(2, 1, 32, 32, dtype=torch.float64)
    hole[..., 8:24, 8:24] = 1
    assert torch.allclose(sharpness_ratio(target, target, hole), torch.ones(2, dtype=torch.float64))
    blurred = F.avg_pool2d(target, 5, 1, 2, count_include_pad=False)
    composite = hole * blurred + (1 - hole) * target
    s = image_metrics(composite, target, hole)["sharpness_hole"]
    assert (s < 0.6).all()
    noisy = (target + 0.3 * torch.randn_like(target) * hole).clamp(0, 1)
    assert (sharpness_ratio(noisy, target, hole) > 1).all()
    assert "sharpness_hole" in METRIC_KEYS and set(image_metrics(target, target, hole)) == set(METRIC_KEYS)


def test_checkerboard_measure_sees_a_grid_locked_pattern_whatever_the_sharpness():
    torch.manual_seed(0)
    smooth = F.avg_pool2d(torch.rand(8, 3, 72, 72, dtype=torch.float64), 9, 1)       # (8, 3, 64, 64) detail
    hole = torch.zeros(8, 1, 64, 64, dtype=torch.float64)
    hole[..., 16:48, 16:48] = 1
    i = torch.arange(64, dtype=torch.float64)
    grid = ((i[:, None] + i[None, :]) % 2) * 2 - 1                                 # +-1 checkerboard
    stripes = ((i[None, :] // 2) % 2) * 2 - 1                                       # period 4 along x
    floor = checkerboard(smooth, hole)
    assert (floor < 0.3).all()
    faint = 0.1 * smooth.std() * grid                                               # well below the detail
    assert (checkerboard(smooth + faint, hole) > floor + 0.1).all()
    assert (checkerboard(smooth + 0.1 * smooth.std() * stripes, hole) > floor + 0.1).all()
    torch.testing.assert_close(checkerboard(0.5 + 0.1 * smooth, hole), floor)       # contrast-free ratio
    assert (checkerboard(torch.full_like(smooth, 0.5), hole) == 0).all()            # a flat fill
    outside = smooth + grid * (1 - hole)                                            # the pattern off the hole
    torch.testing.assert_close(checkerboard(outside, hole), floor)
    assert "checker_hole" in METRIC_KEYS


def test_report_bolds_the_sharpness_closest_to_one():
    summary = {name: {k: {"mean": 0.5, "std": 0.0} for k in METRIC_KEYS} for name in ("a", "b", "c")}
    for name, value in (("a", 0.6), ("b", 1.3), ("c", 0.9)):
        summary[name]["sharpness_hole"]["mean"] = value
    lines = metrics_table(summary).splitlines()
    col = 1 + METRIC_KEYS.index("sharpness_hole")
    cells = {row.strip("| ").split(" | ")[0]: row.strip("| ").split(" | ")[col] for row in lines[2:]}
    assert "→1" in lines[0].strip("| ").split(" | ")[col]
    assert cells == {"a": "0.600 ± 0.000", "b": "1.300 ± 0.000", "c": "**0.900 ± 0.000**"}


def test_checkpoints_from_before_the_new_options_stay_compatible():
    from inpaintssl.checkpoint import check_compatible
    cfg = config_to_dict(get_preset("smoke"))
    old = {"config": dict(cfg, model={k: v for k, v in cfg["model"].items() if k not in OFF["model"]})}
    check_compatible(old, cfg)                                     # missing keys = their (off) defaults
    with pytest.raises(InpaintsslError, match="model.conv='standard' vs 'partial'"):
        check_compatible(old, config_to_dict(smoke("model.conv=partial")))
