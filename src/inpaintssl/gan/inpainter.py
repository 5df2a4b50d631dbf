"""Inpaint photos of any size with a trained generator.

    inpainter = Inpainter.from_checkpoint("runs/fcn")         # a run folder or a .pt file
    out = inpainter(rgb, hole)        # rgb: (H, W, 3) uint8; hole: (H, W) bool -> (H, W, 3) uint8

How a photo is filled (:class:`FillPath` holds the choices; :data:`FILL_PATHS` names the measured ones,
``default`` being what ``inpaint``, ``serve`` and the demo use):

1. **pre-fill**: the hole is first filled at the photo's resolution by OpenCV's Telea (from the pixels
   outside the hole only), so that shrinking a window never blends a blank into the context (``prefill``);
2. **regions**: each connected region of the hole (regions closer than a few pixels merged) gets its own
   window (``windows="regions"``); ``"one"`` = one window for the whole mask;
3. **scale**: a fixed-size generator (Table 1's U-Net, trained at S x S) gets a square window of twice the
   region's bounding box resized to S (``scale="window"``). The fully convolutional generator
   (``model.arch=fcn``) runs the region's bounding box plus :data:`CONTEXT` working pixels of context at
   the scale where the region's thickness (the diameter of its largest inscribed disc) is at most
   ``thickness`` working pixels: thin brush strokes at the photo's own scale (all such regions in one
   window), a large hole shrunk until it is as thick as the holes it was trained on;
4. **mask**: a working pixel is a hole when over half of it is hole (``low_mask="coverage"``); ``"dilated"``
   also marks every pixel the bicubic resize computes from a hole pixel (:func:`low_res_hole`);
5. the prediction is composited with the window's context at the working resolution (``low_composite``),
   resized back, optionally blended with the pre-fill over the hole's first ``blend`` pixels, and copied
   into the region's hole pixels only: every pixel outside the hole is bit-identical to the input, and
   the hole's own pixels never reach the model or the pre-fill, so changing them changes nothing.

``FILL_PATHS["v1"]`` is the path before the redesign (no pre-fill, the dilated mask, one window, no low-res
composite); the native protocol (:mod:`..evaluation.native`) measures every step.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import checkpoint_name, generator_weights, load_checkpoint
from ..config import Config, config_from_dict
from ..errors import InpaintsslError
from ..data.images import to_tensor, to_uint8
from .masks import center_mask
from .fcn import MULTIPLE
from .models import make_generator
from .prefill import telea_prefill
from .step import autocast, generate, pick_device, resolve_precision


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


def _resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """The bicubic resize of a window (antialiased when shrinking), (B, C, h, w) -> (B, C, *size); an int is a square."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    shrink = x.shape[-2] > size[0] or x.shape[-1] > size[1]
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=shrink)


@functools.lru_cache(maxsize=64)
def _taps(s: int, S: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) input index that each of the S outputs of :func:`_resize` (s -> S) reads with a non-zero
    weight, measured on torch's own kernel (the resize is separable, so rows and columns share this)."""
    first, last = np.full(S, s, np.int64), np.full(S, -1, np.int64)
    for a in range(0, s, 256):                                   # impulses, 256 at a time: column i holds row a+i
        n = min(256, s - a)
        imp = torch.zeros(1, 1, s, max(n, 2))                    # float32, like the resize itself
        imp[0, 0, a + torch.arange(n), torch.arange(n)] = 1.0
        # the width is kept (weights 0, 1, 0, 0: the identity) and never 1: torch 2.13's antialiased
        # kernel gets 1-pixel-wide images wrong
        w = F.interpolate(imp, size=(S, imp.shape[-1]), mode="bicubic", align_corners=False,
                          antialias=s > S)[0, 0, :, :n].T
        reads = (w != 0).numpy()                                 # (n, S): input a+i feeds output j
        idx = np.arange(a, a + n)[:, None]
        first = np.minimum(first, np.where(reads, idx, s).min(0))
        last = np.maximum(last, np.where(reads, idx, -1).max(0))
    return first, last


