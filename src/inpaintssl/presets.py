"""The named presets: each a function building a :class:`~inpaintssl.config.Config`, by name.

    cfg = get_preset("m1-plus-64")        # a fresh Config; PRESETS lists the names

Presets (paper section 5.4):

* ``m1``    U-Net generator with skips, global + local discriminators, predicts the whole image.
* ``m2``    ``m1`` without the global discriminator.
* ``m3``    no skips, no global discriminator; the generator predicts only the hole patch.
* ``smoke`` ``m1`` shrunk to 32 px / width 16 / bottleneck 128 so it trains on 2 CPU cores in seconds.
* ``m1-64``, ``m2-64``, ``m3-64``: the three models at 64 px, width 32, bottleneck 1000 (CPU-sized).
* ``m1-plus``, ``m1-plus-64``: M1 with region-averaged, equally weighted L2 terms, a cosine learning-rate
  schedule and stronger crop augmentation (an improved recipe, issue 8).
* ``m1-plus-64-pconv``: ``m1-plus-64`` with partial convolutions in the generator's encoder (issue 15).
* ``fcn``: the product model, a fully convolutional generator with a mask channel that runs at the
  photo's resolution, trained on mixed holes with the hole's L2 only (beyond the paper, issue 26).
* ``m1-plus-64-sharp``: ``m1-plus-64-pconv`` with a resize-convolution decoder and hinge + spectral-norm
  discriminators at w3 = w4 = 3e-4: sharper fills without a checkerboard, at -0.14 dB (issue 15).
"""

from __future__ import annotations

import typing

from .config import Config
from .errors import InpaintsslError


def _m1() -> Config:
    return Config(preset="m1")


def _m2() -> Config:
    cfg = _m1()
    cfg.preset, cfg.model.global_d = "m2", False
    return cfg


def _m3() -> Config:
    cfg = _m1()
    cfg.preset = "m3"
    cfg.model.skips, cfg.model.global_d, cfg.model.predict = False, False, "patch"
    return cfg


def _m1_plus() -> Config:
    """M1 with two recipe changes that each measured better on 966 unseen VOC test photos (64 px, docs/results.md):

    * the L2 terms averaged over their own region and weighted equally (w1 = w2 = 0.5): the paper's literal
      N (all elements) with w2 = 0.1 gives the hole 0.1 x 25% of the loss; this gives it half
      (+0.21 dB hole PSNR at 1,200 steps);
    * a cosine learning-rate schedule down to 0 over the run (+0.10 dB at 600 steps, +0.11 dB at 4,800);
    * random crops of 50-100% of the shorter side instead of 87.5-100%: against overfitting in long runs
      (+0.26 dB at 4,800 steps; -0.04 dB at 600, where there is no overfitting yet)."""
    cfg = _m1()
    cfg.preset = "m1-plus"
    cfg.loss.mse_norm, cfg.loss.w1, cfg.loss.w2 = "region", 0.5, 0.5
    cfg.optim.schedule = "cosine"
    cfg.data.crop_min = 0.5
    return cfg


def _with_partial_conv(cfg: Config) -> Config:
    """``m1-plus-64`` with partial convolutions in the encoder (the options' screening, docs/results.md): 1,200 steps on
    18,411 photos, scored on 966 unseen VOC2007 test photos, it was +0.04 ± 0.01 dB hole PSNR and +0.009 SSIM
    on centre holes, a little sharper, and +1.69 ± 0.04 dB on free-form holes it never trained on; the
    other screened options (resize decoder, hinge + spectral norm) did not beat ``m1-plus-64``."""
    cfg.model.conv = "partial"
    return cfg


