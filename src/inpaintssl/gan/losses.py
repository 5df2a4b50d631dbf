"""The paper's losses (section 5.3), written on logits for numerical stability.

    L_MSE^full   = 1/N || (I_gen - I_orig) * (1 - M) ||^2
    L_MSE^masked = 1/N || (I_gen - I_orig) * M ||^2
    L_MSE^total  = w1 L_MSE^full + w2 L_MSE^masked
    L_D_l        = -log D_l(I_orig * M) - log(1 - D_l(I_gen * M))
    L_D_g        = -log D_g(I_orig)     - log(1 - D_g(I_gen))
    L_G          = L_MSE^total - w3 log D_g(I_gen) - w4 log D_l(I_gen * M)

With D = sigmoid(logit), -log D(x) = BCEWithLogits(logit, 1) and -log(1 - D(x)) = BCEWithLogits(logit, 0),
which never evaluates log(0). Each term is averaged over the batch. ``mse_norm="tensor"`` takes N as the
number of elements of the whole tensor (the paper's literal wording); ``"region"`` divides by the number
of elements inside (resp. outside) the hole.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mse(gen: torch.Tensor, real: torch.Tensor, weight: torch.Tensor, norm: str = "tensor") -> torch.Tensor:
    """|| (gen - real) * weight ||^2 / N. gen, real: (B, 3, H, W); weight: (B, 1, H, W) in {0, 1}."""
    sq = ((gen - real) * weight).float().pow(2).sum()
    if norm == "tensor":
        n = gen.numel()
    elif norm == "region":
        n = (weight.float().sum() * gen.shape[1]).clamp_min(1.0)
    else:
        raise ValueError(f"norm must be 'tensor' or 'region', not {norm!r}")
    return sq / n


def reconstruction_losses(gen, real, mask, w1: float, w2: float, norm: str = "tensor") -> dict[str, torch.Tensor]:
    full = masked_mse(gen, real, 1 - mask, norm)
    masked = masked_mse(gen, real, mask, norm)
    return {"mse_full": full, "mse_masked": masked, "mse_total": w1 * full + w2 * masked}


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(real) - log(1 - D(fake)), batch mean."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def g_adv_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(fake), batch mean (the non-saturating generator term of L_G)."""
    fake_logits = fake_logits.float()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def hole_mse(gen: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over hole pixels only (a monitoring metric, independent of the loss weights)."""
    return masked_mse(gen, real, mask, "region")
