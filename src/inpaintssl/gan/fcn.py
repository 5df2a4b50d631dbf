"""A fully convolutional generator that runs at the photo's own resolution (``model.arch="fcn"``).

    G = ConvGenerator(cfg.model)          # (B, 4, H, W): I * (1 - M) and M  ->  (B, 3, H, W) in [-1, 1]

Beyond the paper: Table 1's generator ends in a 1x1 bottleneck, so it only knows S x S images and every
photo has to be shrunk into one S x S window. This one has no fixed size (H and W multiples of 8; the
inpainter pads), so :class:`..gan.inpainter.Inpainter` runs it on a thin brush stroke at the photo's own
scale and on a large hole at a scale where the hole is as thick as in training. It always reads the hole
mask as a 4th input channel (``model.mask_channel`` must be true), since a blanked pixel (0, mid-gray)
is otherwise the same as gray content.

Layout, with c = ``model.width`` (32 for the bundled model):

* a 3x3 conv at full resolution (c), then three 3x3 stride-2 convs to 1/2 (2c), 1/4 (4c), 1/8 (4c);
* at 1/8, ``model.fcn_blocks`` residual 3x3 convs with dilations 1, 2, 4, 8, ... (cycled): the receptive
  field of the middle covers a 128 px window several times over, so a 64 px hole is filled from context;
* a decoder of nearest x2 + 3x3 conv (no checkerboard), each level concatenated with the encoder's output
  at that resolution (U-Net skips: they carry the sharp context next to the hole), down to 3 channels
  and a tanh.

No normalisation layers: the same statistics hold for a 128 px training crop and a 500 px photo, and
eval and train mode compute the same function. LeakyReLU(0.2) everywhere but the output.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig

MULTIPLE = 8            # H and W must be multiples of this (three stride-2 levels)
_DILATIONS = (1, 2, 4, 8)


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation)


class _Residual(nn.Module):
    def __init__(self, ch: int, dilation: int):
        super().__init__()
        self.conv = _conv(ch, ch, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.leaky_relu(self.conv(x), 0.2)


class ConvGenerator(nn.Module):
    """(B, 4, H, W) -> (B, 3, H, W); H, W multiples of :data:`MULTIPLE`. See the module docstring."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.width
        chans = (c, 2 * c, 4 * c, 4 * c)                 # full, 1/2, 1/4, 1/8
        self.stem = _conv(4, chans[0])
        self.down = nn.ModuleList(_conv(chans[i], chans[i + 1], stride=2) for i in range(3))
        self.middle = nn.Sequential(*(_Residual(chans[3], _DILATIONS[i % len(_DILATIONS)])
                                      for i in range(cfg.fcn_blocks)))
        # decoder level j: up from chans[3 - j] (or the previous level's output) to 1/4, 1/2, full
        outs = (2 * c, c, c // 2)
        self.up = nn.ModuleList()
        prev = chans[3]
        for j, out in enumerate(outs):
            self.up.append(_conv(prev + chans[2 - j], out))
            prev = out
        self.out = nn.Conv2d(prev, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, 4, H, W), the blanked image and its mask (1 = hole); ``mask`` is unused (the signature
        of :class:`..gan.models.Generator`)."""
        h, w = x.shape[-2:]
        if h % MULTIPLE or w % MULTIPLE:
            raise ValueError(f"ConvGenerator needs H and W multiples of {MULTIPLE}, got {h}x{w}")
        act = lambda t: F.leaky_relu(t, 0.2)            # noqa: E731
        feats = [act(self.stem(x))]
        for layer in self.down:
            feats.append(act(layer(feats[-1])))
        y = self.middle(feats[-1])
        for j, layer in enumerate(self.up):
            y = F.interpolate(y, scale_factor=2, mode="nearest")
            y = act(layer(torch.cat([y, feats[2 - j]], dim=1)))
        return torch.tanh(self.out(y))
