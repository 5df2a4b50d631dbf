"""Evaluate inpainting methods -- trained checkpoints and classical baselines -- on fixed, seeded masks.

    result = run_evaluation([Path("runs/m1")], [Path("val2017")], baselines=["telea", "ns", "mean"],
                            mask="center", limit=40, seed=0)
    write_report(result, Path("reports/m1"))  # report.md, metrics.json, per_image.csv, grid.png (report.py)

Protocol (the same for every method):

1. the photos under ``sources`` are listed recursively in sorted order; each is decoded (EXIF
   orientation applied, full resolution: no JPEG draft decoding), centre-cropped to a square of its
   shorter side and resized to the *eval size* S x S by :func:`data.images.center_square` (bicubic,
   antialiased, the same resize as training and ``prepare``). S is ``size`` if given, else the
   image size of the first checkpoint, else 128. Files that cannot be read are skipped, counted and
   listed; ``limit`` counts readable photos;
2. mask i (``(S, S)`` bool, True = hole) is drawn by :func:`masks.make_masks` from a ``torch.Generator``
   that depends only on ``(seed, i)`` (:func:`masks.step_generator` with stream :data:`EVAL_MASK_STREAM`),
   so every method sees the same holes, and adding photos or methods never changes earlier masks;
3. a method receives the *corrupted* photo (hole pixels set to gray 128, so nothing leaks) and the
   hole, and returns a full (S, S, 3) uint8 image. The score is computed on the composite
   ``hole ? output : original``: what a user would keep. Metrics: :mod:`image_metrics` on value / 255.

Methods (registry :data:`BASELINES`; checkpoints are named by their run folder):

* ``telea`` / ``ns``: ``cv2.inpaint`` (Telea's fast marching / Navier-Stokes), radius
  :data:`OPENCV_RADIUS` px, from ``opencv-python-headless`` (a dependency: the inpainter pre-fills with Telea).
  Both treat channels alike, so RGB order needs no conversion. OpenCV reads a few hole pixels where
  the hole touches the image border (their value moves its output by <= 3/255 there), which is one
  reason every method gets the same gray-filled input and never the original;
* ``mean``: every hole pixel gets the mean colour of the photo's known pixels;
* a checkpoint at the eval size runs its generator directly, batched, in eval mode
  (:meth:`Inpainter.generate`: bf16 autocast where the device computes it natively);
  a checkpoint trained at another size goes through :class:`inpaint.Inpainter`, which resizes a context
  window around the hole to its size and back. A patch-predicting M3 checkpoint only knows the central
  square, so it needs ``mask="center"``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sys

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import checkpoint_name, unique_name  # noqa: F401  (re-exported)
from ..errors import InpaintsslError
from .metrics import METRIC_KEYS, image_metrics, uint8_to_unit
from ..data.images import center_square, list_images, open_image, to_tensor, to_uint8
from ..gan.inpainter import Inpainter
from ..gan.prefill import RADIUS
from ..gan.masks import make_masks, step_generator

EVAL_MASK_STREAM = 5            # step_generator stream reserved for evaluation masks (training uses 0 and 2)
MASK_KINDS = ("center", "rect", "freeform", "mixed")       # mixed: each photo draws one of the other three
OPENCV_RADIUS = RADIUS          # cv2.inpaint's neighbourhood radius in pixels, the inpainter's pre-fill's
HOLE_GRAY = 128                 # what the corrupted image shows in the hole
DEFAULT_SIZE = 128

# A method: corrupted (N, S, S, 3) uint8 and holes (N, S, S) bool -> filled (N, S, S, 3) uint8.
Method = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ---------------------------------------------------------------- data and masks

def load_eval_image(path: Path, size: int) -> np.ndarray:
    """Centre square crop of the photo, resized to (size, size, 3) uint8. Raises InpaintsslError."""
    return np.asarray(center_square(open_image(path), size), dtype=np.uint8).copy()


def load_eval_set(sources: Sequence[Path], size: int, limit: int | None = None,
                  log=print, progress: bool = False) -> tuple[list[str], np.ndarray, list[str]]:
    """(names, images (N, S, S, 3) uint8, skipped 'path: reason' lines). Names are relative to the source."""
    names, images, skipped = [], [], []
    bar = tqdm(total=limit, desc="loading", unit="photo", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    for src in sources:
        src = Path(src)
        if not src.exists():
            raise InpaintsslError(f"{src}: no such folder or image file; check --data")
        for f in list_images(src):
            if limit is not None and len(images) >= limit:
                break
            try:
                images.append(load_eval_image(f, size))
            except InpaintsslError as e:
                skipped.append(str(e))
                continue
            names.append(f.relative_to(src).as_posix() if src.is_dir() else f.name)
            bar.update(1)
    bar.close()
    if skipped:
        log(f"skipped {len(skipped)} unreadable file(s); they are listed in the report")
    if not images:
        raise InpaintsslError(f"no readable photo in {', '.join(map(str, sources))} "
                              f"({len(skipped)} unreadable); pass a folder of JPEG/PNG/WebP photos with --data")
    return names, np.stack(images), skipped


def eval_masks(kind: str, n: int, size: int, seed: int) -> np.ndarray:
    """(n, size, size) bool, True = hole; mask i depends only on (kind, size, seed, i)."""
    if kind not in MASK_KINDS:
        raise InpaintsslError(f"--mask {kind!r}: choose one of {', '.join(MASK_KINDS)}")
    masks = [make_masks(kind, 1, size, step_generator(seed, i, EVAL_MASK_STREAM))[0, 0] for i in range(n)]
    return torch.stack(masks).bool().numpy() if masks else np.zeros((0, size, size), bool)


def corrupt(images: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """The methods' input: images with every hole pixel set to gray :data:`HOLE_GRAY`."""
    out = images.copy()
    out[holes] = HOLE_GRAY
    return out


