import torch

from inpaintssl.config import MaskConfig
from inpaintssl.gan.masks import center_mask, make_masks, step_generator


def test_center_mask_is_half_the_side():
    m = center_mask(2, 128)
    assert m.shape == (2, 1, 128, 128)
    assert m.sum().item() == 2 * 64 * 64
    assert m[0, 0, 32:96, 32:96].all() and m[0, 0, :32].sum() == 0 and m[0, 0, 96:].sum() == 0


def test_masks_are_deterministic_and_binary():
    for kind in ("center", "rect", "freeform", "mixed"):
        a = make_masks(kind, 6, 64, torch.Generator().manual_seed(5))
        b = make_masks(kind, 6, 64, torch.Generator().manual_seed(5))
        c = make_masks(kind, 6, 64, torch.Generator().manual_seed(6))
        assert a.shape == (6, 1, 64, 64) and torch.equal(a, b)
        assert set(a.unique().tolist()) <= {0.0, 1.0}
        assert (a.flatten(1).sum(1) > 0).all() and (a.flatten(1).mean(1) < 1).all()
        if kind != "center":
            assert not torch.equal(a, c)


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
