"""Hole masks, ``(B, 1, S, S)`` float with **1 = hole**, drawn from an explicit ``torch.Generator``.

    g = torch.Generator().manual_seed(0)
    m = make_masks("mixed", batch=16, size=128, generator=g, cfg=MaskConfig())

Kinds:

* ``center``   the paper's hole: the central square whose side is half the image side;
* ``rect``     an axis-aligned rectangle, each side in [rect_min, rect_max] x S, anywhere in the image;
* ``freeform`` 1..strokes_max brush strokes (poly-lines of thick round-capped segments), DeepFill-style;
* ``mixed``    each sample picks one of the three kinds uniformly;
* ``patches``  masked-image modelling (MAE, He et al. 2022; SparK, Tian et al. 2023, for ConvNets): the
  image is cut into a grid of squares of side ``patch_size`` x S and a share of the cells drawn per image
  in [patch_ratio_min, patch_ratio_max] (default 50-75%) are holes;
* ``none``     no hole (all zeros): the plain autoencoder, the control of transfer experiments (issue 14).
  The masked L2 term and the local discriminator's input are then zero, so the generator learns only to
  reconstruct the whole image (the w1 term) with the global D's small adversarial term; with U-Net skips
  that is close to copying the input through the first skip, which is what makes it a control.

Masks are drawn on the CPU from the generator alone (never the global RNG), so the same seed gives
the same masks on every machine; callers move them to their device. The random numbers are read from
one bulk draw and the strokes painted for the whole batch at once (:func:`_paint_segments`): the masks
are exactly those of one generator call per number and one distance map per stroke segment, drawn
3-15x faster for freeform/mixed (1.6x for rect; batch 16-64 at 64-128 px, one thread on a loaded 2-core
machine); ``tests/test_masks.py`` pins the equality.
"""

from __future__ import annotations

import math

import torch

from ..config import MASK_KINDS, MaskConfig

KINDS = MASK_KINDS


