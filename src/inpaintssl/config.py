"""Typed configuration: one dataclass per component, named presets, one override syntax.

    cfg = apply_overrides(get_preset("m1"), ["train.seed=7", "loss.w3=1e-4"])   # get_preset: inpaintssl.presets
    save_config(cfg, run_dir / "config.json")

The named presets are in :mod:`inpaintssl.presets`.

Choices where the paper is silent are fields here, with the paper-faithful value as default and the
reason in the field's comment.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InpaintsslError
from .files import atomic_write_text


@dataclass
class ModelConfig:
    image_size: int = 128        # side of the square training image (power of two, >= 32)
    width: int = 64              # channels of the first conv (paper Table 1: 64)
    bottleneck: int = 4000       # channels of the 1x1 bottleneck (paper Table 1: 4000)
    skips: bool = True           # U-Net skips: encoder layer i concatenated into decoder layer n-i
    predict: str = "image"       # "image" (M1/M2: whole image) or "patch" (M3: only the central hole)
    global_d: bool = True        # global discriminator on the whole image
    local_d: bool = True         # local discriminator on the hole region I * M
    mask_channel: bool = False   # feed the mask as a 4th input channel (paper: no, input is I*(1-M))
    d_width: int = 64            # channels of the discriminators' first conv (paper Table 2: 64)
    # beyond the paper (issue 15; gan/models.py, gan/layers.py); the defaults are the paper's network:
    conv: str = "standard"       # encoder convs: standard | partial (Liu et al. 2018) | gated (Yu et al. 2019)
    upsample: str = "transposed"  # decoder: transposed (4x4 stride 2) | resize (nearest x2 + 3x3, Odena 2016)
    d_norm: str = "batch"        # discriminators' norm: batch (Table 2) | layer (per sample) | none
    spectral_norm: bool = False  # spectral norm on the discriminators' weights (SN-GAN, Miyato et al. 2018)
    arch: str = "unet"           # generator: unet (Table 1) | fcn (fully convolutional, any size: gan/fcn.py)
    fcn_blocks: int = 8          # fcn: dilated residual convs at 1/8 resolution
    hole_fill: str = "zero"      # what the generator sees in the hole: zero (paper: I * (1 - M)) | telea
    # beyond the paper (issue 27: make the deep layers carry the context; gan/models.py): the U-Net skips
    # of the ``skip_drop`` deepest encoder layers are removed (0 = the paper's skips at every layer), and in
    # training each remaining skip is zeroed per sample with probability ``skip_dropout`` (0 = off)
    skip_drop: int = 0
    skip_dropout: float = 0.0


@dataclass
class LossConfig:
    w1: float = 0.9              # L2 outside the hole  (paper: 0.9)
    w2: float = 0.1              # L2 inside the hole   (paper: 0.1)
    w3: float = 1e-5             # adversarial, global D (paper: 1e-5)
    w4: float = 1e-5             # adversarial, local D  (paper: 1e-5)
    # The paper's N is "the total number of elements in that corresponding norm": read literally, the
    # mean runs over every element of the masked tensor ("tensor"). "region" divides by the number of
    # elements inside (resp. outside) the hole instead, which makes w1/w2 independent of the hole size.
    mse_norm: str = "tensor"
    # adversarial loss (gan/losses.py): bce (the paper's -log D), hinge (SN-GAN / SA-GAN) or wgan-gp
    # (Gulrajani et al. 2017: Wasserstein critic + gp_weight x gradient penalty; needs model.d_norm != batch)
    adversarial: str = "bce"
    gp_weight: float = 10.0      # wgan-gp: weight of the gradient penalty (WGAN-GP paper: 10)


@dataclass
class OptimConfig:
    lr_g: float = 2e-3           # paper: 2e-3
    lr_d: float = 1e-3           # paper: 1e-3
    beta1: float = 0.5           # paper silent; DCGAN's 0.5 is the usual GAN choice
    beta2: float = 0.999
    # learning-rate schedule over train.steps (both optimisers): "constant" (paper: no schedule given)
    # or "cosine" (half a cosine from the lr down to 0 at the last step; it depends on train.steps, so
    # a resumed run that raises --steps continues on the stretched curve)
    schedule: str = "constant"


# hole shapes of training (gan/masks.py); "none" has no hole: the plain-autoencoder control of transfer
# experiments (Context Encoders, Pathak et al. 2016, section 5.2), only the reconstruction of the whole image
# "patches" is the masked-image-modelling pretext (MAE / SparK for this ConvNet, issue 27): a random 50-75%
# of the cells of a grid of squares are holes
MASK_KINDS = ("center", "rect", "freeform", "mixed", "none", "patches")


@dataclass
class MaskConfig:
    kind: str = "center"         # center | rect | freeform | mixed | none (paper: center, half the side)
    rect_min: float = 0.25       # rect: side as a fraction of the image, drawn in [rect_min, rect_max]
    rect_max: float = 0.5
    strokes_max: int = 4         # freeform: 1..strokes_max brush strokes
    brush_min: float = 0.04      # freeform: brush width as a fraction of the image side
    brush_max: float = 0.12
    patch_size: float = 0.125    # patches: side of a grid cell as a fraction of the image (8 px at 64 px)
    patch_ratio_min: float = 0.5  # patches: share of the cells masked, drawn per image in [min, max]
    patch_ratio_max: float = 0.75


@dataclass
class DataConfig:
    # random square crop whose side is a fraction in [crop_min, crop_max] of the photo's shorter side,
    # resized to image_size; then a horizontal flip with probability 0.5 if flip is true
    crop_min: float = 0.875
    crop_max: float = 1.0
    flip: bool = True
    workers: int = 2             # DataLoader worker processes (0 = load in the main process)


@dataclass
class TrainConfig:
    batch_size: int = 64         # paper silent
    steps: int = 10000           # total optimisation steps of the run (--steps / --epochs set it)
    seed: int = 0
    log_every: int = 10          # steps between lines of metrics.jsonl
    sample_every: int = 500      # steps between sample grids (paper Figure 3 layout)
    ckpt_every: int = 1000       # steps between periodic checkpoints (latest is also written at the end)
    device: str = "auto"         # auto | cpu | cuda | cuda:N
    # bf16 autocast where the device computes bf16 natively (CUDA; a CPU with AVX-512 BF16 or AMX), fp32
    # elsewhere; false forces fp32. The resolved precision is printed and logged in metrics.jsonl
    amp: bool = True
    # torch.compile the generator and discriminators (CUDA mainly: the first steps pay the compile
    # time; on CPU it needs a C++ compiler). Off by default: eager is exact and starts at once.
    compile: bool = False
    # exponential moving average of the generator's weights and batch-norm statistics, used for
    # inference, samples and evaluation when > 0 (e.g. 0.999); 0 = off (the paper has none). The decay
    # is warmed up as min(ema, (1 + step) / (10 + step)) so early averages do not hold the random init.
    ema: float = 0.0
    # discriminator (critic) updates per generator update; the extra ones re-use the step's batch and
    # fake (gan/step.py). WGAN-GP's paper uses 5; 1 = the paper's alternation
    critic_steps: int = 1


@dataclass
class Config:
    preset: str = "m1"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> "Config":
        m = self.model
        if m.image_size < 32 or m.image_size & (m.image_size - 1):
            raise InpaintsslError(f"model.image_size={m.image_size}: must be a power of two >= 32")
        if m.predict not in ("image", "patch"):
            raise InpaintsslError(f"model.predict={m.predict!r}: choose 'image' or 'patch'")
        if m.predict == "patch" and self.mask.kind != "center":
            raise InpaintsslError(
                f"mask.kind={self.mask.kind!r} with model.predict='patch' (M3): a patch-predicting "
                "generator needs the central square hole; use --mask center or an M1/M2 preset")
        if self.mask.kind not in MASK_KINDS:
            raise InpaintsslError(f"mask.kind={self.mask.kind!r}: choose one of {', '.join(MASK_KINDS)}")
        _check_choices(self)
        if self.loss.mse_norm not in ("tensor", "region"):
            raise InpaintsslError(f"loss.mse_norm={self.loss.mse_norm!r}: choose 'tensor' or 'region'")
        if self.optim.schedule not in ("constant", "cosine"):
            raise InpaintsslError(f"optim.schedule={self.optim.schedule!r}: choose 'constant' or 'cosine'")
        if not 0 <= self.train.ema < 1:
            raise InpaintsslError(f"train.ema={self.train.ema}: must be in [0, 1) (0 = off, e.g. 0.999)")
        if self.train.batch_size < 2:
            raise InpaintsslError("train.batch_size must be >= 2 (batch norm needs two samples)")
        if not 0 < self.data.crop_min <= self.data.crop_max <= 1:
            raise InpaintsslError("data.crop_min/crop_max must satisfy 0 < crop_min <= crop_max <= 1")
        if not 0 <= self.model.skip_dropout < 1:
            raise InpaintsslError(f"model.skip_dropout={self.model.skip_dropout}: must be in [0, 1) (0 = off)")
        if self.model.skip_drop < 0:
            raise InpaintsslError(f"model.skip_drop={self.model.skip_drop}: must be >= 0 (0 = every skip)")
        if not 0 < self.mask.patch_size <= 0.5:
            raise InpaintsslError(f"mask.patch_size={self.mask.patch_size}: must be in (0, 0.5]")
        if not 0 < self.mask.patch_ratio_min <= self.mask.patch_ratio_max < 1:
            raise InpaintsslError("mask.patch_ratio_min/max must satisfy 0 < min <= max < 1")
        if not 0 < self.mask.rect_min <= self.mask.rect_max <= 1:
            raise InpaintsslError("mask.rect_min/rect_max must satisfy 0 < rect_min <= rect_max <= 1")
        for name in ("steps", "log_every", "sample_every", "ckpt_every"):
            if getattr(self.train, name) < 1:
                raise InpaintsslError(f"train.{name} must be >= 1")
        return self


CHOICES = {("model", "conv"): ("standard", "partial", "gated"),
           ("model", "upsample"): ("transposed", "resize"),
           ("model", "d_norm"): ("batch", "layer", "none"),
           ("model", "arch"): ("unet", "fcn"),
           ("model", "hole_fill"): ("zero", "telea"),
           ("loss", "adversarial"): ("bce", "hinge", "wgan-gp")}


def _check_choices(cfg: Config) -> None:
    """The options of issue 15: known values and the combinations that cannot work."""
    for (section, key), choices in CHOICES.items():
        value = getattr(getattr(cfg, section), key)
        if value not in choices:
            raise InpaintsslError(f"{section}.{key}={value!r}: choose {', '.join(choices)}")
    if cfg.loss.adversarial == "wgan-gp" and cfg.model.d_norm == "batch":
        raise InpaintsslError("loss.adversarial=wgan-gp with model.d_norm=batch: the gradient penalty is per "
                              "sample and batch norm couples the samples; set model.d_norm=layer (or none)")
    if cfg.model.conv == "partial" and cfg.model.mask_channel:
        raise InpaintsslError("model.conv=partial with model.mask_channel=true: partial convolutions already "
                              "read the mask, and zero the mask channel (it is 0 at every known pixel); "
                              "set model.mask_channel=false")
    if cfg.model.arch == "fcn" and (not cfg.model.mask_channel or cfg.model.conv != "standard"
                                    or cfg.model.predict != "image"):
        raise InpaintsslError("model.arch=fcn reads the hole as a mask channel and predicts the whole image: "
                              "set model.mask_channel=true, model.conv=standard and model.predict=image")
    if cfg.train.critic_steps < 1:
        raise InpaintsslError(f"train.critic_steps={cfg.train.critic_steps}: must be >= 1")
    if cfg.loss.gp_weight < 0:
        raise InpaintsslError(f"loss.gp_weight={cfg.loss.gp_weight}: must be >= 0")


def _parse_value(text: str, typ, key: str):
    if typ is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise InpaintsslError(f"--set {key}={text}: expected true or false")
    try:
        return typ(text)
    except ValueError:
        raise InpaintsslError(f"--set {key}={text}: expected a value of type {typ.__name__}") from None


def apply_overrides(cfg: Config, overrides: typing.Iterable[str]) -> Config:
    """Apply ``section.key=value`` strings; unknown sections or keys are an error."""
    for item in overrides:
        if "=" not in item:
            raise InpaintsslError(f"--set {item!r}: expected section.key=value, e.g. train.seed=7")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2:
            raise InpaintsslError(f"--set {item!r}: expected section.key=value, e.g. loss.w3=1e-4")
        section, name = parts
        sections = {f.name for f in dataclasses.fields(cfg) if f.name != "preset"}
        if section not in sections:
            raise InpaintsslError(f"--set {item!r}: unknown section {section!r}; sections: {', '.join(sorted(sections))}")
        sub = getattr(cfg, section)
        hints = typing.get_type_hints(type(sub))
        if name not in hints:
            raise InpaintsslError(f"--set {item!r}: unknown key {section}.{name}; keys: {', '.join(hints)}")
        setattr(sub, name, _parse_value(value, hints[name], key))
    return cfg


def config_to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(data: dict) -> Config:
    """Rebuild a Config from its dict form (a checkpoint's or a run's config.json); unknown keys are an error."""
    cfg = Config(preset=data.get("preset", "custom"))
    for f in dataclasses.fields(cfg):
        if f.name == "preset" or f.name not in data:
            continue
        sub = getattr(cfg, f.name)
        hints = typing.get_type_hints(type(sub))
        for key, value in data[f.name].items():
            if key not in hints:
                raise InpaintsslError(f"config has unknown key {f.name}.{key} (written by a newer inpaintssl?)")
            setattr(sub, key, value)
    return cfg


def save_config(cfg: Config, path: Path) -> None:
    atomic_write_text(Path(path), json.dumps(config_to_dict(cfg), indent=2) + "\n")


def load_config(path: Path) -> Config:
    try:
        return config_from_dict(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError) as e:
        raise InpaintsslError(f"{path}: cannot read config ({e})") from None
