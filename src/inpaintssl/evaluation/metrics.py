"""Full-reference image metrics over the hole and over the whole image, on the [0, 1] pixel scale.

    m = image_metrics(pred, target, hole)   # pred, target: (N, 3, H, W) in [0, 1]; hole: (N, 1, H, W), 1 = hole
    m["psnr_hole"], m["ssim_image"]         # each a (N,) float64 tensor, one value per image

Definitions (per image; ``d = pred - target``; the hole has ``n`` pixels, so ``3n`` values):

* ``l1_*``   mean of ``|d|`` over the region's values (all three channels);
* ``l2_*``   mean of ``d**2`` over the region's values (the MSE);
* ``psnr_*`` ``10 log10(1 / max(l2, 1e-10))`` dB for a peak of 1. The MSE floor **caps PSNR at 100 dB**
  (:data:`PSNR_CAP_DB`), so identical images score 100 instead of infinity and means stay finite;
* ``ssim_*`` the SSIM map of Wang et al. (2004) -- Gaussian window sigma 1.5 (11 taps), K1 = 0.01,
  K2 = 0.03, data range 1, population (co)variances -- computed per channel with reflection padding (the
  map of torchmetrics' ``structural_similarity_index_measure``, tested), so the map has one value per
  pixel and channel. ``ssim_image`` is the mean of the whole map; ``ssim_hole`` is the mean of the map over the hole pixels only. A hole pixel's SSIM still
  looks at its 11 x 11 neighbourhood, so pixels near the hole's edge also see known context.

* ``sharpness_hole`` (weight-free blur measure, hole only) = G(pred) / G(target), ``G`` the mean gradient
  magnitude ``sqrt(dx**2 + dy**2)`` of the grayscale image (BT.601 luma 0.299 R + 0.587 G + 0.114 B:
  blur shows in all channels alike and luma is where the eye sees detail) by forward differences, over
  the hole pixels p whose right and lower neighbours are also in the hole (a difference across the
  hole's edge measures the seam, not the fill). Both means get :data:`SHARPNESS_EPS` added, so a flat
  or thinner-than-2-px hole scores 1. 1 = as sharp as the original, < 1 blurrier (L2-trained fills are),
  > 1 more high-frequency energy than the original (noise, artefacts): **closer to 1 is better**
  (:data:`TARGET_VALUE`; the report bolds the mean nearest 1). For a composite, ``pred`` is the
  composite; only hole pixels enter, so this is the fill's sharpness.
* ``checker_hole`` (weight-free checkerboard measure, hole only) = the share of the fill's fine detail that is
  locked to the pixel grid at periods 2 and 4: take the luma's high-pass ``h = y - mean_3x3(y)`` (a linear
  ramp gives 0) over the hole pixels whose 3 x 3 window lies in the hole, split them into the 16 phases
  ``(row mod 4, col mod 4)``, and return ``sqrt(sum_k n_k (mean_k(h) - mean(h))**2 / sum(h - mean(h))**2)``
  (``n_k`` pixels in phase k), between 0 and 1. The stride-2 transposed convolutions of a decoder leave
  patterns of period 2 and 4 that shift the phase means; natural detail averages out. Measured on VOC2007
  test photos at 64 px with 32 x 32 holes: the original photos and blurred copies of them score about 0.16,
  the blurred copies plus a 1-grey-level checkerboard about 0.35, Telea's diffused fills about 0.08. The floor
  rises for small or thin holes, whose phases hold fewer pixels. A flat fill scores 0, and the ratio does not
  depend on how sharp the fill is. **Lower is better**; compare with Telea's and the original's.

``*_hole`` uses only pixels where ``hole == 1``; ``*_image`` uses every pixel. For an inpainting composite
(prediction inside the hole, the original outside) the whole-image L1 / L2 equal the hole values times the
hole's area fraction, while whole-image SSIM is pulled towards 1 by the untouched context.

scikit-image agrees: ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, full=True)`` gives the same map away from the image border
(it pads differently and its scalar mean drops a 5-pixel border; ours keeps every pixel, so a hole that
touches the border is scored like any other). ``tests/test_evaluate.py`` checks both agreements.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InpaintsslError

PSNR_CAP_DB = 100.0
MSE_FLOOR = 10.0 ** (-PSNR_CAP_DB / 10.0)      # 1e-10: the MSE at which PSNR reaches the cap
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03

# (metric, region) pairs in report order; a metric key is f"{metric}_{region}"
METRICS = ("psnr", "ssim", "l1", "l2")
REGIONS = ("hole", "image")
# sharpness and checker (hole only) sit with the hole metrics: ..., l2_hole, sharpness_hole, checker_hole, psnr_image
METRIC_KEYS = (tuple(f"{m}_hole" for m in METRICS) + ("sharpness_hole", "checker_hole")
               + tuple(f"{m}_image" for m in METRICS))
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "l1": False, "l2": False, "sharpness": None, "checker": False}
TARGET_VALUE = {"sharpness": 1.0}      # metrics whose best value is a target, not an extreme
SHARPNESS_EPS = 1e-3                   # added to both mean gradient magnitudes (~1/4 grey level per pixel)
LUMA = (0.299, 0.587, 0.114)           # ITU-R BT.601
CHECKER_PERIOD = 4                     # checker_hole's phases: (row mod 4, col mod 4), periods 2 and 4


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for pixel values in [0, 1], capped at :data:`PSNR_CAP_DB`."""
    return 10.0 * torch.log10(1.0 / mse.clamp_min(MSE_FLOOR))