def _with_sharp_fills(cfg: Config) -> Config:
    """``m1-plus-64-pconv`` with a resize-convolution decoder and hinge + spectral-norm discriminators carrying
    30x the adversarial weight (w3 = w4 = 3e-4), from the options' screening (docs/results.md): at 1,200 steps on
    18,411 photos, scored on 966 unseen VOC2007 test photos with centre holes, its fills are much sharper
    than ``m1-plus-64``'s (sharpness 0.441 vs 0.259; Telea 0.364), at -0.14 ± 0.01 dB hole PSNR and
    -0.012 SSIM, with no grid-locked checkerboard (``checker_hole`` 0.16, the photos' own floor, vs 0.25).
    The resize decoder removes the checkerboard that hinge + SN otherwise amplifies (0.33 at 1e-4 with the
    transposed decoder); with w3 = w4 = 1e-3 hinge cost -0.82 dB. By eye its fills carry horizontal and
    vertical streaks that continue the context's edges: texture, not always in the right place."""
    cfg = _with_partial_conv(cfg)
    cfg.model.upsample, cfg.model.spectral_norm = "resize", True
    cfg.loss.adversarial, cfg.loss.w3, cfg.loss.w4 = "hinge", 3e-4, 3e-4
    return cfg


def _fcn() -> Config:
    """The product model (beyond the paper): a fully convolutional generator (:mod:`.gan.fcn`) that reads
    the hole as a mask channel and starts from OpenCV's Telea fill of it (``model.hole_fill=telea``: it learns
    what Telea gets wrong), trained at 128 px on crops of 33-100% of each photo's shorter side (so it
    sees content at several scales), on mixed holes (centre squares, rectangles of 25-50% of the side, and
    1-4 brush strokes 4-25% of the side wide), with the region-averaged L2 on the hole only (the output
    outside the hole is never used: the inpainter copies the photo there) and no discriminator: the
    product is judged on PSNR / SSIM against OpenCV, and the adversarial terms cost PSNR in every screening
    run here. Adam (0.9, 0.999) at 1e-3, cosine, batch 16, an EMA of the weights (0.999)."""
    cfg = _m1_plus()
    cfg.preset = "fcn"
    m = cfg.model
    m.arch, m.mask_channel, m.width, m.fcn_blocks, m.hole_fill = "fcn", True, 32, 8, "telea"
    m.global_d = m.local_d = False
    cfg.loss.w1, cfg.loss.w2 = 0.0, 1.0
    cfg.optim.lr_g, cfg.optim.beta1 = 1e-3, 0.9
    cfg.mask.kind, cfg.mask.brush_min, cfg.mask.brush_max = "mixed", 0.04, 0.25
    cfg.data.crop_min, cfg.data.workers = 0.33, 0
    t = cfg.train
    t.batch_size, t.ema, t.log_every, t.sample_every, t.ckpt_every = 16, 0.999, 50, 1000, 500
    return cfg


def _small(base, name: str, size: int, width: int, bottleneck: int, batch: int) -> typing.Callable[[], Config]:
    def make() -> Config:
        cfg = base()
        cfg.preset = name
        cfg.model.image_size, cfg.model.width, cfg.model.d_width = size, width, width
        cfg.model.bottleneck = bottleneck
        cfg.train.batch_size = batch
        cfg.train.sample_every, cfg.train.ckpt_every, cfg.train.log_every = 100, 200, 5
        cfg.data.workers = 0
        return cfg
    return make


PRESETS: dict[str, typing.Callable[[], Config]] = {
    "m1": _m1,
    "m2": _m2,
    "m3": _m3,
    "m1-64": _small(_m1, "m1-64", 64, 32, 1000, 32),
    "m2-64": _small(_m2, "m2-64", 64, 32, 1000, 32),
    "m3-64": _small(_m3, "m3-64", 64, 32, 1000, 32),
    "m1-plus": _m1_plus,
    "m1-plus-64": _small(_m1_plus, "m1-plus-64", 64, 32, 1000, 32),
    "m1-plus-64-pconv": lambda: _with_partial_conv(_small(_m1_plus, "m1-plus-64-pconv", 64, 32, 1000, 32)()),
    "m1-plus-64-sharp": lambda: _with_sharp_fills(_small(_m1_plus, "m1-plus-64-sharp", 64, 32, 1000, 32)()),
    "smoke": _small(_m1, "smoke", 32, 16, 128, 8),
    "fcn": _fcn,
}


def get_preset(name: str) -> Config:
    if name not in PRESETS:
        raise InpaintsslError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()
