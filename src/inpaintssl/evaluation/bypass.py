"""Does the decoder use the bottleneck? Fill quality with one inner tensor replaced by its mean.

    result = bottleneck_ablation(G, cfg, real, mask)       # {"normal": dB, "z": dB, "layer4": dB, ...}

For a U-Net generator (Table 1) each part is replaced, for every image, by its mean over the images given
(the "batch" is the whole evaluation set), and the decoder runs on that:

* ``z``: the 1x1 bottleneck, the encoder output transfer fine-tunes from. If the hole PSNR hardly moves, the
  decoder fills from the skips alone and the bottleneck need not carry the context (issue 27);
* ``layerK``: only the copy of encoder layer K's output that the skip hands to the decoder (the encoder's
  deeper layers still see the real one); a layer whose skip the model has not (``model.skips=false``,
  ``model.skip_drop``) is left out.

For the fully convolutional generator (:mod:`..gan.fcn`) the part is ``middle``, the output of its dilated
blocks at 1/8 resolution (the nearest thing it has to a bottleneck; replaced by its mean over the images at
each position). The score is the hole PSNR (dB, mean over images, composited: the photo outside the hole).
"""

from __future__ import annotations

import torch

from ..config import Config
from ..gan.fcn import ConvGenerator
from ..gan.models import Generator
from ..gan.step import compose, generate, generator_input, paste_patch
from .metrics import image_metrics


def _hole_psnr(pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> float:
    comp = compose(pred.float().clamp(-1, 1), real, mask)
    return float(image_metrics((comp + 1) / 2, (real + 1) / 2, mask)["psnr_hole"].mean())


def _mean_like(t: torch.Tensor) -> torch.Tensor:
    return t.mean(0, keepdim=True).expand_as(t)


@torch.no_grad()
def bottleneck_ablation(G: torch.nn.Module, cfg: Config, real: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """{"normal": hole PSNR, part: hole PSNR with that part replaced by its mean} for ``G`` in eval mode.

    real: (N, 3, S, S) in [-1, 1]; mask: (N, 1, S, S), 1 = hole. See the module docstring for the parts."""
    G.eval()
    out = {"normal": _hole_psnr(generate(G, real, mask, cfg), real, mask)}
    if isinstance(G, ConvGenerator):
        hook = G.middle.register_forward_hook(lambda _m, _i, y: _mean_like(y))
        try:
            out["middle"] = _hole_psnr(generate(G, real, mask, cfg), real, mask)
        finally:
            hook.remove()
        return out
    if not isinstance(G, Generator):
        raise TypeError(f"no bottleneck ablation for {type(G).__name__}")
    x = generator_input(real, mask, cfg.model.mask_channel, cfg.model.hole_fill)
    z, skips = G.encode(x, mask)

    def decoded(z_: torch.Tensor, skips_: list[torch.Tensor]) -> torch.Tensor:
        y = G.decode(z_, skips_)
        return paste_patch(real * (1 - mask), y) if cfg.model.predict == "patch" else y

    out["z"] = _hole_psnr(decoded(_mean_like(z), skips), real, mask)
    n = len(skips)
    for j in range(len(G.decoder) - 1):                          # decoder layer 1 + j reads encoder layer n - j
        if G.has_skip(j):
            k = n - j
            swapped = [_mean_like(s) if i == k - 1 else s for i, s in enumerate(skips)]
            out[f"layer{k}"] = _hole_psnr(decoded(z, swapped), real, mask)
    return out