def composite(filled: np.ndarray, images: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """hole ? filled : original, for (N, S, S, 3) uint8 arrays and (N, S, S) bool holes."""
    return np.where(holes[..., None], filled, images)


# ---------------------------------------------------------------- methods

def mean_fill(corrupted: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Fill each hole with the mean colour (rounded) of that image's known pixels."""
    out = corrupted.copy()
    for img, hole in zip(out, holes):
        known = img[~hole].astype(np.float64)                      # (K, 3)
        colour = known.mean(0) if len(known) else np.full(3, HOLE_GRAY)
        img[hole] = np.clip(np.round(colour), 0, 255).astype(np.uint8)
    return out


def opencv_method(flag: str) -> Method:
    """``cv2.inpaint`` with the named flag (INPAINT_TELEA or INPAINT_NS)."""
    import cv2
    code = getattr(cv2, flag)

    def fill(corrupted: np.ndarray, holes: np.ndarray) -> np.ndarray:
        return np.stack([cv2.inpaint(np.ascontiguousarray(img), hole.astype(np.uint8) * 255, OPENCV_RADIUS, code)
                         for img, hole in zip(corrupted, holes)])
    return fill


BASELINES: dict[str, Callable[[], Method]] = {
    "telea": lambda: opencv_method("INPAINT_TELEA"),
    "ns": lambda: opencv_method("INPAINT_NS"),
    "mean": lambda: mean_fill,
}


def parse_baselines(text: str | Sequence[str] | None) -> list[str]:
    """'telea,ns,mean' (or a list) -> validated names in order; '' or 'none' -> []."""
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [s.strip().lower() for s in items if s.strip() and s.strip().lower() != "none"]
    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise InpaintsslError(f"--baselines: unknown baseline(s) {', '.join(bad)}; choose from "
                              f"{', '.join(BASELINES)} (comma-separated) or none")
    return list(dict.fromkeys(names))


def check_dependencies(baselines: Sequence[str]) -> None:
    """Fail early (before any training or loading) if a baseline lacks its optional package."""
    for name in parse_baselines(baselines):
        BASELINES[name]()


def run_folder(path: Path) -> Path | None:
    """The run folder holding this checkpoint (for its metrics.jsonl), if there is one."""
    p = Path(path)
    run = p if p.is_dir() else (p.parent.parent if p.parent.name == "checkpoints" else None)
    return run if run is not None and (run / "metrics.jsonl").is_file() else None


def load_inpainter(path: Path, device: str = "auto") -> tuple[Inpainter, dict]:
    """The checkpoint's generator (eval mode) and an info dict: path, preset, step, image_size."""
    model = Inpainter.from_checkpoint(path, device)
    model.name = checkpoint_name(path)
    info = {"kind": "checkpoint", "path": model.path, "preset": model.cfg.preset, "step": model.step,
            "image_size": model.image_size}
    return model, info


def checkpoint_method(model: Inpainter, size: int) -> Method:
    """A method running ``model`` on (N, size, size) inputs (directly if it was trained at ``size``)."""
    if model.image_size != size:
        return lambda corrupted, holes: np.stack([model(img, hole) for img, hole in zip(corrupted, holes)])

    @torch.no_grad()
    def fill(corrupted: np.ndarray, holes: np.ndarray) -> np.ndarray:
        x = torch.stack([to_tensor(img) for img in corrupted]).to(model.device)     # (N, 3, S, S)
        m = torch.from_numpy(holes).float()[:, None].to(model.device)              # (N, 1, S, S)
        pred = model.generate(x, m)                        # input is x * (1 - m); float32 at model.precision
        return np.stack([to_uint8(p) for p in pred])
    return fill


# ---------------------------------------------------------------- running

@dataclass
class EvalResult:
    """Everything a report needs. ``scores[method][key]`` is a (N,) float64 array over ``images``."""
    protocol: dict
    images: list[str]
    skipped: list[str]
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    info: dict[str, dict] = field(default_factory=dict)
    grid_rows: list[list[np.ndarray]] = field(default_factory=list)   # [original, corrupted, method...]
    runs: dict[str, Path] = field(default_factory=dict)               # checkpoint name -> run folder

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """{method: {key: {"mean", "std"}}}; std is the sample std (ddof=1), 0 for a single image."""
        out = {}
        for name, sc in self.scores.items():
            out[name] = {k: {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
                         for k, v in sc.items()}
        return out


def run_evaluation(checkpoints: Sequence[Path], sources: Sequence[Path], baselines: Sequence[str] = ("mean",),
                   mask: str = "center", limit: int | None = None, seed: int = 0, size: int | None = None,
                   device: str = "auto", grid_rows: int = 8, batch_size: int = 32, log=print,
                   progress: bool = False) -> EvalResult:
    """Score every checkpoint and baseline on the same photos and masks (see the module docstring)."""
    baselines = parse_baselines(baselines)
    if not checkpoints and not baselines:
        raise InpaintsslError("nothing to evaluate: give --checkpoint and/or --baselines")
    if limit is not None and limit < 1:
        raise InpaintsslError(f"--limit {limit}: must be at least 1")
    if mask not in MASK_KINDS:
        raise InpaintsslError(f"--mask {mask!r}: choose one of {', '.join(MASK_KINDS)}")
    if size is not None and size < 16:
        raise InpaintsslError(f"--size {size}: must be at least 16 px")
    check_dependencies(baselines)
    methods: dict[str, Method] = {}
    info: dict[str, dict] = {}
    runs: dict[str, Path] = {}
    used: set[str] = set(baselines)
    models = []
    for path in checkpoints:
        model, meta = load_inpainter(Path(path), device)
        if model.cfg.model.predict == "patch" and mask != "center":
            raise InpaintsslError(f"{path}: this checkpoint predicts only the central square patch (M3); "
                                  f"evaluate it with --mask center, not --mask {mask}")
        name = unique_name(model.name, used)
        if (warning := model.hole_shape_warning(mask)) is not None:
            log(warning)
        models.append((name, model, meta))
        if (run := run_folder(Path(path))) is not None:
            runs[name] = run
    size = size or (models[0][1].image_size if models else DEFAULT_SIZE)
    for name, model, meta in models:
        methods[name], info[name] = checkpoint_method(model, size), dict(meta, resized=model.image_size != size)
    for name in baselines:
        methods[name], info[name] = BASELINES[name](), {"kind": "baseline"}

    names, images, skipped = load_eval_set([Path(s) for s in sources], size, limit, log, progress)
    holes = eval_masks(mask, len(images), size, seed)
    corrupted = corrupt(images, holes)
    protocol = {"data": [str(s) for s in sources], "images": len(images), "skipped": len(skipped),
                "eval_size": size, "mask": mask, "seed": seed, "mask_stream": EVAL_MASK_STREAM,
                "hole_fraction": float(holes.mean()), "pixel_scale": "[0, 1] (uint8 / 255)",
                "crop": "centre square of the shorter side, bicubic resize to eval_size",
                "scored": "composite: method output inside the hole, original outside"}
    k = min(grid_rows, len(images))
    result = EvalResult(protocol, names, skipped, info=info, runs=runs,
                        grid_rows=[[images[i], corrupted[i]] for i in range(k)])
    bar = tqdm(total=len(methods) * len(images), desc="scoring", unit="photo", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    for name, method in methods.items():
        seconds, parts = 0.0, []
        for lo in range(0, len(images), batch_size):
            sl = slice(lo, lo + batch_size)
            t0 = time.perf_counter()
            filled = method(corrupted[sl], holes[sl])
            seconds += time.perf_counter() - t0
            if filled.shape != images[sl].shape or filled.dtype != np.uint8:
                raise RuntimeError(f"method {name} returned {filled.shape} {filled.dtype}, "
                                   f"expected {images[sl].shape} uint8")
            comp = composite(filled, images[sl], holes[sl])
            parts.append(image_metrics(uint8_to_unit(comp), uint8_to_unit(images[sl]),
                                       torch.from_numpy(holes[sl])[:, None]))
            for i in range(lo, min(lo + len(comp), k)):
                result.grid_rows[i].append(comp[i - lo])
            bar.update(len(comp))
        result.scores[name] = {key: torch.cat([p[key] for p in parts]).numpy() for key in METRIC_KEYS}
        info[name]["seconds_per_image"] = seconds / len(images)      # the method alone, not the scoring
        log(f"{name}: PSNR(hole) {result.scores[name]['psnr_hole'].mean():.2f} dB, "
            f"SSIM(hole) {result.scores[name]['ssim_hole'].mean():.4f}")
    bar.close()
    return result
