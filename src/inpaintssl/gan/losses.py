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

``loss.adversarial`` replaces the two -log D terms (issue 15; ``bce`` is the paper's, above):

* ``hinge`` (Lim & Ye 2017; SN-GAN, SA-GAN): L_D = mean(relu(1 - D(real))) + mean(relu(1 + D(fake))),
  generator term -mean(D(fake));
* ``wgan-gp`` (Gulrajani et al. 2017): L_D = mean(D(fake)) - mean(D(real)) + gp_weight * GP with
  GP = mean((||grad_x D(x_hat)||_2 - 1)^2) on x_hat = e real + (1 - e) fake, e ~ U[0, 1] per sample
  (:func:`gradient_penalty`); generator term -mean(D(fake)).

D's outputs are logits (no sigmoid) in all three. With w3, w4 = 1e-5 the adversarial terms stay as small
relative to the L2 terms as the paper's, but hinge and Wasserstein values are not on the BCE scale: the
training log's ``g_adv_share`` / ``g_adv_grad_share`` (gan/step.py) show their actual weight.
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


ADVERSARIAL = ("bce", "hinge", "wgan-gp")


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """The discriminator's loss, batch mean: bce -log D(real) - log(1 - D(fake)); hinge; wgan-gp's
    Wasserstein part mean(D(fake)) - mean(D(real)) (the gradient penalty is added by the caller)."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "bce":
        return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    if kind == "wgan-gp":
        return fake_logits.mean() - real_logits.mean()
    raise ValueError(f"kind must be one of {ADVERSARIAL}, not {kind!r}")


def g_adv_loss(fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """The generator's adversarial term, batch mean: bce -log D(fake) (the non-saturating term of L_G);
    hinge and wgan-gp -mean(D(fake))."""
    fake_logits = fake_logits.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind in ("hinge", "wgan-gp"):
        return -fake_logits.mean()
    raise ValueError(f"kind must be one of {ADVERSARIAL}, not {kind!r}")


def gradient_penalty(D, real: torch.Tensor, fake: torch.Tensor, region: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP's penalty mean((||grad D(x_hat)||_2 - 1)^2), x_hat = e real + (1 - e) fake, e ~ U[0, 1] per sample.

    real, fake: (B, C, H, W), no grad needed. ``region`` (B, 1, H, W): only the gradient inside it counts,
    for the local D, whose inputs (real * M, fake * M) are zero outside the hole, so its Lipschitz bound
    is taken where its inputs vary. Runs in fp32 with autocast off (the penalty's double backward is
    sensitive to bf16 rounding); ``create_graph=True`` lets the caller backpropagate through it."""
    e = torch.rand(real.shape[0], 1, 1, 1, device=real.device, generator=generator)
    x_hat = (e * real.detach().float() + (1 - e) * fake.detach().float()).requires_grad_(True)
    with torch.autocast(real.device.type, enabled=False):
        out = D(x_hat)                                             # (B,) logits
        (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
        if region is not None:
            grad = grad * region.float()
        return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def hole_mse(gen: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over hole pixels only (a monitoring metric, independent of the loss weights)."""
    return masked_mse(gen, real, mask, "region")
