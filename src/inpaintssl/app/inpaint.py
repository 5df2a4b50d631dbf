"""Inpaint photos and folders of photos: the engine behind ``inpaintssl inpaint``.

    jobs, kept = plan_jobs(collect_inputs([Path("photos/")]), Path("filled/"))
    masks = MaskSource(path=Path("masks/"), dilate=4)        # or MaskSource(center=True)
    fill = Inpainter.from_checkpoint("runs/m1")              # or baseline_fill("telea")
    done = inpaint_files(jobs, fill, masks)                  # {"written": [...], "failed": [...]}

A *fill* is any callable ``(rgb (H, W, 3) uint8, hole (H, W) bool) -> (H, W, 3) uint8`` that changes only the
hole pixels: an :class:`~inpaintssl.gan.inpainter.Inpainter`, or :func:`baseline_fill` (OpenCV's Telea or
Navier-Stokes, the baselines of :mod:`inpaintssl.evaluation.evaluate`).

Outputs go to ``OUT/<path relative to its input root>`` with the suffix :func:`output_suffix` picks: the
input's own for a JPEG input (``.jpg``/``.jpeg``, written at quality 95 without chroma subsampling, so the
pixels outside the hole are no longer bit-identical once encoded), lossless PNG for every other input;
``fmt`` (``png``, ``jpg``, ``webp``; WebP is lossless) forces one format. Before any work, :func:`plan_jobs`
refuses an ``OUT`` that is a file, an output that would replace an input, two inputs that would write the
same output (``x.png`` and ``x.webp``, or ``x.jpg`` and ``x.png`` with ``fmt="png"``), and existing outputs
unless ``overwrite`` (``skip_existing`` keeps them and skips their inputs, to continue a folder run).

May import ``data``, ``gan`` and ``evaluation``; never the CLI.
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.images import dilate_hole, is_image_path, list_images, load_mask, load_rgb, save_image
from ..errors import InpaintsslError

OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
METHODS = ("model", "telea", "ns")            # --method: the trained generator or an OpenCV baseline
JPEG_SUFFIXES = (".jpg", ".jpeg")

Fill = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Job:
    src: Path          # the photo
    rel: Path          # its path relative to the input root (what the mask folder and OUT mirror)
    dst: Path          # the output file


def collect_inputs(inputs: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(file, path relative to its input root) for every image given directly or inside a folder."""
    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = list_images(item)
            if not files:
                raise InpaintsslError(f"{item}: folder has no image files (.jpg .png .webp ...)")
            found += [(f, f.relative_to(item)) for f in files]
        elif item.exists():
            found.append((item, Path(item.name)))
        else:
            raise InpaintsslError(f"{item}: no such file or folder")
    return found


def output_suffix(src: Path, fmt: str | None = None) -> str:
    """``fmt``'s suffix, else the input's own for a JPEG input, else ``.png`` (lossless)."""
    if fmt is not None:
        if fmt not in OUTPUT_FORMATS:
            raise InpaintsslError(f"--format {fmt}: choose one of {', '.join(OUTPUT_FORMATS)}")
        return OUTPUT_FORMATS[fmt]
    return src.suffix if src.suffix.lower() in JPEG_SUFFIXES else ".png"


def _check_folder(out: Path, dst: Path) -> None:
    """Every folder from ``out`` down to ``dst``'s parent must be a folder (or not exist yet)."""
    for folder in [dst.parent, *dst.parent.parents]:
        if folder.exists() and not folder.is_dir():
            raise InpaintsslError(f"{folder}: is a file, so {dst} cannot be written; --out takes a folder "
                                  "(created if missing)")
        if folder == out:
            break


def plan_jobs(pairs: Sequence[tuple[Path, Path]], out: Path, fmt: str | None = None, overwrite: bool = False,
              skip_existing: bool = False) -> tuple[list[Job], list[Job]]:
    """(jobs to run, jobs whose output exists and is kept because of ``skip_existing``); every refusal of
    the module docstring is an :class:`InpaintsslError` raised before anything is written."""
    out = Path(out)
    if overwrite and skip_existing:
        raise InpaintsslError("give --overwrite or --skip-existing, not both")
    sources = {p.resolve() for p, _ in pairs}
    writer: dict[Path, Path] = {}                   # resolved output -> the input that writes it
    jobs, kept = [], []
    for src, rel in pairs:
        dst = out / rel.with_suffix(output_suffix(src, fmt))
        _check_folder(out, dst)
        key = dst.resolve()
        if key in sources:
            raise InpaintsslError(f"{dst}: would overwrite an input photo; choose another --out")
        if key in writer:
            raise InpaintsslError(f"{writer[key]} and {src} would both be written to {dst}; rename one of them, "
                                  "or inpaint them into different --out folders")
        writer[key] = src
        if dst.is_dir():
            raise InpaintsslError(f"{dst}: is a folder where the output file should go; move it or choose "
                                  "another --out")
        if dst.exists():
            if skip_existing:
                kept.append(Job(src, rel, dst))
                continue
            if not overwrite:
                raise InpaintsslError(f"{dst}: already exists; pass --overwrite to replace it, --skip-existing "
                                      "to keep it, or choose another --out")
        jobs.append(Job(src, rel, dst))
    return jobs, kept


