"""Hole masks, ``(B, 1, S, S)`` float with **1 = hole**, drawn from an explicit ``torch.Generator``.

    g = torch.Generator().manual_seed(0)
    m = make_masks("mixed", batch=16, size=128, generator=g, cfg=MaskConfig())

Kinds:

* ``center``   the paper's hole: the central square whose side is half the image side;
* ``rect``     an axis-aligned rectangle, each side in [rect_min, rect_max] x S, anywhere in the image;
* ``freeform`` 1..strokes_max brush strokes (poly-lines of thick round-capped segments), DeepFill-style;
* ``mixed``    each sample picks one of the three kinds uniformly.

Masks are drawn on the CPU from the generator alone (never the global RNG), so the same seed gives
the same masks on every machine; callers move them to their device.
"""

from __future__ import annotations

import math

import torch

from ..config import MaskConfig

KINDS = ("center", "rect", "freeform", "mixed")


def center_mask(batch: int, size: int) -> torch.Tensor:
    m = torch.zeros(batch, 1, size, size)
    a = size // 4
    m[:, :, a:a + size // 2, a:a + size // 2] = 1.0
    return m


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """Integer in [lo, hi] inclusive."""
    return int(torch.randint(lo, hi + 1, (), generator=g).item())


def rect_mask(size: int, g: torch.Generator, cfg: MaskConfig) -> torch.Tensor:
    m = torch.zeros(1, size, size)
    h = max(1, round(_uniform(g, cfg.rect_min, cfg.rect_max) * size))
    w = max(1, round(_uniform(g, cfg.rect_min, cfg.rect_max) * size))
    top, left = _randint(g, 0, size - h), _randint(g, 0, size - w)
    m[:, top:top + h, left:left + w] = 1.0
    return m


def _segment_distance(px: torch.Tensor, py: torch.Tensor, a: tuple[float, float], b: tuple[float, float]):
    """Distance of every pixel centre to the segment a-b. px, py: (S, S) pixel coordinates."""
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    length2 = dx * dx + dy * dy
    if length2 == 0:
        t = torch.zeros_like(px)
    else:
        t = (((px - ax) * dx + (py - ay) * dy) / length2).clamp(0, 1)
    return torch.hypot(px - (ax + t * dx), py - (ay + t * dy))


def freeform_mask(size: int, g: torch.Generator, cfg: MaskConfig) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    m = torch.zeros(size, size, dtype=torch.bool)
    for _ in range(_randint(g, 1, max(1, cfg.strokes_max))):
        radius = 0.5 * size * _uniform(g, cfg.brush_min, cfg.brush_max)
        x, y = _uniform(g, 0, size), _uniform(g, 0, size)
        angle = _uniform(g, 0, 2 * math.pi)
        for _ in range(_randint(g, 2, 6)):                       # vertices of the poly-line
            angle += _uniform(g, -math.pi / 2, math.pi / 2)
            step = _uniform(g, 0.1, 0.35) * size
            nx = min(max(x + step * math.cos(angle), 0.0), float(size))
            ny = min(max(y + step * math.sin(angle), 0.0), float(size))
            m |= _segment_distance(xs, ys, (x, y), (nx, ny)) <= radius
            x, y = nx, ny
    return m.float().unsqueeze(0)


def make_masks(kind: str, batch: int, size: int, generator: torch.Generator,
               cfg: MaskConfig | None = None) -> torch.Tensor:
    """A batch of masks (B, 1, size, size), float, 1 = hole."""
    cfg = cfg or MaskConfig()
    if kind not in KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == "center":
        return center_mask(batch, size)
    out = []
    for _ in range(batch):
        k = kind if kind != "mixed" else ("center", "rect", "freeform")[_randint(generator, 0, 2)]
        if k == "center":
            out.append(center_mask(1, size)[0])
        elif k == "rect":
            out.append(rect_mask(size, generator, cfg))
        else:
            out.append(freeform_mask(size, generator, cfg))
    return torch.stack(out)


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A generator that depends only on (seed, step, stream): what makes resumed runs exact."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 7 + stream) % (1 << 63))
