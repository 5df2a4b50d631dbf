"""The paper's networks (Tables 1 and 2): a U-Net generator and the global / local discriminators.

    G = Generator(cfg.model)              # (B, 3, S, S) in [-1, 1] -> (B, 3, S, S) (or the patch, M3)
    feats = G.forward_features(x)         # (B, bottleneck, 1, 1): run_encoder, shared with transfer's classifier

Generator, at S = 128 (Table 1). Encoder: five 4x4 stride-2 convs (64, 64, 128, 256, 512 channels,
128 -> 4 px) and one 4x4 stride-1 conv to the 4000-channel 1x1 bottleneck. Decoder: one 4x4 stride-1
transposed conv (1 -> 4 px, 512 channels, ReLU as in the table) and five 4x4 stride-2 transposed convs
(256, 128, 64, 64, 3 channels). With n = 12 layers, the output of encoder layer i is concatenated to the
output of decoder layer n - i (U-Net skips, i = 1..5), so the next decoder layer sees twice the channels.
Other sizes keep the structure: log2(S / 4) stride-2 layers each side, channel multipliers 1, 1, 2, 4, 8, 8...
Batch norm follows every layer except the first encoder conv and the output layer (the DCGAN/pix2pix
practice: the paper says "each layer" but normalising the raw input or the tanh output is not usual).

M3 (``predict="patch"``, no skips) drops the last up-sampling layer, so it outputs the central
(S/2, S/2) patch, like Pathak et al.'s context encoder.

Discriminators (Table 2): 4x4 stride-2 convs with 64, 128, 256, 512, 512 channels (LeakyReLU 0.2,
batch norm after all but the first). The global D ends in Conv2d* (4x4, stride 2, no padding: the 4x4 map
becomes one logit). The local D has no Conv2d*; we decided it scores its last 512-channel map with one
fully connected layer (flatten -> 1 logit), as Iizuka et al.'s local discriminator does. It sees the paper's
``I * M`` (the image with everything outside the hole zeroed) at full size, so it works for any mask
shape. Both return logits; the sigmoid of Table 2 lives inside the loss (BCE with logits) for stability.

Beyond the paper (issue 15; every option's default is the paper's network, with the same state-dict keys):

* ``model.conv``: the five stride-2 encoder convs become partial (``partial``, Liu et al. 2018; the
  generator then reads the hole mask) or gated convolutions (``gated``, Yu et al. 2019), see
  :mod:`.layers`. The 4x4 -> 1x1 bottleneck conv stays standard: each partial layer shrinks the hole,
  and at 4x4 none is left for square holes up to 3/4 of the side (checked at 32, 64 and 128 px), while
  a gated 4000-channel bottleneck would double the generator's largest layer;
* ``model.upsample=resize``: the decoder's stride-2 transposed convs become nearest x2 + 3x3 conv
  (Odena et al. 2016). The first decoder layer (1x1 -> 4x4 transposed conv) stays: with a 1x1 input
  its kernel taps never overlap, so it cannot make a checkerboard;
* ``model.d_norm`` (batch | layer | none) and ``model.spectral_norm`` for the discriminators.

Beyond the paper for transfer (issue 27: with every skip the decoder can fill the hole from the layer-1..4
skips and ignore the bottleneck ``z``, see :mod:`inpaintssl.evaluation.bypass`): ``model.skip_drop=k`` removes
the skips of the k deepest encoder layers (their decoder layers see only the path through ``z``) and
``model.skip_dropout=p`` zeroes each remaining skip per sample with probability p in training;
``model.skips=false`` with ``predict=image`` is the no-skip whole-image model. The defaults are the paper's.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..config import ModelConfig
from ..errors import InpaintsslError
from .fcn import ConvGenerator
from .layers import MASKED_BLOCKS, MaskedBlock, ResizeConv2d

_MULTS = (1, 1, 2, 4, 8, 8, 8, 8)


def _num_down(image_size: int) -> int:
    return int(math.log2(image_size // 4))


def encoder_channels(cfg: ModelConfig) -> list[int]:
    return [cfg.width * _MULTS[i] for i in range(_num_down(cfg.image_size))]


_NORMS = {"batch": nn.BatchNorm2d, "layer": lambda ch: nn.GroupNorm(1, ch)}   # layer norm over (C, H, W)


def _block(conv: nn.Module, out_ch: int, norm: bool | str, act: nn.Module | None) -> nn.Sequential:
    """conv -> norm -> act; ``norm``: True / "batch", "layer", or False / "none"."""
    layers = [conv]
    kind = "batch" if norm is True else norm
    if kind and kind != "none":
        layers.append(_NORMS[kind](out_ch))
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


def run_encoder(encoder: nn.ModuleList, bottleneck: nn.Module, x: torch.Tensor,
                skips: list | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Table 1 up to the bottleneck, the one implementation shared by :class:`Generator` and transfer's
    classifier (which holds the generator's ``encoder`` and ``bottleneck`` modules).

    (B, C_in, S, S) -> (B, bottleneck, 1, 1); each encoder layer's output (B, C_i, S/2^i, S/2^i) is
    appended to ``skips`` when a list is given (the U-Net skips). ``mask`` (B, 1, S, S), 1 = hole, reaches
    the partial convolutions (``model.conv=partial``) as their known mask ``1 - mask``; None = no hole."""
    known = None if mask is None else 1 - mask.float()
    for layer in encoder:
        if isinstance(layer, MaskedBlock):                 # partial / gated conv: (x, known) -> (x, known)
            x, known = layer(x, known)
        else:
            x = layer(x)
        if skips is not None:
            skips.append(x)
    return bottleneck(x)