def center_mask(batch: int, size: int) -> torch.Tensor:
    m = torch.zeros(batch, 1, size, size)
    a = size // 4
    m[:, :, a:a + size // 2, a:a + size // 2] = 1.0
    return m


class _Draws:
    """The scalar draws of a CPU ``torch.Generator``, read in order from one bulk draw.

    ``uniform(lo, hi)`` and ``randint(lo, hi)`` return exactly what ``lo + (hi - lo) * torch.rand((),
    generator=g).item()`` and ``torch.randint(lo, hi + 1, (), generator=g).item()`` would, one call per
    number, and :meth:`close` leaves ``g`` where those calls would have left it. Each such call takes one
    32-bit output of the generator's Mersenne Twister: a float32 uniform is its low 24 bits / 2^24, an
    integer in a range below 2^28 its remainder by the range (ATen's CPU transformations;
    ``tests/test_masks.py`` checks them against one-call draws). So the masks are those of one call per
    number (as this module drew them before), at a fraction of the cost."""

    def __init__(self, g: torch.Generator, n: int):
        self.g, self.start, self.i = g, g.get_state(), 0
        pairs = torch.empty((n + 1) // 2, dtype=torch.int64).random_(-2 ** 63, None, generator=g)
        self.raw = torch.stack([(pairs >> 32) & 0xFFFFFFFF, pairs & 0xFFFFFFFF], 1).flatten().tolist()

    def _next(self) -> int:
        self.i += 1
        return self.raw[self.i - 1]

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * ((self._next() & 0xFFFFFF) / 2 ** 24)

    def randint(self, lo: int, hi: int) -> int:
        """Integer in [lo, hi] inclusive."""
        return lo + self._next() % (hi + 1 - lo)

    def close(self) -> None:
        """Leave the generator after the draws used (the bulk draw took more)."""
        self.g.set_state(self.start)
        torch.rand(self.i, generator=self.g)                       # one 32-bit output per number


def patch_masks(batch: int, size: int, generator: torch.Generator, cfg: MaskConfig) -> torch.Tensor:
    """``patches`` masks (B, 1, size, size): a grid of n = ``round(1 / patch_size)`` cells a side (each
    ``size // n`` or one pixel more when ``size`` does not divide); each image masks ``round(ratio x n^2)``
    cells, the ratio uniform in [patch_ratio_min, patch_ratio_max], the cells in a random order."""
    n = max(2, round(1 / cfg.patch_size))                          # cells per side
    cells = n * n
    ratios = cfg.patch_ratio_min + (cfg.patch_ratio_max - cfg.patch_ratio_min) * torch.rand(batch, generator=generator)
    keys = torch.rand(batch, cells, generator=generator)           # a random order of the cells per image
    rank = keys.argsort(dim=1).argsort(dim=1)                      # each cell's place in that order
    grid = (rank < (ratios * cells).round().clamp(1, cells - 1).unsqueeze(1)).float().view(batch, 1, n, n)
    edges = torch.arange(size) * n // size                         # pixel -> cell index, remainder at the end
    return grid[:, :, edges][:, :, :, edges]


def _max_draws(kind: str, cfg: MaskConfig) -> int:
    """The most numbers one sample may draw: a rectangle 4, strokes 1 + 5 + 2 per vertex each, mixed 1 + either."""
    strokes = 1 + max(1, cfg.strokes_max) * (5 + 2 * 6)
    return {"rect": 4, "freeform": strokes}.get(kind, 1 + max(4, strokes))


def _rect_box(size: int, d: _Draws, cfg: MaskConfig) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a rectangle hole."""
    h = max(1, round(d.uniform(cfg.rect_min, cfg.rect_max) * size))
    w = max(1, round(d.uniform(cfg.rect_min, cfg.rect_max) * size))
    return d.randint(0, size - h), d.randint(0, size - w), h, w


def _stroke_segments(height: int, width: int, d: _Draws,
                     cfg: MaskConfig) -> list[tuple[float, float, float, float, float]]:
    """(ax, ay, bx, by, radius) of every segment of 1..strokes_max poly-line brush strokes in an image of
    ``height`` x ``width``: widths and steps are fractions of the shorter side, positions of each axis."""
    short = min(height, width)
    segs = []
    for _ in range(d.randint(1, max(1, cfg.strokes_max))):
        radius = 0.5 * short * d.uniform(cfg.brush_min, cfg.brush_max)
        x, y = d.uniform(0, width), d.uniform(0, height)
        angle = d.uniform(0, 2 * math.pi)
        for _ in range(d.randint(2, 6)):                          # vertices of the poly-line
            angle += d.uniform(-math.pi / 2, math.pi / 2)
            step = d.uniform(0.1, 0.35) * short
            nx = min(max(x + step * math.cos(angle), 0.0), float(width))
            ny = min(max(y + step * math.sin(angle), 0.0), float(height))
            segs.append((x, y, nx, ny, radius))
            x, y = nx, ny
    return segs


def _paint_segments(out: torch.Tensor, owner: list[int], segs: list[tuple]) -> None:
    """out[b] |= the pixels whose centre lies within radius of a segment of sample b, all segments at once.

    out: (B, H, W) bool; owner[i] is the sample of segment segs[i]. A segment only reaches the pixels of
    its bounding box grown by the radius, so each gets a W x W window (its box + a margin) instead of
    the whole image; segments are sorted by size and handled in chunks of about 64k pixels (temporaries
    that stay in cache). Each pixel's distance is computed in float32 with the same operations as one
    full-image distance map per segment (this module's earlier code), so the pixels are the same."""
    if not segs:
        return
    B, H, W_img = out.shape
    s = torch.tensor(segs, dtype=torch.float64)                   # (N, 5): ax, ay, bx, by, radius
    dx, dy, r = s[:, 2] - s[:, 0], s[:, 3] - s[:, 1], s[:, 4]
    side = torch.maximum(dx.abs(), dy.abs()) + 2 * r              # of the segment's grown bounding box
    order = side.argsort(descending=True)
    s, dx, dy, r, side, own = s[order], dx[order], dy[order], r[order], side[order], torch.tensor(owner)[order]
    x0 = (torch.minimum(s[:, 0], s[:, 2]) - r).floor().long() - 1  # window corners
    y0 = (torch.minimum(s[:, 1], s[:, 3]) - r).floor().long() - 1
    l2 = dx * dx + dy * dy
    l2 = torch.where(l2 == 0, 1.0, l2)                            # a point: t = 0 / 1 = 0
    col = lambda v: v.float().view(-1, 1, 1)                      # noqa: E731  (N,) -> (N, 1, 1) float32
    ax, ay, dx, dy, l2, r = col(s[:, 0]), col(s[:, 1]), col(dx), col(dy), col(l2), col(r)
    pad = int(side[0].ceil()) + 3                                 # the largest window: fits in the border
    PH, PW = H + 2 * pad, W_img + 2 * pad
    canvas = torch.zeros(B * PH * PW, dtype=torch.uint8)          # (B, PH, PW) flat, the image at [pad, pad + H)
    i = 0
    while i < len(segs):
        W = int(side[i].ceil()) + 3
        j = slice(i, i + max(1, (1 << 16) // (W * W)))
        i = j.stop
        X, Y = x0[j, None] + torch.arange(W), y0[j, None] + torch.arange(W)              # (n, W) columns, rows
        px, py = (X + 0.5).float()[:, None, :], (Y + 0.5).float()[:, :, None]           # pixel centres
        t = (((px - ax[j]) * dx[j] + (py - ay[j]) * dy[j]) / l2[j]).clamp_(0, 1)         # (n, W, W)
        hit = torch.hypot(px - (ax[j] + t * dx[j]), py - (ay[j] + t * dy[j])) <= r[j]
        flat = ((own[j, None] * PH + Y + pad) * PW)[:, :, None] + (X + pad)[:, None, :]  # (n, W, W)
        canvas.scatter_reduce_(0, flat.view(-1), hit.view(-1).view(torch.uint8), "amax")
    out |= canvas.view(B, PH, PW)[:, pad:pad + H, pad:pad + W_img].bool()


def make_masks(kind: str, batch: int, size: int, generator: torch.Generator,
               cfg: MaskConfig | None = None) -> torch.Tensor:
    """A batch of masks (B, 1, size, size), float, 1 = hole.

    The numbers are drawn per sample in order (the kind for ``mixed``, then the rectangle or the
    strokes) from one bulk draw (:class:`_Draws`); the holes are then painted for the whole batch at once."""
    cfg = cfg or MaskConfig()
    if kind not in KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == "center":
        return center_mask(batch, size)
    if kind == "none":
        return torch.zeros(batch, 1, size, size)
    if kind == "patches":
        return patch_masks(batch, size, generator, cfg)
    d = _Draws(generator, batch * _max_draws(kind, cfg))
    out = torch.zeros(batch, size, size, dtype=torch.bool)
    owner, segs = [], []
    for b in range(batch):
        k = kind if kind != "mixed" else ("center", "rect", "freeform")[d.randint(0, 2)]
        if k == "center":
            a = size // 4
            out[b, a:a + size // 2, a:a + size // 2] = True
        elif k == "rect":
            top, left, h, w = _rect_box(size, d, cfg)
            out[b, top:top + h, left:left + w] = True
        else:
            new = _stroke_segments(size, size, d, cfg)
            owner += [b] * len(new)
            segs += new
    d.close()
    _paint_segments(out, owner, segs)
    return out.float().unsqueeze(1)


PHOTO_KINDS = ("center", "rect", "strokes")
PHOTO_STROKES = MaskConfig(strokes_max=4, brush_min=0.02, brush_max=0.08)   # widths: 2-8% of the shorter side
PHOTO_RECT = (0.25, 0.5)                                                  # sides: 25-50% of the shorter side


def photo_hole(kind: str, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """One hole drawn at a photo's own scale, (height, width) bool, True = hole (the native protocol).

    ``center``: the central square whose side is half the shorter side (the paper's hole, scaled);
    ``rect``: a rectangle whose sides are 25-50% of the shorter side, anywhere; ``strokes``: 1-4 brush
    strokes (poly-lines of round-capped segments) 2-8% of the shorter side wide, what people paint over
    an object or a wire. Sizes are relative to the shorter side, so a hole covers the same share of a
    500 x 375 photo as of its 128 px thumbnail."""
    short = min(height, width)
    out = torch.zeros(1, height, width, dtype=torch.bool)
    if kind == "center":
        side = max(1, short // 2)
        top, left = (height - side) // 2, (width - side) // 2
        out[0, top:top + side, left:left + side] = True
        return out[0]
    d = _Draws(generator, _max_draws("freeform", PHOTO_STROKES))
    if kind == "rect":
        h = max(1, round(d.uniform(*PHOTO_RECT) * short))
        w = max(1, round(d.uniform(*PHOTO_RECT) * short))
        top, left = d.randint(0, height - h), d.randint(0, width - w)
        out[0, top:top + h, left:left + w] = True
    elif kind == "strokes":
        segs = _stroke_segments(height, width, d, PHOTO_STROKES)
        _paint_segments(out, [0] * len(segs), segs)
    else:
        raise ValueError(f"unknown photo hole kind {kind!r}; choose one of {', '.join(PHOTO_KINDS)}")
    d.close()
    return out[0]


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A generator that depends only on (seed, step, stream): what makes resumed runs exact."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 7 + stream) % (1 << 63))
