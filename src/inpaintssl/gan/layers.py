"""Layers beyond the paper's plain convolutions (issue 15, the paper's section 7 "future work").

    conv = PartialConv2d(3, 64, 4, 2, 1)          # Liu et al. 2018
    y, known = conv(x, known)                     # x: (B, C, H, W); known: (B, 1, H, W), 1 = known pixel
    block = GatedBlock(64, 128, 4, 2, 1, bias=False, norm=True)    # Yu et al. 2019 (DeepFill v2)
    y, known = block(y, known)                    # the gate is learned; ``known`` passes through
    up = ResizeConv2d(128, 64)                    # Odena et al. 2016: nearest x2, then a 3x3 conv

The generator's encoder (:mod:`.models`, ``model.conv``) is built from :class:`MaskedBlock` layers when
``model.conv`` is ``partial`` or ``gated``: each takes and returns ``(features, known)``, so the partial
convolutions' mask travels layer by layer next to the features. ``known=None`` means "every pixel is
known" (no hole, e.g. transfer's classifier): a partial convolution is then a standard convolution whose
output is multiplied by a fixed factor that is 1 everywhere except within ``padding`` pixels of the border,
where the zero padding counts as missing input (partial-convolution padding, Liu et al. 2018b).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class PartialConv2d(nn.Conv2d):
    """Partial convolution (Liu et al., ECCV 2018), single-channel mask (all input channels share it).

    For each output position with window W, known mask M and input X:

        y = conv(X * M) * |W| / sum(M)  (+ bias)   if sum(M) > 0,   else 0
        M' = 1                                     if sum(M) > 0,   else 0

    ``|W|`` = kernel height x width; the mask is zero-padded like the input, so padding is missing input.
    The output depends on no pixel where ``known == 0`` (hole pixels may hold anything).
    Groups and dilation are not supported (the generator needs neither)."""

    def forward(self, x: torch.Tensor, known: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if known is None:                                          # no hole: every pixel is known
            known = x.new_ones((x.shape[0], 1, *x.shape[2:]), dtype=torch.float32)
        with torch.no_grad():
            # fraction of known inputs per window, fp32 (exact for 0/1 masks): sum(M) / |W|
            coverage = F.avg_pool2d(known.float(), self.kernel_size, self.stride, self.padding,
                                    count_include_pad=True)        # (B, 1, H', W')
            new_known = (coverage > 0).float()
            ratio = new_known / coverage.clamp_min(1e-8)           # |W| / sum(M), 0 where nothing is known
        out = self._conv_forward(x * known.to(x.dtype), self.weight, None)
        out = out * ratio.to(out.dtype)
        if self.bias is not None:
            out = (out + self.bias.view(1, -1, 1, 1)) * new_known.to(out.dtype)
        return out, new_known


class MaskedBlock(nn.Module):
    """Marks an encoder layer called as ``x, known = layer(x, known)`` (:func:`models.run_encoder`)."""


class PartialBlock(MaskedBlock):
    """PartialConv2d -> batch norm (optional) -> LeakyReLU(0.2). Returns (features, updated known mask).

    Batch norm runs on every position, also those with no known input (zero there before the norm); the
    next partial convolution ignores them through the mask, and the skip connection passes them on, but
    they depend on no hole pixel."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, bias: bool, norm: bool):
        super().__init__()
        self.conv = PartialConv2d(in_ch, out_ch, kernel, stride, padding, bias=bias)
        self.norm = nn.BatchNorm2d(out_ch) if norm else nn.Identity()
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x, known=None):
        y, known = self.conv(x, known)
        return self.act(self.norm(y)), known


class GatedBlock(MaskedBlock):
    """Gated convolution (Yu et al., ICCV 2019, DeepFill v2): act(norm(conv_f(x))) * sigmoid(conv_g(x)).

    A learned soft gate in (0, 1) per output channel and pixel; the gate conv always has a bias (it has no
    norm after it). ``known`` is not used and is returned unchanged: the gate learns where the hole is
    from the input (DeepFill v2 feeds the mask as an input channel: ``model.mask_channel=true`` here)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, bias: bool, norm: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=bias)
        self.gate = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=True)
        self.norm = nn.BatchNorm2d(out_ch) if norm else nn.Identity()
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x, known=None):
        return self.act(self.norm(self.conv(x))) * torch.sigmoid(self.gate(x)), known


MASKED_BLOCKS: dict[str, type[MaskedBlock]] = {"partial": PartialBlock, "gated": GatedBlock}


class ResizeConv2d(nn.Sequential):
    """Nearest-neighbour up-sampling by 2, then a 3x3 convolution (padding 1): (B, C, H, W) -> (B, C', 2H, 2W).

    Odena, Dumoulin & Olah (2016), "Deconvolution and checkerboard artifacts": a 4x4 stride-2 transposed
    conv gives every other output pixel a different number of kernel taps (uneven overlap), which shows as
    a checkerboard; resize-then-convolve gives every output pixel the same taps. Nearest rather than
    bilinear because that article reports its best results with nearest-neighbour and difficulty with
    bilinear, and nearest is the cheaper of the two (the 3x3 conv does the smoothing)."""

    def __init__(self, in_ch: int, out_ch: int, bias: bool = False):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=bias))
        self.in_channels, self.out_channels = in_ch, out_ch
