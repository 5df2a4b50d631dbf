"""Inpaint photos of any size with a trained generator.

    inpainter = Inpainter.from_checkpoint("runs/m1")          # a run folder or a .pt file
    out = inpainter(rgb, hole)        # rgb: (H, W, 3) uint8; hole: (H, W) bool -> (H, W, 3) uint8

How a photo of any size is handled (the model only knows S x S images with the hole in the middle):

1. the hole's bounding box is found; a square *context window* of side 2 x max(box height, box width)
   is centred on it, so the hole sits inside the window's central half, as in training (the paper's
   hole is the central square of half the side). Parts of the window beyond the photo are filled by
   edge replication;
2. the hole's pixels are blanked *before* the window is resized to S x S (bicubic), so nothing of what
   is being removed reaches the model; the low-resolution mask is every pixel that a hole pixel falls
   into, dilated by the resize kernel's reach (every pixel whose bicubic taps touch the hole, see
   :func:`low_res_hole`), so the model never sees the blank blended into the context either. The
   generator predicts the window (M3: its central patch);
3. the prediction is resized back to the window's size and copied into the hole pixels only: every
   pixel outside the hole is bit-identical to the input.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import generator_weights, load_checkpoint
from ..config import Config, config_from_dict
from ..errors import InpaintsslError
from ..data.images import to_tensor, to_uint8
from .masks import center_mask
from .models import Generator
from .step import autocast, generate, pick_device, resolve_precision


def center_hole(height: int, width: int) -> np.ndarray:
    """The central square hole whose side is half the image's shorter side. (H, W) bool."""
    side = max(1, min(height, width) // 2)
    top, left = (height - side) // 2, (width - side) // 2
    hole = np.zeros((height, width), dtype=bool)
    hole[top:top + side, left:left + side] = True
    return hole


def context_window(hole: np.ndarray, min_side: int = 16) -> tuple[int, int, int]:
    """(top, left, side) of the square window centred on the hole's bounding box (may leave the image)."""
    ys, xs = np.nonzero(hole)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = max(min_side, 2 * max(y1 - y0, x1 - x0))
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    return int(round(cy - side / 2)), int(round(cx - side / 2)), int(side)


def _crop_padded(a: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """a[top:top+side, left:left+side] with edge replication where the window leaves the array."""
    h, w = a.shape[:2]
    pad = [(max(0, -top), max(0, top + side - h)), (max(0, -left), max(0, left + side - w))]
    pad += [(0, 0)] * (a.ndim - 2)
    padded = np.pad(a, pad, mode="edge")
    t, l_ = top + pad[0][0], left + pad[1][0]
    return padded[t:t + side, l_:l_ + side]


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """The bicubic resize of the context window (antialiased when shrinking), (B, C, s, s) -> (B, C, size, size)."""
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=x.shape[-1] > size)


@functools.lru_cache(maxsize=64)
def _taps(s: int, S: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) input index that each of the S outputs of :func:`_resize` (s -> S) reads with a non-zero
    weight, measured on torch's own kernel (the resize is separable, so rows and columns share this)."""
    first, last = np.full(S, s, np.int64), np.full(S, -1, np.int64)
    for a in range(0, s, 256):                                   # impulses, 256 at a time: column i holds row a+i
        n = min(256, s - a)
        imp = torch.zeros(1, 1, s, max(n, 2))                    # float32, like the resize itself
        imp[0, 0, a + torch.arange(n), torch.arange(n)] = 1.0
        # the width is kept (weights 0, 1, 0, 0: the identity) and never 1: torch 2.13's antialiased
        # kernel gets 1-pixel-wide images wrong
        w = F.interpolate(imp, size=(S, imp.shape[-1]), mode="bicubic", align_corners=False,
                          antialias=s > S)[0, 0, :, :n].T
        reads = (w != 0).numpy()                                 # (n, S): input a+i feeds output j
        idx = np.arange(a, a + n)[:, None]
        first = np.minimum(first, np.where(reads, idx, s).min(0))
        last = np.maximum(last, np.where(reads, idx, -1).max(0))
    return first, last


def low_res_hole(hole: np.ndarray, S: int) -> torch.Tensor:
    """(s, s) bool hole of a window -> (1, 1, S, S) float mask for the model: every low-res pixel that a hole
    pixel falls into (max-pooled when shrinking, nearest when enlarging) or that the bicubic resize computes
    from a hole pixel (the dilation by the kernel's reach: 2 px when shrinking, about 2 x S / s when enlarging)."""
    s = hole.shape[0]
    m = torch.from_numpy(hole).float()[None, None]                           # (1, 1, s, s)
    m = F.adaptive_max_pool2d(m, (S, S)) if s > S else F.interpolate(m, size=(S, S), mode="nearest")
    if s == S:
        return m
    first, last = _taps(s, S)
    area = np.zeros((s + 1, s + 1), np.int64)                                # summed-area table of the hole
    area[1:, 1:] = hole.astype(np.int64).cumsum(0).cumsum(1)
    y0, y1 = first[:, None], last[:, None] + 1                               # (S, 1): rows read by output row j
    x0, x1 = first[None, :], last[None, :] + 1                               # (1, S)
    touched = (area[y1, x1] - area[y0, x1] - area[y1, x0] + area[y0, x0]) > 0  # (S, S)
    return torch.maximum(m, torch.from_numpy(touched).float()[None, None])


class Inpainter:
    """A generator in eval mode plus the config it was trained with.

    ``precision`` is "bf16" where the device computes bf16 natively (CUDA, a CPU with AVX-512 BF16 or
    AMX: :func:`step.resolve_precision`) unless ``amp=False``: the generator then runs under bf16
    autocast with channels_last, as in training, and its output is cast to float32 before the resize
    and the composite. Elsewhere everything is fp32.

    Measured (m1-plus-64 checkpoint at step 2000, 50 VOC2007 photos, half with the central hole, half
    with a random rectangle; AMD EPYC with AVX-512 BF16, one thread, under load: the other core ran a
    training job): the uint8 fills of bf16 and fp32 differ by at most 1 (mean 0.08 over 3.6 M hole
    values); one photo took 50.7 ms with bf16 and 52.0 ms with fp32 (median of 150: the generator is
    ~9 vs ~12 ms of it, the resizes most of the rest), so bf16 is kept at batch 1 too; batched at 64 px
    (evaluate's path, 50 images) 2.5 vs 4.4 ms per image, fills again within 1 (mean 0.09)."""

    def __init__(self, generator: Generator, cfg: Config, device: torch.device, name: str = "model",
                 amp: bool = True):
        self.generator, self.cfg, self.device, self.name = generator.eval(), cfg, device, name
        self.precision = resolve_precision(device, amp)         # "bf16" (autocast) or "fp32"
        if self.precision == "bf16":
            self.generator = self.generator.to(memory_format=torch.channels_last)
        self.path: str | None = None          # the checkpoint file and its training step, when loaded from one
        self.step: int | None = None

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: str = "auto", amp: bool = True) -> "Inpainter":
        ckpt = load_checkpoint(Path(path))
        cfg = config_from_dict(ckpt["config"])
        G = Generator(cfg.model)
        try:
            G.load_state_dict(generator_weights(ckpt))
        except RuntimeError as e:
            raise InpaintsslError(f"{ckpt['path']}: generator weights do not fit preset "
                                  f"{cfg.preset!r} ({str(e).splitlines()[0][:160]})") from None
        dev = pick_device(device)
        p = Path(path)
        name = p.name if p.is_dir() else (p.parent.parent.name if p.parent.name == "checkpoints" else p.stem)
        model = cls(G.to(dev), cfg, dev, name, amp)
        model.path, model.step = ckpt["path"], ckpt.get("step")
        return model

    @property
    def image_size(self) -> int:
        return self.cfg.model.image_size

    def hole_shape_warning(self, shape: str) -> str | None:
        """One warning line when a model trained on centre holes only is asked to fill another ``shape``
        ("center", "rect", "freeform", "mixed", or "painted" for user masks), else None.

        Measured (issue 13, 701 unseen VOC2012 photos, 64 px): the centre-trained m1-plus-64 scores 16.36 dB
        on centre holes (Telea 15.12) but 12.48 dB on free-form strokes (Telea 20.81): it leaves them gray."""
        if self.cfg.mask.kind != "center" or shape == "center" or self.cfg.model.predict == "patch":
            return None
        return (f"warning: {self.name} was trained on centre holes only; other hole shapes ({shape}) come out "
                "gray and worse than --method telea. Use a model trained with --mask mixed (e.g. bundled)")

    @torch.no_grad()
    def generate(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """The generator's float32 (B, 3, S, S) prediction, on the device, for x: (B, 3, S, S) in [-1, 1]
        and m: (B, 1, S, S), 1 = hole (the generator sees x * (1 - m)), at :attr:`precision`."""
        if self.precision == "bf16":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            pred = generate(self.generator, x, m, self.cfg)
        return pred.float().contiguous()

    @torch.no_grad()
    def predict_window(self, window: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """window: (s, s, 3) uint8, hole: (s, s) bool -> the model's (s, s, 3) uint8 prediction."""
        S, s = self.image_size, window.shape[0]
        x = to_tensor(window).unsqueeze(0)                                       # (1, 3, s, s)
        x = x.masked_fill(torch.from_numpy(hole)[None, None], 0.0)              # blank the hole before resizing
        x = _resize(x, S).clamp(-1, 1)                                           # (1, 3, S, S)
        m = low_res_hole(hole, S)                                                # (1, 1, S, S), dilated
        if self.cfg.model.predict == "patch":          # M3 was trained on the central square hole only
            m = center_mask(1, S)
        pred = self.generate(x.to(self.device), m.to(self.device)).cpu()
        pred = F.interpolate(pred, size=(s, s), mode="bicubic", align_corners=False, antialias=S > s)
        return to_uint8(pred[0].clamp(-1, 1))

    def __call__(self, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InpaintsslError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
        if hole.shape != rgb.shape[:2]:
            raise InpaintsslError(f"mask is {hole.shape[1]}x{hole.shape[0]} but the image is "
                                  f"{rgb.shape[1]}x{rgb.shape[0]}")
        if not hole.any():
            return rgb.copy()
        top, left, side = context_window(hole)
        window = _crop_padded(rgb, top, left, side)
        pred = self.predict_window(window, _crop_padded(hole, top, left, side))
        out = rgb.copy()
        ys, xs = np.nonzero(hole)
        out[ys, xs] = pred[ys - top, xs - left]                # hole pixels only
        return out
