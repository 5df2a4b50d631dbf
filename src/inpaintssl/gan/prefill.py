"""OpenCV's Telea fill (Telea 2004, fast marching) as the generator's first guess of the hole.

    rgb_filled = telea_prefill(rgb, hole)          # (H, W, 3) uint8, (H, W) bool -> (H, W, 3) uint8
    x = telea_fill(real, mask)                     # (B, 3, H, W) in [-1, 1], (B, 1, H, W) -> same, filled

Both read only the pixels outside the hole (the hole's pixels are zeroed first), so what the hole held
never matters. ``telea_fill`` runs on the CPU per image (about 3 ms for a 128 px image with a mixed hole on
one core) and returns the batch on its device and dtype: ``model.hole_fill=telea`` uses it in training
and inference alike.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

RADIUS = 3                      # cv2.inpaint's neighbourhood radius (OpenCV's documented example)


def telea_prefill(rgb: np.ndarray, hole: np.ndarray, radius: int = RADIUS) -> np.ndarray:
    """The hole of an (H, W, 3) uint8 photo filled by Telea from the pixels outside it."""
    img = np.ascontiguousarray(rgb).copy()
    img[hole] = 0
    return cv2.inpaint(img, hole.astype(np.uint8) * 255, radius, cv2.INPAINT_TELEA)


@torch.no_grad()
def telea_fill(real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] with (B, 1, H, W) holes (1 = hole) -> the images with Telea in the hole
    (8-bit: the fill is computed on the uint8 image), outside the hole unchanged."""
    u8 = ((real.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    holes = mask[:, 0].detach().cpu().numpy() > 0.5
    filled = np.stack([telea_prefill(img, h) for img, h in zip(u8, holes)])
    t = torch.from_numpy(filled).to(real.device).permute(0, 3, 1, 2).to(real.dtype) / 127.5 - 1
    return torch.where(mask > 0.5, t, real)
