"""Every preset builds and trains one step with the right shapes and finite values (paper Tables 1-2)."""

import pytest
import torch

from inpaintssl.presets import PRESETS, get_preset
from inpaintssl.gan.masks import center_mask
from inpaintssl.gan.models import Discriminator, Generator, build_models, encoder_channels
from inpaintssl.gan.step import build_state, train_step


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_forward_backward(name):
    cfg = get_preset(name)
    cfg.train.batch_size = 2
    S = cfg.model.image_size
    state = build_state(cfg, torch.device("cpu"))
    assert set(state.models) == ({"generator"} | ({"d_global"} if cfg.model.global_d else set())
                                 | ({"d_local"} if cfg.model.local_d else set()))
    G = state.models["generator"]
    real = torch.rand(2, 3, S, S) * 2 - 1
    x = torch.cat([real, torch.zeros(2, 1, S, S)], 1) if cfg.model.mask_channel else real
    out = G(x)
    side = S // 2 if cfg.model.predict == "patch" else S
    assert out.shape == (2, 3, side, side)
    if cfg.model.arch == "unet":
        assert G.forward_features(x).shape == (2, cfg.model.bottleneck, 1, 1)
    before = [p.detach().clone() for p in G.parameters()]
    logs = train_step(state, real, center_mask(2, S))
    assert all(torch.isfinite(v) for v in logs.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters())), "generator did not update"
    for grads in (p.grad for p in G.parameters()):
        assert grads is None or torch.isfinite(grads).all()


def test_paper_m1_architecture():
    """Table 1 at 128 px: encoder 64, 64, 128, 256, 512 + 4000 bottleneck; 6 decoder layers; skips i <-> n-i."""
    cfg = get_preset("m1").model
    assert encoder_channels(cfg) == [64, 64, 128, 256, 512]
    G = Generator(cfg)
    assert G.bottleneck[0].out_channels == 4000 and G.bottleneck[0].kernel_size == (4, 4)
    assert G.bottleneck[0].stride == (1, 1)
    outs = [layer[0].out_channels for layer in G.decoder]
    assert outs == [512, 256, 128, 64, 64, 3]
    ins = [layer[0].in_channels for layer in G.decoder]
    assert ins == [4000, 512 + 512, 256 + 256, 128 + 128, 64 + 64, 64 + 64]   # U-Net concatenation
    assert isinstance(G.decoder[-1][-1], torch.nn.Tanh)
    assert isinstance(G.decoder[0][-1], torch.nn.ReLU)                      # Table 1: ReLU after T.Conv2d 1
    assert all(isinstance(l_[-1], torch.nn.LeakyReLU) for l_ in G.encoder)


def test_m3_has_no_skips_and_predicts_patch():
    cfg = get_preset("m3").model
    G = Generator(cfg)
    assert [layer[0].in_channels for layer in G.decoder] == [4000, 512, 256, 128, 64]
    assert G.eval()(torch.zeros(1, 3, 128, 128)).shape == (1, 3, 64, 64)


def test_discriminators_table2():
    Dg, Dl = Discriminator(128, 64, "global"), Discriminator(128, 64, "local")
    chans = [blk[0].out_channels for blk in Dg.features]
    assert chans == [64, 128, 256, 512, 512]
    assert isinstance(Dg.head, torch.nn.Conv2d) and Dg.head.out_channels == 1     # Conv2d* only in global
    assert not any(isinstance(m, torch.nn.Conv2d) and m.out_channels == 1 for m in Dl.modules())
    x = torch.randn(3, 3, 128, 128)
    assert Dg(x).shape == (3,) and Dl(x).shape == (3,)


def test_mask_channel_option():
    cfg = get_preset("smoke").model
    cfg.mask_channel = True
    models = build_models(cfg)
    assert models["generator"].encoder[0][0].in_channels == 4


def test_skip_drop_removes_the_deepest_skips_and_dropout_acts_in_training_only():
    cfg = get_preset("m1-64").model
    chans = encoder_channels(cfg)                               # 32, 32, 64, 128 at 64 px
    full = Generator(cfg)
    cfg.skip_drop = 2
    G = Generator(cfg)
    assert [G.has_skip(j) for j in range(4)] == [False, False, True, True]
    ins = [layer[0].in_channels for layer in G.decoder[1:]]
    assert ins == [chans[-1], chans[-2], 2 * chans[-3], 2 * chans[-4]]     # up-path + skip of the same width
    assert [layer[0].in_channels for layer in full.decoder[1:]] == [2 * c for c in reversed(chans)]
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    assert G(x).shape == (4, 3, 64, 64)
    cfg.skip_dropout = 0.5
    D = Generator(cfg)
    D.load_state_dict(G.state_dict())
    D.eval(), G.eval()
    assert torch.equal(D(x), G(x))                              # eval: no dropout, the same function
    D.train()
    torch.manual_seed(0)
    a = D(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, D(x))                          # training: random skips zeroed
    torch.manual_seed(0)
    assert torch.equal(a, D(x))                                 # drawn from the (seeded) global RNG


def test_the_paper_generator_bypasses_its_bottleneck_and_skip_drop_makes_it_carry_the_fill():
    """The bottleneck ablation (evaluation.bypass) on two smoke generators trained alike for 200 steps on
    synthetic photos (centre hole, hole L2): with every U-Net skip, replacing z by its mean barely moves the fill
    (the decoder fills from the skips); with model.skip_drop=2 the fill collapses without z."""
    import numpy as np

    from conftest import synthetic_photo
    from inpaintssl.config import apply_overrides
    from inpaintssl.evaluation.bypass import bottleneck_ablation
    rng = np.random.default_rng(0)
    photos = np.stack([synthetic_photo(rng, 32, 32) for _ in range(96)])
    imgs = torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 127.5 - 1
    drops = {}
    for name, over in (("paper", []), ("skip_drop", ["model.skip_drop=2"])):
        torch.manual_seed(0)
        cfg = apply_overrides(get_preset("smoke"), ["train.amp=false", "model.global_d=false", "model.local_d=false",
                                                    "loss.w1=0", "loss.w2=1", "loss.mse_norm=region",
                                                    "optim.lr_g=1e-3", *over])
        state = build_state(cfg, torch.device("cpu"))
        for _ in range(200):
            train_step(state, imgs[torch.randint(0, 64, (8,))], center_mask(8, 32), metrics=False)
        r = bottleneck_ablation(state.models["generator"], cfg, imgs[64:], center_mask(32, 32))
        drops[name] = r["normal"] - r["z"]
        assert r["normal"] > 20                                 # both learned to fill the hole
    assert drops["paper"] < 1.0 and drops["skip_drop"] > 3.0, drops