def gaussian_taps(sigma: float, dtype=torch.float64) -> torch.Tensor:
    """The normalised 1-D Gaussian window of SSIM: ``2 * int(3.5 sigma + 0.5) + 1`` taps (11 for 1.5)."""
    half = int(3.5 * sigma + 0.5)
    x = torch.arange(-half, half + 1, dtype=dtype)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _blur_cpu(stack: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The separable Gaussian of :func:`ssim_map` on CPU maps (B, C, H, W), reflection at the border
    (``BORDER_REFLECT_101`` is torch's ``reflect``), by ``cv2.sepFilter2D`` in the input's dtype."""
    import cv2
    k = g.numpy()
    flat = stack.reshape(-1, *stack.shape[-2:]).numpy()
    out = np.empty_like(flat)
    for i, m in enumerate(flat):
        out[i] = cv2.sepFilter2D(m, -1, k, k, borderType=cv2.BORDER_REFLECT_101)
    return torch.from_numpy(out).view(stack.shape)


def ssim_map(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel, per-channel SSIM. (N, C, H, W) in [0, 1] -> (N, C, H, W); needs H, W >= 6.

    The 2-D Gaussian window is the outer product of :func:`gaussian_taps`, applied as two 1-D depthwise
    convolutions (the same sums as the 11 x 11 window, ~5x fewer operations) in the input's dtype."""
    if min(pred.shape[-2:]) < 6:
        raise InpaintsslError(f"images of {pred.shape[-1]}x{pred.shape[-2]} px are too small for SSIM "
                              "(its reflection padding needs at least 6 px a side)")
    n, c = pred.shape[:2]
    g = gaussian_taps(SSIM_SIGMA, pred.dtype).to(pred.device)
    pad = (len(g) - 1) // 2
    stack = torch.cat([pred, target, pred * pred, target * target, pred * target]).contiguous()
    if stack.device.type == "cpu":                       # OpenCV's separable filter: the same sums, ~20x faster
        x = _blur_cpu(stack, g)
    else:
        x = F.pad(stack, (pad, pad, pad, pad), mode="reflect")
        x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
        x = F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)
    mu_p, mu_t, e_pp, e_tt, e_pt = x.split(n)
    var_p = (e_pp - mu_p * mu_p).clamp_min(0.0)          # population variances, clamped like torchmetrics
    var_t = (e_tt - mu_t * mu_t).clamp_min(0.0)
    cov = e_pt - mu_p * mu_t
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2                  # data range 1
    return ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p * mu_p + mu_t * mu_t + c1) * (var_p + var_t + c2))


def luma(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) BT.601 luma."""
    return sum(w * images[:, c:c + 1] for c, w in enumerate(LUMA))


def mean_gradient_magnitude(images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Mean luma gradient magnitude over the hole's interior pixels (see ``sharpness_hole``): (N,).

    images: (N, 3, H, W) in [0, 1]; hole: (N, 1, H, W), 1 = hole."""
    y = luma(images)                                                    # (N, 1, H, W)
    dx = y[..., :-1, 1:] - y[..., :-1, :-1]                             # (N, 1, H-1, W-1)
    dy = y[..., 1:, :-1] - y[..., :-1, :-1]
    inside = hole[..., :-1, :-1] * hole[..., :-1, 1:] * hole[..., 1:, :-1]   # p, p + x, p + y in the hole
    mag = (dx.square() + dy.square()).sqrt() * inside
    return mag.flatten(1).sum(1) / inside.flatten(1).sum(1).clamp_min(1.0)