@dataclass
class MaskSource:
    """Where each photo's hole comes from: the centre square (``center``), one mask file for every photo,
    or a folder of masks named like the inputs (``path``); then grown by ``dilate`` px."""

    center: bool = False
    path: Path | None = None
    dilate: int = 0

    def __post_init__(self):
        if self.center == (self.path is not None):
            raise InpaintsslError("give exactly one of --mask MASK and --center")
        if self.path is not None and not Path(self.path).exists():
            raise InpaintsslError(f"{self.path}: no such mask file or folder")
        if self.dilate < 0:
            raise InpaintsslError(f"--dilate {self.dilate}: must be >= 0")
        self._warned: set[Path] = set()

    def mask_file(self, src: Path, rel: Path) -> Path:
        if not self.path.is_dir():
            return self.path
        stem = rel.with_suffix("").as_posix()
        cands = [c for c in self.path.glob(f"{glob.escape(stem)}.*") if c.is_file() and is_image_path(c)]
        if not cands:
            raise InpaintsslError(f"{src}: no mask named {stem}.* in {self.path}")
        return sorted(cands)[0]

    def hole_for(self, src: Path, rel: Path, shape: tuple[int, int], warn=None) -> np.ndarray:
        """(H, W) bool hole for the photo ``src``; a bad mask's error names the photo it was for."""
        if self.center:
            from ..gan.inpainter import center_hole          # torch: imported when work starts, not by --help
            return dilate_hole(center_hole(*shape), self.dilate)
        mask = self.mask_file(src, rel)

        def warn_once(msg: str) -> None:            # one mask file for many photos: say it once
            if warn is not None and mask not in self._warned:
                self._warned.add(mask)
                warn(msg)
        try:
            hole = load_mask(mask, shape, warn=warn_once)
        except InpaintsslError as e:
            raise InpaintsslError(f"{src}: {e}") from None
        return dilate_hole(hole, self.dilate)


def baseline_fill(name: str) -> Fill:
    """A fill by OpenCV's ``telea`` or ``ns`` on the full photo (the baselines of :mod:`evaluate`): it sees
    the photo with the hole painted gray and changes only the hole pixels."""
    from ..evaluation.evaluate import BASELINES, composite, corrupt
    if name not in ("telea", "ns"):
        raise InpaintsslError(f"--method {name}: choose one of {', '.join(METHODS)}")
    method = BASELINES[name]()

    def fill(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        imgs, holes = rgb[None], hole[None]                          # (1, H, W, 3), (1, H, W)
        return composite(method(corrupt(imgs, holes), holes), imgs, holes)[0]
    return fill


def inpaint_files(jobs: Sequence[Job], fill: Fill, masks: MaskSource, progress: bool = False, echo=print,
                  log=print) -> dict:
    """Fill and write every job. ``echo`` hears each written path, ``log`` warnings and skipped inputs.

    A failing input (unreadable photo, bad or missing mask) is skipped and reported when there are
    several, raised when it is the only one. Returns {"written": [paths], "failed": [(src, message)]}."""
    written, failed = [], []
    bar = tqdm(total=len(jobs), disable=not progress or len(jobs) < 2, unit="photo", dynamic_ncols=True,
               file=sys.stderr)

    def say(fn, msg: str) -> None:                  # print above the progress bar, not through it
        with tqdm.external_write_mode(file=sys.stderr):
            fn(msg)
    for job in jobs:
        try:
            rgb = load_rgb(job.src)
            hole = masks.hole_for(job.src, job.rel, rgb.shape[:2], warn=lambda m: say(log, f"warning: {m}"))
            save_image(fill(rgb, hole), job.dst)
            written.append(job.dst)
            say(echo, str(job.dst))
        except InpaintsslError as e:
            if len(jobs) == 1:
                raise
            failed.append((job.src, str(e)))
            say(log, f"skipped: {e}")
        bar.update(1)
    bar.close()
    return {"written": written, "failed": failed}
