"""The native-resolution protocol: photos at their own size, holes at the photo's scale, filled through the
very path ``inpaint`` and ``serve`` use.

    result = run_native([Path("runs/fcn")], [Path("voc-test")], baselines=["telea", "ns", "mean"],
                        kinds=("center", "strokes"), limit=None, seed=0)
    write_native_report(result, Path("reports/native"))   # report.md, metrics.json, per_image.csv, grid.png

Protocol (the same for every method):

1. the photos under ``sources`` are listed recursively in sorted order and decoded at their own size
   (EXIF orientation applied); a photo whose longer side exceeds ``max_side`` (:data:`MAX_SIDE`, 640) is
   shrunk to it (bicubic, antialiased), so a phone photo costs what a VOC photo costs. Unreadable files
   are skipped and listed;
2. photo i gets one hole of each kind in ``kinds`` (:func:`..gan.masks.photo_hole`: ``center`` = the
   central square of half the shorter side, ``rect`` = 25-50% of it, ``strokes`` = 1-4 brush strokes 2-8%
   of the shorter side wide), drawn from a generator that depends only on (seed, i, kind), so adding
   photos or methods never changes a hole;
3. a method receives the photo with its hole painted gray 128 and the hole, and returns the photo; a
   checkpoint runs through :class:`..gan.inpainter.Inpainter` (``name@path`` rows: the same model through
   another :data:`..gan.inpainter.FILL_PATHS` entry), the baselines are ``cv2.inpaint`` (Telea, NS,
   radius 3) and the mean colour. Scored on the composite (fill inside the hole, the photo outside):
   :func:`.metrics.image_metrics` (hole PSNR, SSIM, L1, sharpness, checkerboard) per photo, and
4. over the whole set, the sliced Wasserstein distance between the Laplacian-pyramid patches of the fills
   and of the originals in the hole (:func:`swd_hole`, after Karras et al. 2018: 7 x 7 patches at three
   levels, 1/1, 1/2, 1/4), a weight-free measure of how photo-like the fill's texture is (0 = the same
   distribution; a flat fill scores high at the fine levels). Lower is better.

The report puts every method beside Telea's: the mean paired difference of hole PSNR and SSIM with its
standard error, and on how many photos the method is better.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from ..checkpoint import atomic_write_text
from ..data.images import list_images, open_image, save_png
from ..errors import InpaintsslError
from ..gan.inpainter import FILL_PATHS, Inpainter
from ..gan.masks import PHOTO_KINDS, photo_hole, step_generator
from .evaluate import (BASELINES, check_dependencies, composite, corrupt, load_inpainter, parse_baselines,
                       unique_name)
from .metrics import image_metrics, uint8_to_unit

MAX_SIDE = 640                  # longer side cap of the native protocol (px)
NATIVE_MASK_STREAM = 7          # step_generator stream of the native holes (64 px protocol: 5; training: 0, 2)
SWD_LEVELS, SWD_PATCH, SWD_PER_IMAGE, SWD_DIRECTIONS = 3, 7, 64, 512
HOLE_MARGIN = 8                 # px of context kept around the hole's box when scoring (SSIM reaches 5)
GRID_TILE = 192                 # side of a native-resolution crop in grid.png
SCORE_KEYS = ("psnr_hole", "ssim_hole", "l1_hole", "sharpness_hole", "checker_hole")

# a method: (corrupted (H, W, 3) uint8, hole (H, W) bool) -> filled (H, W, 3) uint8
PhotoMethod = Callable[[np.ndarray, np.ndarray], np.ndarray]


def load_native(path: Path, max_side: int = MAX_SIDE) -> np.ndarray:
    """The photo at its own size, (H, W, 3) uint8, shrunk (bicubic, antialiased) if its longer side > max_side."""
    img = open_image(path)
    if max(img.size) > max_side:
        k = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * k)), max(1, round(img.height * k))), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8).copy()


def native_hole(kind: str, height: int, width: int, seed: int, index: int) -> np.ndarray:
    """Photo ``index``'s hole of ``kind``: (height, width) bool; depends only on (kind, seed, index, size)."""
    stream = NATIVE_MASK_STREAM * 16 + PHOTO_KINDS.index(kind)
    return photo_hole(kind, height, width, step_generator(seed, index, stream)).numpy()


