"""Inpaint photos of any size with a trained generator.

    inpainter = Inpainter.from_checkpoint("runs/m1")          # a run folder or a .pt file
    out = inpainter(rgb, hole)        # rgb: (H, W, 3) uint8; hole: (H, W) bool -> (H, W, 3) uint8

How a photo of any size is handled (the model only knows S x S images with the hole in the middle):

1. the hole's bounding box is found; a square *context window* of side 2 x max(box height, box width)
   is centred on it, so the hole sits inside the window's central half, as in training (the paper's
   hole is the central square of half the side). Parts of the window beyond the photo are filled by
   edge replication;
2. the window is resized to S x S (bicubic), the mask with it (a pixel is hole if any hole pixel falls
   into it), and the generator predicts the window (M3: its central patch);
3. the prediction is resized back to the window's size and copied into the hole pixels only: every
   pixel outside the hole is bit-identical to the input.
"""

from __future__ import annotations

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
from .step import generate, pick_device


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


class Inpainter:
    """A generator in eval mode plus the config it was trained with."""

    def __init__(self, generator: Generator, cfg: Config, device: torch.device, name: str = "model"):
        self.generator, self.cfg, self.device, self.name = generator.eval(), cfg, device, name
        self.path: str | None = None          # the checkpoint file and its training step, when loaded from one
        self.step: int | None = None

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: str = "auto") -> "Inpainter":
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
        model = cls(G.to(dev), cfg, dev, name)
        model.path, model.step = ckpt["path"], ckpt.get("step")
        return model

    @property
    def image_size(self) -> int:
        return self.cfg.model.image_size

    @torch.no_grad()
    def predict_window(self, window: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """window: (s, s, 3) uint8, hole: (s, s) bool -> the model's (s, s, 3) uint8 prediction."""
        S, s = self.image_size, window.shape[0]
        x = to_tensor(window).unsqueeze(0)                                       # (1, 3, s, s)
        x = F.interpolate(x, size=(S, S), mode="bicubic", align_corners=False, antialias=s > S).clamp(-1, 1)
        m = torch.from_numpy(hole).float()[None, None]                           # (1, 1, s, s)
        m = (F.adaptive_max_pool2d(m, (S, S)) if s > S else F.interpolate(m, size=(S, S), mode="nearest"))
        if self.cfg.model.predict == "patch":          # M3 was trained on the central square hole only
            m = center_mask(1, S)
        pred = generate(self.generator, x.to(self.device), m.to(self.device), self.cfg).float().cpu()
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
