import math

import torch

from inpaintssl.gan import losses


def test_mse_terms_match_the_paper_formulas():
    gen, real = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1                           # 4 hole pixels of 16
    gen[..., :2, :2] = 1.0                          # error 1 inside the hole
    gen[..., 3, 3] = 2.0                            # error 2 at one outside pixel
    rec = losses.reconstruction_losses(gen, real, mask, 0.9, 0.1, "tensor")
    assert math.isclose(rec["mse_masked"].item(), 3 * 4 * 1 / 48)         # N = all 48 elements
    assert math.isclose(rec["mse_full"].item(), 3 * 4 / 48, rel_tol=1e-6)
    assert math.isclose(rec["mse_total"].item(), 0.9 * 12 / 48 + 0.1 * 12 / 48, rel_tol=1e-6)
    reg = losses.reconstruction_losses(gen, real, mask, 0.9, 0.1, "region")
    assert math.isclose(reg["mse_masked"].item(), 1.0)                    # N = 12 hole elements
    assert math.isclose(reg["mse_full"].item(), 12 / 36, rel_tol=1e-6)
    assert math.isclose(losses.hole_mse(gen, real, mask).item(), 1.0, rel_tol=1e-6)


def test_adversarial_losses_equal_minus_log_sigmoid_and_stay_finite():
    real_l, fake_l = torch.tensor([0.3, -1.2]), torch.tensor([2.0, -0.5])
    expect = (-torch.log(torch.sigmoid(real_l)) - torch.log(1 - torch.sigmoid(fake_l))).mean()
    assert torch.allclose(losses.d_loss(real_l, fake_l), expect, atol=1e-6)
    assert torch.allclose(losses.g_adv_loss(fake_l), -torch.log(torch.sigmoid(fake_l)).mean(), atol=1e-6)
    huge = torch.tensor([1e4, -1e4])
    assert torch.isfinite(losses.d_loss(huge, -huge)) and torch.isfinite(losses.g_adv_loss(-huge))
    assert losses.g_adv_loss(torch.tensor([-1e4])).item() > 1e3           # confident D: large, finite