def baseline_method(name: str) -> PhotoMethod:
    batched = BASELINES[name]()
    return lambda img, hole: batched(img[None], hole[None])[0]


# ---------------------------------------------------------------- the texture measure

def _pyramid(img: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid of (1, C, H, W): levels band-pass images at 1, 1/2, ... (the last is a Gaussian level)."""
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=img.dtype) / 16
    k2 = (k[:, None] * k[None, :]).expand(img.shape[1], 1, 5, 5)
    out, g = [], img
    for lvl in range(levels):
        if lvl == levels - 1 or min(g.shape[-2:]) < 8:
            out.append(g)
            break
        blur = F.conv2d(F.pad(g, (2, 2, 2, 2), mode="reflect"), k2, groups=g.shape[1])
        down = blur[..., ::2, ::2]
        up = F.interpolate(down, size=g.shape[-2:], mode="bilinear", align_corners=False)
        out.append(g - up)
        g = down
    return out


def hole_patches(fill: np.ndarray, orig: np.ndarray, hole: np.ndarray, rng: np.random.Generator,
                 per_image: int = SWD_PER_IMAGE) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per pyramid level, (fill patches, original patches), each (n, 3 * 7 * 7), at the same positions:
    up to ``per_image`` patch centres drawn uniformly among the level's hole pixels."""
    f = uint8_to_unit(fill[None]).float()
    o = uint8_to_unit(orig[None]).float()
    m = torch.from_numpy(hole)[None, None].float()
    out, r = [], SWD_PATCH // 2
    for lvl, (pf, po) in enumerate(zip(_pyramid(f, SWD_LEVELS), _pyramid(o, SWD_LEVELS))):
        ml = F.adaptive_max_pool2d(m, pf.shape[-2:]) if lvl else m
        ys, xs = np.nonzero(ml[0, 0].numpy()[r:-r, r:-r] > 0)
        if len(ys) == 0:
            out.append((np.zeros((0, 3 * SWD_PATCH ** 2), np.float32),) * 2)
            continue
        pick = rng.choice(len(ys), size=min(per_image, len(ys)), replace=False)
        ys, xs = ys[pick], xs[pick]                               # top-left corners of the patches
        grab = lambda p: np.stack([p[0, :, y:y + SWD_PATCH, x:x + SWD_PATCH].reshape(-1).numpy()   # noqa: E731
                                   for y, x in zip(ys, xs)])
        out.append((grab(pf), grab(po)))
    return out


def swd(a: np.ndarray, b: np.ndarray, seed: int = 0, directions: int = SWD_DIRECTIONS) -> float:
    """Sliced Wasserstein distance (x 1e3) between two equal-sized sets of descriptors (n, d), both
    normalised by the originals' (``b``) per-channel mean and std, as in Karras et al. (2018)."""
    if len(a) == 0:
        return float("nan")
    c = 3
    bb = b.reshape(len(b), c, -1)
    mu, sd = bb.mean(axis=(0, 2))[None, :, None], bb.std(axis=(0, 2))[None, :, None] + 1e-8
    a = ((a.reshape(len(a), c, -1) - mu) / sd).reshape(len(a), -1)
    b = ((bb - mu) / sd).reshape(len(b), -1)
    g = np.random.default_rng(seed)
    d = g.standard_normal((a.shape[1], directions))
    d /= np.linalg.norm(d, axis=0, keepdims=True)
    pa, pb = np.sort(a @ d, axis=0), np.sort(b @ d, axis=0)
    return float(np.abs(pa - pb).mean() * 1e3)


def swd_hole(levels: list[list[tuple[np.ndarray, np.ndarray]]]) -> list[float]:
    """One SWD per pyramid level from every photo's :func:`hole_patches`."""
    out = []
    for lvl in range(SWD_LEVELS):
        a = np.concatenate([p[lvl][0] for p in levels if len(p) > lvl])
        b = np.concatenate([p[lvl][1] for p in levels if len(p) > lvl])
        out.append(swd(a, b, seed=lvl))
    return out


# ---------------------------------------------------------------- running

@dataclass
class NativeResult:
    """``scores[kind][method][key]``: (N,) arrays over ``images``; ``swd[kind][method]``: one value per level."""
    protocol: dict
    images: list[str]
    sizes: list[tuple[int, int]]
    skipped: list[str]
    scores: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)
    swd: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)   # median per photo
    info: dict[str, dict] = field(default_factory=dict)
    grid: dict[str, list[list[np.ndarray]]] = field(default_factory=dict)


