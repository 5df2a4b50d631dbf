"""The scales of ``inpaintssl reproduce`` (one typed table) and the models each scale pretrains.

    scale = get_scale("cpu")
    models = pretrain_models(scale, seed=0, device="auto")   # {"m1", "m2", "m3", "m1-plus": ModelRun}
    models["m2"].cfg.model.global_d                          # False: M2 is M1 without the global D

Every scale trains the paper's three models (section 5.4) and the best improved recipe (``m1-plus``,
docs/results.md) alike -- same data, steps, seed, batch and central hole -- through
:func:`evaluation.ablation.ablation_configs`, so they differ only in what the paper varies. The improved
preset at each image size is :data:`IMPROVED`; at 32 px no preset exists, so it is the 32 px M1 with the
same recipe switches (:data:`PLUS_SWITCHES`) that make ``m1-plus-64`` out of ``m1-64``.

Why these values (:data:`SCALES`):

* ``tiny``  32 px, 100 steps per model, 1 transfer epoch on 160 photos per VOC split: the whole pipeline
  in a few minutes on 2 CPU cores (the test runs it); numbers at this scale mean nothing.
* ``cpu``   64 px (``m1-64`` & co.), 1,200 steps x 32 images per model (about 32 epochs of 1,200 photos;
  the step count of the 64 px ablation of docs/results.md, so its numbers compare). Sized for a 2-core machine
  without native bf16: there a 64 px M1 step takes ~1.3 s in fp32 on one thread (25 images/s measured on
  an AVX2 EPYC core; ~150 images/s with bf16 on AVX-512 BF16), M2 ~0.65x, M3 ~0.4x of that, so the four
  runs take ~40-80 min (2 or 1 threads), the evaluation on ~1,000 photos ~5 min and the transfer
  (14 epochs x 2 runs on 941 + 966 VOC photos) ~10 min: about an hour in all on two free cores. Measured
  with one thread while the other core ran other training: 1 h 54 min (pretraining 1.6 h; docs/reproduce.md).
* ``paper`` 128 px, the paper's ``m1``/``m2``/``m3`` (width 64, bottleneck 4000, batch 64) and transfer
  settings (SGD lr 0.005, momentum 0.9, batch 64, 14 epochs), 20,000 steps (1.3 M images, ~15 epochs of
  COCO-2014 train; the paper gives 13 h on a 2070 SUPER, not a step count): for a GPU.

The ``s_per_*`` fields are the nominal costs the progress lines' first ETA uses before anything has been
measured on this machine (then the measured speed takes over, :mod:`.pipeline`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import Config, apply_overrides, config_to_dict

from ..presets import get_preset
from ..errors import InpaintsslError

if TYPE_CHECKING:           # torch-free at import: the CLI reads SCALES for its help (``prepare`` never loads torch)
    from ..transfer.train import TransferConfig


@dataclass(frozen=True)
class Scale:
    name: str
    image_size: int               # px of pretraining, evaluation, figures and transfer
    steps: int                    # pretraining steps of each of the four models
    eval_limit: int | None        # evaluation photos (the first N of --eval-data, sorted); None = all
    figure_rows: int              # photos in each of Figures 3, 5, 6
    transfer_epochs: int          # paper: 14
    transfer_batch: int           # paper: 64
    transfer_lr: float            # paper: 0.005 (SGD, momentum 0.9)
    voc_limit: int | None         # photos per VOC split, evenly spaced; None = all
    workers: int                  # transfer data-loader processes
    baselines: tuple[str, ...]    # classical methods scored beside the models
    s_per_eval_image: float       # nominal seconds per photo and method (evaluation, figures)
    s_per_transfer_image: float   # nominal seconds per photo and pass (transfer)
    budget: str                   # what it is for, in words (help text, report)


SCALES: dict[str, Scale] = {
    "tiny": Scale("tiny", 32, 100, 32, 4, 1, 32, 0.005, 160, 0, ("telea", "ns", "mean"), 0.05, 0.006,
                  "a few minutes on 2 CPU cores (a smoke test of the pipeline)"),
    "cpu": Scale("cpu", 64, 1200, None, 8, 14, 64, 0.005, None, 2, ("telea", "ns", "mean"), 0.045, 0.004,
                 "about an hour on 2 CPU cores"),
    "paper": Scale("paper", 128, 20000, None, 8, 14, 64, 0.005, None, 4, ("telea", "ns", "mean"), 0.02, 0.002,
                   "the paper's settings, for a GPU"),
}

# the recipe switches of the improved preset (config.py ``_m1_plus``), applied where no preset exists
PLUS_SWITCHES = ("loss.mse_norm=region", "loss.w1=0.5", "loss.w2=0.5", "optim.schedule=cosine", "data.crop_min=0.5")
# image size -> (preset, switches): the best improved preset there; "m1" = this scale's M1 plus the switches
IMPROVED: dict[int, tuple[str, tuple[str, ...]]] = {
    32: ("m1", PLUS_SWITCHES),
    64: ("m1-plus-64", ()),
    128: ("m1-plus", ()),
}
MODEL_NAMES = ("m1", "m2", "m3", "m1-plus")      # run folder names, in report order


@dataclass
class ModelRun:
    """One pretraining run: its resolved config and the preset ``inpaintssl train --preset`` starts from."""
    cfg: Config
    base: str


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise InpaintsslError(f"--scale {name!r}: choose one of {', '.join(SCALES)}")
    return SCALES[name]


def pretrain_models(scale: Scale, seed: int = 0, device: str = "auto") -> dict[str, ModelRun]:
    """{m1, m2, m3, m1-plus: ModelRun}: the same data, steps, seed, batch and central hole for all four."""
    from ..evaluation.ablation import SCALES as ABLATION_PRESETS, ablation_configs
    size = scale.image_size
    cfgs = ablation_configs(size, scale.steps, seed)
    bases = dict(ABLATION_PRESETS[size])
    plus_from, switches = IMPROVED[size]
    if switches:                                   # no preset at this size: M1 + the recipe switches
        plus = apply_overrides(copy.deepcopy(cfgs[plus_from]), switches)
        plus.preset, bases["m1-plus"] = f"m1-plus-{size}", bases[plus_from]
    else:
        plus = ablation_configs(size, scale.steps, seed, also=[plus_from])[plus_from]
        bases["m1-plus"] = plus_from
    cfgs["m1-plus"] = plus.validate()
    for cfg in cfgs.values():
        cfg.train.device = device
    return {name: ModelRun(cfgs[name], bases[name]) for name in MODEL_NAMES}


def config_overrides(cfg: Config, base: str) -> list[str]:
    """The ``--set section.key=value`` items that turn preset ``base`` into ``cfg`` (steps and mask excluded:
    ``train`` has flags for them)."""
    want, have = config_to_dict(cfg), config_to_dict(get_preset(base))
    items = []
    for section, values in want.items():
        if section == "preset":
            continue
        for key, value in values.items():
            if (section, key) in (("train", "steps"), ("mask", "kind")) or have[section][key] == value:
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            items.append(f"{section}.{key}={text}")
    return items


def transfer_config(scale: Scale, seed: int = 0, device: str = "auto") -> TransferConfig:
    """The paper's fine-tuning recipe (section 6.2) at this scale's epochs, batch and learning rate."""
    from ..transfer.train import TransferConfig
    return TransferConfig(epochs=scale.transfer_epochs, batch_size=scale.transfer_batch, lr=scale.transfer_lr,
                          seed=seed, workers=scale.workers, device=device).validate()
