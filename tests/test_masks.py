import math

import pytest
import torch

from inpaintssl.config import MaskConfig
from inpaintssl.gan.masks import center_mask, make_masks, step_generator


def test_center_mask_is_half_the_side():
    m = center_mask(2, 128)
    assert m.shape == (2, 1, 128, 128)
    assert m.sum().item() == 2 * 64 * 64
    assert m[0, 0, 32:96, 32:96].all() and m[0, 0, :32].sum() == 0 and m[0, 0, 96:].sum() == 0


def test_masks_are_deterministic_and_binary():
    for kind in ("center", "rect", "freeform", "mixed", "patches"):
        a = make_masks(kind, 6, 64, torch.Generator().manual_seed(5))
        b = make_masks(kind, 6, 64, torch.Generator().manual_seed(5))
        c = make_masks(kind, 6, 64, torch.Generator().manual_seed(6))
        assert a.shape == (6, 1, 64, 64) and torch.equal(a, b)
        assert set(a.unique().tolist()) <= {0.0, 1.0}
        assert (a.flatten(1).sum(1) > 0).all() and (a.flatten(1).mean(1) < 1).all()
        if kind != "center":
            assert not torch.equal(a, c)


@pytest.mark.parametrize("size", [64, 60])
def test_patches_mask_a_share_of_grid_cells(size):
    cfg = MaskConfig(patch_size=0.125, patch_ratio_min=0.5, patch_ratio_max=0.75)
    m = make_masks("patches", 32, size, torch.Generator().manual_seed(0), cfg)[:, 0]
    edges = torch.arange(size) * 8 // size                      # the 8 x 8 grid of cells
    for mk in m:
        cells = torch.zeros(8, 8)
        cells.index_put_((edges[:, None].expand(size, size), edges[None].expand(size, size)), mk, accumulate=True)
        area = torch.bincount(edges).float()
        share = cells / (area[:, None] * area[None])
        assert set(share.unique().tolist()) <= {0.0, 1.0}      # every cell all hole or all known
        assert 32 <= share.sum() <= 48                          # 50-75% of the 64 cells
    ratios = m.flatten(1).mean(1)
    assert ratios.std() > 0.03                                  # the share is drawn per image


def test_rect_sizes_within_bounds():
    cfg = MaskConfig(rect_min=0.25, rect_max=0.5)
    m = make_masks("rect", 20, 64, torch.Generator().manual_seed(0), cfg)
    for mk in m[:, 0]:
        ys, xs = torch.nonzero(mk, as_tuple=True)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert 16 <= h <= 32 and 16 <= w <= 32
        assert mk.sum() == h * w                     # a filled rectangle


def test_global_rng_untouched_and_step_generators_differ():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    make_masks("mixed", 4, 32, step_generator(0, 5))
    assert torch.equal(before, torch.get_rng_state())
    a = make_masks("freeform", 2, 32, step_generator(0, 5))
    assert not torch.equal(a, make_masks("freeform", 2, 32, step_generator(0, 6)))
    assert torch.equal(a, make_masks("freeform", 2, 32, step_generator(0, 5)))


# ---- the masks as this module drew them before they were vectorised: one generator call per number and
# one full-image distance map per stroke segment. The batched version must give the same masks (so runs
# resumed across the change, and the fixed evaluation masks, stay the same) and leave the generator alike.
def _u(g, lo, hi):
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def _i(g, lo, hi):
    return int(torch.randint(lo, hi + 1, (), generator=g).item())


def _reference_masks(kind, batch, size, g, cfg):
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    out = []
    for _ in range(batch):
        k = kind if kind != "mixed" else ("center", "rect", "freeform")[_i(g, 0, 2)]
        m = torch.zeros(size, size, dtype=torch.bool)
        if k == "center":
            m = center_mask(1, size)[0, 0].bool()
        elif k == "rect":
            h = max(1, round(_u(g, cfg.rect_min, cfg.rect_max) * size))
            w = max(1, round(_u(g, cfg.rect_min, cfg.rect_max) * size))
            top, left = _i(g, 0, size - h), _i(g, 0, size - w)
            m[top:top + h, left:left + w] = True
        else:
            for _ in range(_i(g, 1, max(1, cfg.strokes_max))):
                radius = 0.5 * size * _u(g, cfg.brush_min, cfg.brush_max)
                x, y, angle = _u(g, 0, size), _u(g, 0, size), _u(g, 0, 2 * math.pi)
                for _ in range(_i(g, 2, 6)):
                    angle += _u(g, -math.pi / 2, math.pi / 2)
                    step = _u(g, 0.1, 0.35) * size
                    nx = min(max(x + step * math.cos(angle), 0.0), float(size))
                    ny = min(max(y + step * math.sin(angle), 0.0), float(size))
                    dx, dy = nx - x, ny - y
                    l2 = dx * dx + dy * dy
                    t = torch.zeros_like(xs) if l2 == 0 else (((xs - x) * dx + (ys - y) * dy) / l2).clamp(0, 1)
                    m |= torch.hypot(xs - (x + t * dx), ys - (y + t * dy)) <= radius
                    x, y = nx, ny
        out.append(m.float()[None])
    return torch.stack(out)


@pytest.mark.parametrize("kind", ["rect", "freeform", "mixed"])
def test_batched_masks_equal_the_one_call_per_number_masks(kind):
    cases = [(32, 6, MaskConfig()), (64, 5, MaskConfig(strokes_max=9, brush_min=0.01, brush_max=0.4)),
             (128, 3, MaskConfig(rect_min=0.05, rect_max=1.0, strokes_max=1)), (16, 40, MaskConfig())]
    for seed in range(12):
        for size, batch, cfg in cases:
            g_ref, g_new = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
            ref = _reference_masks(kind, batch, size, g_ref, cfg)
            new = make_masks(kind, batch, size, g_new, cfg)
            assert torch.equal(new, ref), (kind, seed, size, int((new != ref).sum()))
            assert torch.equal(g_new.get_state(), g_ref.get_state())   # the generator is left alike too