def low_res_hole(hole: np.ndarray, S: int) -> torch.Tensor:
    """(s, s) bool hole of a window -> (1, 1, S, S) float mask for the model: every low-res pixel that a hole
    pixel falls into (max-pooled when shrinking, nearest when enlarging) or that the bicubic resize computes
    from a hole pixel (the dilation by the kernel's reach: 2 px when shrinking, about 2 x S / s when enlarging)."""
    s = hole.shape[0]
    m = torch.from_numpy(hole).float()[None, None]                           # (1, 1, s, s)
    m = F.adaptive_max_pool2d(m, (S, S)) if s > S else F.interpolate(m, size=(S, S), mode="nearest")
    if s == S:
        return m
    first, last = _taps(s, S)
    area = np.zeros((s + 1, s + 1), np.int64)                                # summed-area table of the hole
    area[1:, 1:] = hole.astype(np.int64).cumsum(0).cumsum(1)
    y0, y1 = first[:, None], last[:, None] + 1                               # (S, 1): rows read by output row j
    x0, x1 = first[None, :], last[None, :] + 1                               # (1, S)
    touched = (area[y1, x1] - area[y0, x1] - area[y1, x0] + area[y0, x0]) > 0  # (S, S)
    return torch.maximum(m, torch.from_numpy(touched).float()[None, None])


@dataclass(frozen=True)
class FillPath:
    """The inference path's choices (module docstring, steps 1-5)."""
    prefill: str = "telea"          # telea | none (hole pixels blanked to 0, mid-gray)
    windows: str = "regions"        # regions (one window per connected hole region) | one
    low_mask: str = "coverage"      # coverage (> half of the working pixel is hole) | dilated
    low_composite: bool = True      # composite prediction and context before resizing back
    blend: int = 2                  # hole pixels within this distance of the border mix in the pre-fill
                                    # (2: chosen on 60 VOC2007 trainval photos among 0, 2, 4; docs/results.md)
    thickness: int = 64             # fcn: the hole's thickness at the working scale, at most (px)

    def __post_init__(self):
        checks = (("prefill", ("telea", "none")), ("windows", ("regions", "one")),
                  ("low_mask", ("coverage", "dilated")))
        for key, ok in checks:
            if getattr(self, key) not in ok:
                raise InpaintsslError(f"fill path {key}={getattr(self, key)!r}: choose {' or '.join(ok)}")
        if self.blend < 0 or self.thickness < 8:
            raise InpaintsslError("fill path: blend must be >= 0 and thickness >= 8")


FILL_PATHS: dict[str, FillPath] = {     # the rows of the inference-path table (docs/results.md)
    "v1": FillPath(prefill="none", windows="one", low_mask="dilated", low_composite=False, blend=0),
    "coverage": FillPath(prefill="none", windows="one", low_composite=False, blend=0),
    "prefill": FillPath(windows="one", low_composite=False, blend=0),
    "low-composite": FillPath(windows="one", blend=0),
    "regions": FillPath(blend=0),
    "blend-4": FillPath(blend=4),
    "thickness-32": FillPath(thickness=32),
    "thickness-96": FillPath(thickness=96),
    "native-scale": FillPath(thickness=10_000),
    "default": FillPath(),
}
CONTEXT = 64                        # fcn: working pixels of context around a region's box
MAX_REGIONS = 16                    # more separate regions than this: one window for the whole mask