class Generator(nn.Module):
    """Encoder-decoder with optional U-Net skips. Input (B, C_in, S, S), C_in = 3 (+1 with mask_channel)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.arch != "unet":
            raise InpaintsslError(f"model.arch={cfg.arch}: this generator is fully convolutional (the bundled "
                                  "inpainting model is), with no Table 1 encoder and bottleneck to transfer or "
                                  "probe; use a U-Net run (any m1/m2/m3 or m1-plus preset)")
        self.cfg = cfg
        chans = encoder_channels(cfg)
        in_ch = 3 + int(cfg.mask_channel)
        self.encoder = nn.ModuleList()
        prev = in_ch
        for i, ch in enumerate(chans):
            if cfg.conv == "standard":
                self.encoder.append(_block(nn.Conv2d(prev, ch, 4, 2, 1, bias=i == 0), ch, i > 0,
                                           nn.LeakyReLU(0.2)))
            else:                                      # partial / gated: same sizes, bias and norm
                self.encoder.append(MASKED_BLOCKS[cfg.conv](prev, ch, 4, 2, 1, bias=i == 0, norm=i > 0))
            prev = ch
        # 4x4 -> 1x1 bottleneck (Table 1: Conv2d 4, stride 1, 4000); standard for every model.conv (docstring)
        self.bottleneck = _block(nn.Conv2d(prev, cfg.bottleneck, 4, 1, 0, bias=False), cfg.bottleneck, True,
                                 nn.LeakyReLU(0.2))
        # decoder: 1x1 -> 4x4 (ReLU per Table 1), then stride-2 up-sampling layers mirroring the encoder
        self.decoder = nn.ModuleList()
        self.decoder.append(_block(nn.ConvTranspose2d(cfg.bottleneck, chans[-1], 4, 1, 0, bias=False),
                                   chans[-1], True, nn.ReLU()))
        outs = list(reversed(chans[:-1])) + [3]       # e.g. 256, 128, 64, 64, 3
        if cfg.predict == "patch":                     # one fewer up-sampling layer: (S/2, S/2) output
            outs = list(reversed(chans[:-1]))[:len(chans) - 2] + [3]
        prev = chans[-1]
        for j, ch in enumerate(outs):
            skip_ch = chans[-1 - j] if self.has_skip(j) else 0   # encoder layer mirrored to this input
            last = j == len(outs) - 1
            if cfg.upsample == "resize":               # nearest x2 + 3x3 conv, against the checkerboard
                conv = ResizeConv2d(prev + skip_ch, ch, bias=last)
            else:
                conv = nn.ConvTranspose2d(prev + skip_ch, ch, 4, 2, 1, bias=last)
            self.decoder.append(_block(conv, ch, not last, nn.Tanh() if last else nn.LeakyReLU(0.2)))
            prev = ch

    def has_skip(self, j: int) -> bool:
        """Whether decoder layer ``1 + j`` reads the skip of encoder layer ``len(encoder) - j``: every layer
        with the paper's skips, none with ``skips=false``, and not the ``skip_drop`` deepest ones."""
        return self.cfg.skips and j >= self.cfg.skip_drop

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips: list[torch.Tensor] = []
        z = run_encoder(self.encoder, self.bottleneck, x, skips, mask)
        return z, skips                                # (B, bottleneck, 1, 1), [(B, C_i, S/2^i, S/2^i)]

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder (Table 1 up to the bottleneck): (B, C_in, S, S) -> (B, bottleneck, 1, 1).

        ``mask`` (B, 1, S, S), 1 = hole, is used by partial convolutions only; None = every pixel known."""
        return self.encode(x, mask)[0]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C_in, S, S), the corrupted image; mask: (B, 1, S, S), 1 = hole (read by model.conv=partial
        only; the other encoders ignore it). None = no hole."""
        z, skips = self.encode(x, mask)
        return self.decode(z, skips)

    def decode(self, z: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """The decoder: the bottleneck ``z`` (B, bottleneck, 1, 1) and the encoder's outputs -> the image
        (B, 3, S, S), or (B, 3, S/2, S/2) for predict="patch". In training, each skip it reads is zeroed per
        sample with probability ``skip_dropout`` (drawn from the global RNG, which training seeds and
        checkpoints), the survivors scaled by 1 / (1 - p) as in dropout."""
        h = self.decoder[0](z)                         # (B, C_last, 4, 4)
        p = self.cfg.skip_dropout
        for j, layer in enumerate(self.decoder[1:]):
            if self.has_skip(j):
                s = skips[-1 - j]
                if self.training and p > 0:
                    keep = (torch.rand(s.shape[0], 1, 1, 1, device=s.device) >= p).to(s.dtype)
                    s = s * keep / (1 - p)
                h = torch.cat([h, s], dim=1)
            h = layer(h)
        return h


class Discriminator(nn.Module):
    """Table 2. ``kind="global"`` ends in Conv2d* -> (B,) logits; ``kind="local"`` ends in a linear layer.

    ``norm`` (``model.d_norm``): "batch" (Table 2's, default), "layer" (per-sample layer norm over C, H, W,
    as a GroupNorm with one group) or "none" (then every conv has a bias)."""

    def __init__(self, image_size: int, width: int = 64, kind: str = "global", norm: str = "batch"):
        super().__init__()
        if kind not in ("global", "local"):
            raise ValueError(f"kind must be 'global' or 'local', not {kind!r}")
        self.kind = kind
        n = _num_down(image_size)                      # 5 at 128 px: 128 -> 4
        chans = [width * m for m in (1, 2, 4, 8, 8, 8, 8, 8)[:n]]
        layers, prev = [], 3
        for i, ch in enumerate(chans):
            conv = nn.Conv2d(prev, ch, 4, 2, 1, bias=i == 0 or norm == "none")
            layers.append(_block(conv, ch, norm if i > 0 else False, nn.LeakyReLU(0.2)))
            prev = ch
        self.features = nn.Sequential(*layers)         # (B, 3, S, S) -> (B, C, 4, 4)
        if kind == "global":
            self.head = nn.Conv2d(prev, 1, 4, 2, 0)    # Conv2d*: (B, C, 4, 4) -> (B, 1, 1, 1)
        else:
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(prev * 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).reshape(x.shape[0])   # (B,) logits


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), batch-norm scale N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def add_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every conv and linear weight of ``module``.

    torch's parametrization: the weight is divided by its largest singular value, estimated by one power
    iteration per training forward. State-dict keys become ``...parametrizations.weight.original``."""
    from torch.nn.utils.parametrizations import spectral_norm
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            spectral_norm(m)
    return module


def make_generator(cfg: ModelConfig) -> nn.Module:
    """The generator ``model.arch`` names: Table 1's :class:`Generator` or the fully convolutional
    :class:`.fcn.ConvGenerator`."""
    if cfg.arch == "fcn":
        return ConvGenerator(cfg)
    return Generator(cfg)


def build_models(cfg: ModelConfig) -> dict[str, nn.Module]:
    """The generator and whichever discriminators the config enables, DCGAN-initialised
    (the discriminators spectrally normalised after the initialisation with ``model.spectral_norm``)."""
    models: dict[str, nn.Module] = {"generator": make_generator(cfg)}
    if cfg.global_d:
        models["d_global"] = Discriminator(cfg.image_size, cfg.d_width, "global", cfg.d_norm)
    if cfg.local_d:
        models["d_local"] = Discriminator(cfg.image_size, cfg.d_width, "local", cfg.d_norm)
    for m in models.values():
        init_weights(m)
    if cfg.spectral_norm:
        for k in ("d_global", "d_local"):
            if k in models:
                add_spectral_norm(models[k])
    return models