def sharpness_ratio(pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """``sharpness_hole``: (G(pred) + eps) / (G(target) + eps), (N,); 1 = as sharp as the target."""
    return ((mean_gradient_magnitude(pred, hole) + SHARPNESS_EPS)
            / (mean_gradient_magnitude(target, hole) + SHARPNESS_EPS))


def checkerboard(images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """``checker_hole``: the share of the hole's high-pass luma that repeats with the grid at periods 2 / 4: (N,).

    images: (N, 3, H, W) in [0, 1]; hole: (N, 1, H, W), 1 = hole. An image without a 3 x 3 hole interior,
    or with no detail there, scores 0."""
    y = luma(images)
    h = y - F.avg_pool2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), 3, 1)          # (N, 1, H, W)
    inside = (-F.max_pool2d(-F.pad(hole, (1, 1, 1, 1)), 3, 1) > 0.5).to(h.dtype)   # its 3 x 3 in the hole
    k = CHECKER_PERIOD
    rows, cols = (torch.arange(n, device=h.device) % k for n in h.shape[-2:])
    onehot = F.one_hot((rows[:, None] * k + cols).flatten(), k * k).to(h.dtype)   # (H W, k k) phase of a pixel
    n_k = inside.flatten(1) @ onehot                                             # (N, k k) pixels per phase
    s_k = (h * inside).flatten(1) @ onehot                                       # (N, k k) sums of h
    n = n_k.sum(1).clamp_min(1.0)
    mean = s_k.sum(1) / n                                                        # (N,)
    periodic = (n_k * (s_k / n_k.clamp_min(1.0) - mean[:, None]).square()).sum(1)
    total = ((h - mean[:, None, None, None]).square() * inside).flatten(1).sum(1)
    return (periodic / total.clamp_min(1e-12)).sqrt()


def image_metrics(pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> dict[str, torch.Tensor]:
    """All of :data:`METRIC_KEYS` for a batch. pred, target: (N, 3, H, W) in [0, 1]; hole: (N, 1, H, W).

    Computed in float64. Returns ``{key: (N,) tensor}``. An image whose hole is empty gets hole L1 = L2 = 0.
    """
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be (N, C, H, W)")
    if hole.shape != (pred.shape[0], 1, *pred.shape[2:]):
        raise ValueError(f"hole {tuple(hole.shape)} must be (N, 1, H, W) for images {tuple(pred.shape)}")
    pred, target = pred.double(), target.double()
    hole = hole.double().expand_as(pred)                           # (N, C, H, W), 1 = hole
    diff = pred - target
    n_hole = hole.flatten(1).sum(1).clamp_min(1.0)                 # values in the hole (pixels x channels)

    def over_hole(x: torch.Tensor) -> torch.Tensor:
        return (x * hole).flatten(1).sum(1) / n_hole

    def over_image(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).mean(1)

    smap = ssim_map(pred, target)                                  # (N, C, H, W)
    out = {}
    for region, reduce in (("hole", over_hole), ("image", over_image)):
        l2 = reduce(diff.square())
        out[f"psnr_{region}"] = psnr_from_mse(l2)
        out[f"ssim_{region}"] = reduce(smap)
        out[f"l1_{region}"] = reduce(diff.abs())
        out[f"l2_{region}"] = l2
    out["sharpness_hole"] = sharpness_ratio(pred, target, hole[:, :1])
    out["checker_hole"] = checkerboard(pred, hole[:, :1])
    return {k: out[k] for k in METRIC_KEYS}


def uint8_to_unit(images) -> torch.Tensor:
    """(N, H, W, 3) uint8 array or tensor -> (N, 3, H, W) float64 in [0, 1] (value / 255)."""
    t = torch.as_tensor(images)
    if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 images, got {tuple(t.shape)} {t.dtype}")
    return t.permute(0, 3, 1, 2).double() / 255.0