def hole_regions(hole: np.ndarray) -> list[np.ndarray]:
    """The hole split into connected regions, (H, W) bool each; regions closer than ~1% of the shorter side
    (at least 3 px) are one region; more than :data:`MAX_REGIONS` -> the whole hole as one region."""
    reach = max(3, min(hole.shape) // 100)
    grown = cv2.dilate(hole.astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    n, labels = cv2.connectedComponents(grown, connectivity=8)
    if n - 1 > MAX_REGIONS or n <= 2:
        return [hole]
    return [hole & (labels == k) for k in range(1, n)]


def hole_distance(hole: np.ndarray) -> np.ndarray:
    """(H, W) float32: each hole pixel's distance to the nearest pixel outside the hole (the photo's border
    counts as outside), 0 outside the hole."""
    return cv2.distanceTransform(np.pad(hole.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]


def thickness(region: np.ndarray) -> float:
    """The diameter of the largest disc inside the region (px): 2 x its largest distance to a non-hole pixel."""
    return 2.0 * float(hole_distance(region).max())


def _box(region: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(region)
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def coverage_hole(hole: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(h, w) bool -> (1, 1, *size) float mask: 1 where over half of the working pixel is hole."""
    m = torch.from_numpy(hole).float()[None, None]
    if tuple(hole.shape) == tuple(size):
        return m
    if hole.shape[0] >= size[0] and hole.shape[1] >= size[1]:
        frac = F.interpolate(m, size=size, mode="area")
    else:
        frac = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
    return (frac > 0.5).float()


class Inpainter:
    """A generator in eval mode plus the config it was trained with.

    ``precision`` is "bf16" where the device computes bf16 natively (CUDA, a CPU with AVX-512 BF16 or
    AMX: :func:`step.resolve_precision`) unless ``amp=False``: the generator then runs under bf16
    autocast with channels_last, as in training, and its output is cast to float32 before the resize
    and the composite. Elsewhere everything is fp32.

    Measured (m1-plus-64 checkpoint at step 2000, 50 VOC2007 photos, half with the central hole, half
    with a random rectangle; AMD EPYC with AVX-512 BF16, one thread, under load: the other core ran a
    training job): the uint8 fills of bf16 and fp32 differ by at most 1 (mean 0.08 over 3.6 M hole
    values); one photo took 50.7 ms with bf16 and 52.0 ms with fp32 (median of 150: the generator is
    ~9 vs ~12 ms of it, the resizes most of the rest), so bf16 is kept at batch 1 too; batched at 64 px
    (evaluate's path, 50 images) 2.5 vs 4.4 ms per image, fills again within 1 (mean 0.09)."""

    def __init__(self, generator: torch.nn.Module, cfg: Config, device: torch.device, name: str = "model",
                 amp: bool = True, path: FillPath | None = None):
        self.generator, self.cfg, self.device, self.name = generator.eval(), cfg, device, name
        self.fill_path = path or FILL_PATHS["default"]          # how __call__ runs it (module docstring)
        self.precision = resolve_precision(device, amp)         # "bf16" (autocast) or "fp32"
        if self.precision == "bf16":
            self.generator = self.generator.to(memory_format=torch.channels_last)
        self.path: str | None = None          # the checkpoint file and its training step, when loaded from one
        self.step: int | None = None

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: str = "auto", amp: bool = True) -> "Inpainter":
        ckpt = load_checkpoint(Path(path))
        cfg = config_from_dict(ckpt["config"])
        G = make_generator(cfg.model)
        try:
            G.load_state_dict(generator_weights(ckpt))
        except RuntimeError as e:
            raise InpaintsslError(f"{ckpt['path']}: generator weights do not fit preset "
                                  f"{cfg.preset!r} ({str(e).splitlines()[0][:160]})") from None
        dev = pick_device(device)
        model = cls(G.to(dev), cfg, dev, checkpoint_name(Path(path)), amp)
        model.path, model.step = ckpt["path"], ckpt.get("step")
        return model

    @property
    def image_size(self) -> int:
        return self.cfg.model.image_size

    def hole_shape_warning(self, shape: str) -> str | None:
        """One warning line when a model trained on centre holes only is asked to fill another ``shape``
        ("center", "rect", "freeform", "mixed", or "painted" for user masks), else None.

        Measured (issue 13, 701 unseen VOC2012 photos, 64 px): the centre-trained m1-plus-64 scores 16.36 dB
        on centre holes (Telea 15.12) but 12.48 dB on free-form strokes (Telea 20.81): it leaves them gray."""
        if self.cfg.mask.kind != "center" or shape == "center" or self.cfg.model.predict == "patch":
            return None
        return (f"warning: {self.name} was trained on centre holes only; other hole shapes ({shape}) come out "
                "gray and worse than --method telea. Use a model trained with --mask mixed (e.g. bundled)")

    @torch.no_grad()
    def generate(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """The generator's float32 (B, 3, S, S) prediction, on the device, for x: (B, 3, S, S) in [-1, 1]
        and m: (B, 1, S, S), 1 = hole (the generator sees x * (1 - m)), at :attr:`precision`."""
        if self.precision == "bf16":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            pred = generate(self.generator, x, m, self.cfg)
        return pred.float().contiguous()

    @property
    def fully_convolutional(self) -> bool:
        return self.cfg.model.arch == "fcn"

    def with_path(self, path: FillPath | str) -> "Inpainter":
        """The same model (shared weights) with another :class:`FillPath` (or the name of one in :data:`FILL_PATHS`)."""
        if isinstance(path, str):
            if path not in FILL_PATHS:
                raise InpaintsslError(f"unknown fill path {path!r}; choose one of {', '.join(FILL_PATHS)}")
            path = FILL_PATHS[path]
        other = object.__new__(Inpainter)
        other.__dict__.update(self.__dict__, fill_path=path)
        return other

    @torch.no_grad()
    def predict_window(self, window: np.ndarray, hole: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """window: (h, w, 3) uint8 (square for a fixed-size generator), hole: (h, w) bool -> the (h, w, 3) uint8
        fill, run at the working ``size`` (default: the model's S x S; the fcn generator takes any size).

        The hole's pixels are blanked before the resize; with a pre-filled window (``__call__``) they hold the
        pre-fill, which comes from the context only."""
        p = self.fill_path
        h, w = window.shape[:2]
        size = size or (self.image_size, self.image_size)
        x = to_tensor(window).unsqueeze(0)                                       # (1, 3, h, w)
        if p.prefill == "none":
            x = x.masked_fill(torch.from_numpy(hole)[None, None], 0.0)          # blank the hole before resizing
        if (h, w) != tuple(size):
            x = _resize(x, size).clamp(-1, 1)
        if p.low_mask == "dilated" and h == w and size[0] == size[1]:
            m = low_res_hole(hole, size[0])                                      # (1, 1, S, S), dilated
        else:
            m = coverage_hole(hole, size)
        if self.cfg.model.predict == "patch":          # M3 was trained on the central square hole only
            m = center_mask(1, size[0])
        xin, min_ = x, m
        if self.fully_convolutional:                   # pad to a multiple of 8: replicated context, no hole
            ph, pw = -size[0] % MULTIPLE, -size[1] % MULTIPLE
            xin = F.pad(x, (0, pw, 0, ph), mode="replicate")
            min_ = F.pad(m, (0, pw, 0, ph))
        pred = self.generate(xin.to(self.device), min_.to(self.device)).cpu()[..., :size[0], :size[1]]
        if p.low_composite:
            pred = m * pred + (1 - m) * (x.masked_fill(m > 0, 0.0) if p.prefill == "none" else x)
        if (h, w) != tuple(size):
            pred = _resize(pred, (h, w))
        return to_uint8(pred[0].clamp(-1, 1))

    def _scale(self, region: np.ndarray) -> float:
        """The fcn generator's working scale for a region: its thickness becomes at most ``thickness`` px."""
        return min(1.0, self.fill_path.thickness / max(1.0, thickness(region)))

    def _fill_region(self, base: np.ndarray, region: np.ndarray, scale: float = 1.0) -> tuple[tuple, np.ndarray]:
        """((top, left), the window's fill) for one region; ``base`` is the (pre-filled) photo."""
        H, W = region.shape
        y0, y1, x0, x1 = _box(region)
        if not self.fully_convolutional:               # a square of twice the box, resized to S
            top, left, side = context_window(region)
            window = _crop_padded(base, top, left, side)
            return (top, left), self.predict_window(window, _crop_padded(region, top, left, side))
        margin = int(round(CONTEXT / scale))           # context around the box: CONTEXT working pixels
        top, bottom, left, right = max(0, y0 - margin), min(H, y1 + margin), max(0, x0 - margin), min(W, x1 + margin)
        size = (max(MULTIPLE, round((bottom - top) * scale)), max(MULTIPLE, round((right - left) * scale)))
        window, wh = base[top:bottom, left:right], region[top:bottom, left:right]
        return (top, left), self.predict_window(window, wh, size)

    def _regions(self, hole: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """(region, working scale) pairs: one per connected region (``windows="regions"``) or one for the mask.
        For the fcn generator the regions thin enough for the photo's own scale share one window."""
        regions = hole_regions(hole) if self.fill_path.windows == "regions" else [hole]
        if not self.fully_convolutional:
            return [(r, 1.0) for r in regions]
        scaled = [(r, self._scale(r)) for r in regions]
        native = [r for r, s in scaled if s == 1.0]
        rest = [(r, s) for r, s in scaled if s < 1.0]
        return ([(np.logical_or.reduce(native), 1.0)] if native else []) + rest

    def __call__(self, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InpaintsslError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
        if hole.shape != rgb.shape[:2]:
            raise InpaintsslError(f"mask is {hole.shape[1]}x{hole.shape[0]} but the image is "
                                  f"{rgb.shape[1]}x{rgb.shape[0]}")
        hole = np.asarray(hole, dtype=bool)
        if not hole.any():
            return rgb.copy()
        p = self.fill_path
        if p.prefill == "telea":
            base = telea_prefill(rgb, hole)
        else:
            base = rgb.copy()
            base[hole] = 0
        out = rgb.copy()
        for region, scale in self._regions(hole):
            (top, left), pred = self._fill_region(base, region, scale)
            ys, xs = np.nonzero(region)
            out[ys, xs] = pred[ys - top, xs - left]            # this region's hole pixels only
        if p.blend > 0 and p.prefill == "telea":
            a = np.clip(hole_distance(hole) / (p.blend + 1), 0, 1)[..., None]
            mixed = np.round(a * out + (1 - a) * base).astype(np.uint8)
            out[hole] = mixed[hole]
        return out
