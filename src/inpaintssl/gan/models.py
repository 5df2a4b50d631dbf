"""The paper's networks (Tables 1 and 2): a U-Net generator and the global / local discriminators.

    G = Generator(cfg.model)              # (B, 3, S, S) in [-1, 1] -> (B, 3, S, S) (or the patch, M3)
    feats = G.forward_features(x)         # (B, bottleneck, 1, 1): the encoder, reused by transfer.py

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
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..config import ModelConfig

_MULTS = (1, 1, 2, 4, 8, 8, 8, 8)


def _num_down(image_size: int) -> int:
    return int(math.log2(image_size // 4))


def encoder_channels(cfg: ModelConfig) -> list[int]:
    return [cfg.width * _MULTS[i] for i in range(_num_down(cfg.image_size))]


def _block(conv: nn.Module, out_ch: int, norm: bool, act: nn.Module | None) -> nn.Sequential:
    layers = [conv]
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """Encoder-decoder with optional U-Net skips. Input (B, C_in, S, S), C_in = 3 (+1 with mask_channel)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        chans = encoder_channels(cfg)
        in_ch = 3 + int(cfg.mask_channel)
        self.encoder = nn.ModuleList()
        prev = in_ch
        for i, ch in enumerate(chans):
            self.encoder.append(_block(nn.Conv2d(prev, ch, 4, 2, 1, bias=i == 0), ch, i > 0, nn.LeakyReLU(0.2)))
            prev = ch
        # 4x4 -> 1x1 bottleneck (Table 1: Conv2d 4, stride 1, 4000)
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
            skip_ch = chans[-1 - j] if cfg.skips else 0   # encoder layer mirrored to this decoder input
            last = j == len(outs) - 1
            conv = nn.ConvTranspose2d(prev + skip_ch, ch, 4, 2, 1, bias=last)
            self.decoder.append(_block(conv, ch, not last, nn.Tanh() if last else nn.LeakyReLU(0.2)))
            prev = ch

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for layer in self.encoder:
            x = layer(x)
            skips.append(x)
        return self.bottleneck(x), skips               # (B, bottleneck, 1, 1), [(B, C_i, S/2^i, S/2^i)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder (Table 1 up to the bottleneck): (B, C_in, S, S) -> (B, bottleneck, 1, 1)."""
        return self.encode(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, skips = self.encode(x)
        h = self.decoder[0](z)                         # (B, C_last, 4, 4)
        for j, layer in enumerate(self.decoder[1:]):
            if self.cfg.skips:
                h = torch.cat([h, skips[-1 - j]], dim=1)
            h = layer(h)
        return h                                       # (B, 3, S, S) or (B, 3, S/2, S/2) for predict="patch"


class Discriminator(nn.Module):
    """Table 2. ``kind="global"`` ends in Conv2d* -> (B,) logits; ``kind="local"`` ends in a linear layer."""

    def __init__(self, image_size: int, width: int = 64, kind: str = "global"):
        super().__init__()
        if kind not in ("global", "local"):
            raise ValueError(f"kind must be 'global' or 'local', not {kind!r}")
        self.kind = kind
        n = _num_down(image_size)                      # 5 at 128 px: 128 -> 4
        chans = [width * m for m in (1, 2, 4, 8, 8, 8, 8, 8)[:n]]
        layers, prev = [], 3
        for i, ch in enumerate(chans):
            layers.append(_block(nn.Conv2d(prev, ch, 4, 2, 1, bias=i == 0), ch, i > 0, nn.LeakyReLU(0.2)))
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


def build_models(cfg: ModelConfig) -> dict[str, nn.Module]:
    """The generator and whichever discriminators the config enables, DCGAN-initialised."""
    models: dict[str, nn.Module] = {"generator": Generator(cfg)}
    if cfg.global_d:
        models["d_global"] = Discriminator(cfg.image_size, cfg.d_width, "global")
    if cfg.local_d:
        models["d_local"] = Discriminator(cfg.image_size, cfg.d_width, "local")
    for m in models.values():
        init_weights(m)
    return models