def native_methods(checkpoints: Sequence[Path], baselines: Sequence[str], fill_paths: Sequence[str] = ("default",),
                   device: str = "auto") -> tuple[dict[str, PhotoMethod], dict[str, dict]]:
    """Named methods: each checkpoint through each fill path (``name`` for ``default``, ``name@path``
    otherwise), then the baselines."""
    check_dependencies(baselines)
    bad = [p for p in fill_paths if p not in FILL_PATHS]
    if bad:
        raise InpaintsslError(f"--fill-path {', '.join(bad)}: choose from {', '.join(FILL_PATHS)}")
    methods, info, used = {}, {}, set(baselines)
    for path in checkpoints:
        model, meta = load_inpainter(Path(path), device)
        base = unique_name(model.name, used)
        for fp in fill_paths:
            name = base if fp == "default" else f"{base}@{fp}"
            variant: Inpainter = model.with_path(fp)
            methods[name] = variant
            info[name] = dict(meta, fill_path=fp)
    for name in baselines:
        methods[name], info[name] = baseline_method(name), {"kind": "baseline"}
    return methods, info


def run_native(checkpoints: Sequence[Path], sources: Sequence[Path], baselines: Sequence[str] = ("telea", "ns", "mean"),
               kinds: Sequence[str] = ("center", "strokes"), fill_paths: Sequence[str] = ("default",),
               limit: int | None = None, seed: int = 0, max_side: int = MAX_SIDE, device: str = "auto",
               grid_rows: int = 6, log=print, progress: bool = False) -> NativeResult:
    """Score every method on every photo and hole kind (see the module docstring)."""
    baselines = parse_baselines(baselines)
    bad = [k for k in kinds if k not in PHOTO_KINDS]
    if bad or not kinds:
        raise InpaintsslError(f"--holes {','.join(kinds)}: choose from {', '.join(PHOTO_KINDS)}")
    if limit is not None and limit < 1:
        raise InpaintsslError(f"--limit {limit}: must be at least 1")
    if max_side < 32:
        raise InpaintsslError(f"--max-side {max_side}: must be at least 32 px")
    methods, info = native_methods(checkpoints, baselines, fill_paths, device)
    if not methods:
        raise InpaintsslError("nothing to evaluate: give --checkpoint and/or --baselines")
    files, skipped = [], []
    for src in map(Path, sources):
        if not src.exists():
            raise InpaintsslError(f"{src}: no such folder or image file; check --data")
        files += [(src, f) for f in list_images(src)]
    result = NativeResult({}, [], [], skipped, info=info)
    patches = {k: {m: [] for m in methods} for k in kinds}
    times = {k: {m: [] for m in methods} for k in kinds}
    per = {k: {m: {key: [] for key in SCORE_KEYS} for m in methods} for k in kinds}
    result.grid = {k: [] for k in kinds}
    bar = tqdm(total=limit or len(files), desc="native", unit="photo", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    for src, f in files:
        if limit is not None and len(result.images) >= limit:
            break
        try:
            img = load_native(f, max_side)
        except InpaintsslError as e:
            skipped.append(str(e))
            continue
        i = len(result.images)
        result.images.append(f.relative_to(src).as_posix() if src.is_dir() else f.name)
        result.sizes.append(img.shape[:2])
        for kind in kinds:
            hole = native_hole(kind, *img.shape[:2], seed, i)
            corrupted = corrupt(img[None], hole[None])[0]
            row = [_crop(img, hole), _crop(corrupted, hole)] if len(result.grid[kind]) < grid_rows else None
            for name, method in methods.items():
                t0 = time.perf_counter()
                filled = method(corrupted, hole)
                times[kind][name].append(time.perf_counter() - t0)
                comp = composite(filled, img, hole)
                sc = hole_metrics(comp, img, hole)
                for key in SCORE_KEYS:
                    per[kind][name][key].append(float(sc[key][0]))
                patches[kind][name].append(hole_patches(comp, img, hole, np.random.default_rng([seed, i])))
                if row is not None:
                    row.append(_crop(comp, hole))
            if row is not None:
                result.grid[kind].append(row)
        bar.update(1)
    bar.close()
    if not result.images:
        raise InpaintsslError(f"no readable photo in {', '.join(map(str, sources))}; pass photos with --data")
    for kind in kinds:
        result.scores[kind] = {m: {k: np.asarray(v) for k, v in d.items()} for m, d in per[kind].items()}
        result.swd[kind] = {m: swd_hole(p) for m, p in patches[kind].items()}
        result.seconds[kind] = {m: float(np.median(t)) for m, t in times[kind].items()}
        tel = result.scores[kind].get("telea")
        for m, sc in result.scores[kind].items():
            log(f"{kind} {m}: PSNR(hole) {sc['psnr_hole'].mean():.2f} dB, SSIM(hole) {sc['ssim_hole'].mean():.4f}"
                + (f", vs telea {paired(sc['psnr_hole'], tel['psnr_hole'])[0]:+.2f} dB" if tel is not None else ""))
    sizes = np.asarray(result.sizes)
    result.protocol = {"data": [str(s) for s in sources], "images": len(result.images), "skipped": len(skipped),
                       "max_side": max_side, "holes": list(kinds), "seed": seed, "mask_stream": NATIVE_MASK_STREAM,
                       "median_size": [int(np.median(sizes[:, 1])), int(np.median(sizes[:, 0]))],
                       "fill_paths": list(fill_paths), "torch_threads": torch.get_num_threads(),
                       "scored": "composite: method output inside the hole, the photo outside; at the photo's size"}
    return result


def hole_metrics(comp: np.ndarray, img: np.ndarray, hole: np.ndarray) -> dict[str, torch.Tensor]:
    """:func:`.metrics.image_metrics` of one photo, computed on the hole's bounding box grown by
    :data:`HOLE_MARGIN` px (clipped to the photo): every hole-only value is the same as on the whole photo
    (SSIM's window reaches 5 px, and at the photo's border the crop's border is the photo's), at a fraction
    of the cost. The whole-image values of the crop are not the photo's and are not reported."""
    ys, xs = np.nonzero(hole)
    m = HOLE_MARGIN
    t, b = max(0, ys.min() - m), min(hole.shape[0], ys.max() + 1 + m)
    l_, r = max(0, xs.min() - m), min(hole.shape[1], xs.max() + 1 + m)
    crop = (slice(t, b), slice(l_, r))
    return image_metrics(uint8_to_unit(comp[crop][None]), uint8_to_unit(img[crop][None]),
                         torch.from_numpy(hole[crop])[None, None])


def _crop(img: np.ndarray, hole: np.ndarray, side: int = GRID_TILE) -> np.ndarray:
    """A side x side crop at the photo's own resolution, centred on the hole pixel nearest the hole's centre
    of mass (kept inside the photo)."""
    h, w = hole.shape
    ys, xs = np.nonzero(hole)
    k = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    s = min(side, h, w)
    top = int(np.clip(ys[k] - s // 2, 0, h - s))
    left = int(np.clip(xs[k] - s // 2, 0, w - s))
    crop = img[top:top + s, left:left + s]
    if s < side:
        crop = np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.NEAREST))
    return crop


# ---------------------------------------------------------------- report

def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
    """(mean of a - b, its standard error, how many photos have a > b)."""
    d = np.asarray(a) - np.asarray(b)
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
    return float(d.mean()), se, int((d > 0).sum())


def native_table(result: NativeResult, kind: str, reference: str = "telea") -> str:
    """The markdown table of one hole kind: means, SWD, and paired differences against ``reference``."""
    sc, n = result.scores[kind], len(result.images)
    ref = sc.get(reference)
    head = ("| method | PSNR hole (dB) | SSIM hole | L1 hole | sharpness | SWD x1e3 (1/1, 1/2, 1/4) | "
            f"PSNR - {reference} | SSIM - {reference} | better PSNR on | s / photo |")
    lines = [head, "|" + "---|" * 10]
    for m, s in sc.items():
        sw = ", ".join(f"{v:.0f}" for v in result.swd[kind][m])
        if ref is not None and m != reference:
            dp, sp, bp = paired(s["psnr_hole"], ref["psnr_hole"])
            ds, ss, _ = paired(s["ssim_hole"], ref["ssim_hole"])
            diff = f"{dp:+.2f} ± {sp:.2f} | {ds:+.4f} ± {ss:.4f} | {bp} of {n}"
        else:
            diff = "- | - | -"
        lines.append(f"| {m} | {s['psnr_hole'].mean():.2f} | {s['ssim_hole'].mean():.4f} | {s['l1_hole'].mean():.4f} "
                     f"| {s['sharpness_hole'].mean():.3f} | {sw} | {diff} | {result.seconds[kind][m]:.3f} |")
    return "\n".join(lines)


REPORT_FILES = ("report.md", "metrics.json", "per_image.csv")


def write_native_report(result: NativeResult, out: Path, command: str = "", overwrite: bool = False) -> dict[str, Path]:
    from .report import labelled_grid
    out = Path(out)
    existing = [n for n in REPORT_FILES if (out / n).exists()]
    if existing and not overwrite:
        raise InpaintsslError(f"{out}: already holds a report ({', '.join(existing)}); pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    p = result.protocol
    lines = ["# Inpainting at the photo's own resolution", "",
             f"{p['images']} photos from {', '.join(p['data'])} at their own size (median "
             f"{p['median_size'][0]} x {p['median_size'][1]}, longer side capped at {p['max_side']} px), "
             f"holes drawn at the photo's scale (seed {p['seed']}), every method on the same holes; scored on "
             "the composite. SWD: sliced Wasserstein distance of 7 x 7 Laplacian-pyramid patches in the hole "
             "(lower = more photo-like texture). s / photo: the method's median time per photo "
             f"({p['torch_threads']} torch threads).", ""]
    if command:
        lines += ["Made by:", "", "```", command, "```", ""]
    for kind in result.scores:
        lines += [f"## {kind}", "", native_table(result, kind), ""]
        if result.grid[kind]:
            lines += [f"![{kind}](grid_{kind}.png)", ""]
    if result.skipped:
        lines += ["## Skipped", ""] + [f"- {s}" for s in result.skipped]
    paths = {"report.md": out / "report.md"}
    atomic_write_text(paths["report.md"], "\n".join(lines) + "\n")
    summary = {"protocol": p, "info": result.info, "swd": result.swd, "seconds_per_photo": result.seconds,
               "mean": {k: {m: {key: float(v.mean()) for key, v in s.items()} for m, s in d.items()}
                        for k, d in result.scores.items()}}
    paths["metrics.json"] = out / "metrics.json"
    atomic_write_text(paths["metrics.json"], json.dumps(summary, indent=2, default=str) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["image", "width", "height", "holes", "method", *SCORE_KEYS])
    for kind, d in result.scores.items():
        for m, s in d.items():
            for i, name in enumerate(result.images):
                h, wd = result.sizes[i]
                w.writerow([name, wd, h, kind, m, *(f"{s[k][i]:.6f}" for k in SCORE_KEYS)])
    paths["per_image.csv"] = out / "per_image.csv"
    atomic_write_text(paths["per_image.csv"], buf.getvalue())
    for kind, rows in result.grid.items():
        if rows:
            labels = ["original", "input", *result.scores[kind]]
            paths[f"grid_{kind}.png"] = out / f"grid_{kind}.png"
            save_png(labelled_grid(rows, labels), paths[f"grid_{kind}.png"])
    return paths
