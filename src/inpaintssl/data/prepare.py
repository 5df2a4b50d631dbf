"""``inpaintssl prepare``: decode every training photo once into a memory-mapped uint8 cache.

    summary = prepare_cache([Path("train2014")], Path("cache/coco128"), size=128, margin=1.125, workers=16)
    # then: inpaintssl train --data cache/coco128 ...

Geometry of one cached image (``L = round(size * margin)``, e.g. 144 for 128 px and margin 1.125):
the photo is opened with the JPEG decoder's draft mode (DCT-domain down-scaling by 1/2, 1/4 or 1/8
while the shorter side stays >= L, which is most of the speed-up), EXIF-rotated and converted to RGB;
its centre square, of side the shorter side, is resized to L x L (bicubic, with Pillow's reducing_gap
box pre-shrink when the square is over twice L). Training then crops a random square of side
``u * L``, ``u ~ U[crop_min, crop_max]`` (0.875..1 by default), and resizes it to ``size``; the margin
is the head-room that makes those crops land at about the training resolution (0.875 * 144 = 126 px).
A margin of 1 stores the training size exactly (centre crop, no room for crops smaller than 1).

Files written to the output folder (``images-<token>.npy`` is renamed into place first, then the index;
the rename of ``cache_index.json`` is the commit point, so a crash never leaves an index pointing at a
partial array, and re-running with ``overwrite`` never exposes a half-written cache):

* ``images-<token>.npy``  (N, L, L, 3) uint8 RGB, N = number of readable photos, in sorted file order;
* ``cache_index.json``    format, version, size, margin, side, count, the array's name, the sources,
  every cached file (row i = files[i]), and the skipped files with the reason each was skipped.

Decoding runs in a ``multiprocessing.Pool`` (``workers`` processes, ordered ``imap`` in chunks; 0 or 1
decodes in this process); rows are written in input order, so the cache is the same whatever the worker
count. Unreadable files are skipped and counted, never fatal.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..checkpoint import atomic_write_text
from ..errors import InpaintsslError
from .images import center_square, open_image
from .sources import CACHE_FORMAT, CACHE_VERSION, INDEX_NAME, gather_files, is_cache_dir, read_index


def cache_side(size: int, margin: float) -> int:
    """Side L of the stored squares."""
    if size < 8:
        raise InpaintsslError(f"--size {size}: must be at least 8 pixels")
    if not 1.0 <= margin <= 4.0:
        raise InpaintsslError(f"--margin {margin}: must be between 1 and 4 (1.125 leaves room for random crops)")
    return int(round(size * margin))


def centre_square(img: Image.Image, side: int) -> np.ndarray:
    """The centre square of the shorter side, resized to (side, side, 3) uint8."""
    return np.asarray(center_square(img, side), dtype=np.uint8)


def load_square(path: str, side: int) -> tuple[np.ndarray | None, str | None]:
    """(row, None) or (None, reason): one photo decoded (draft mode) and cut to its cached square."""
    try:
        return centre_square(open_image(Path(path), draft=side), side), None
    except InpaintsslError as e:
        return None, str(e)
    except Exception as e:                      # a decoder bug on one odd file must not stop the run
        return None, f"{path}: {type(e).__name__}: {e}"


def _job(args: tuple[str, int]) -> tuple[np.ndarray | None, str | None]:
    return load_square(*args)


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # the parent handles Ctrl-C and cleans up


def _shrink_npy(path: Path, rows: int, row_shape: tuple[int, ...]) -> None:
    """Rewrite an .npy header to ``rows`` rows and cut the file (drops the unused tail in place)."""
    with open(path, "r+b") as f:
        version = np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f) if version == (1, 0) else np.lib.format.read_array_header_2_0(f)
        offset = f.tell()
        header = io.BytesIO()
        meta = {"descr": "|u1", "fortran_order": False, "shape": (rows, *row_shape)}
        if version == (1, 0):
            np.lib.format.write_array_header_1_0(header, meta)
        else:
            np.lib.format.write_array_header_2_0(header, meta)
        if header.tell() != offset:             # numpy pads headers so the row count can shrink in place
            raise InpaintsslError(f"{path}: unexpected .npy header layout; please report this")
        f.seek(0)
        f.write(header.getvalue())
        f.truncate(offset + rows * int(np.prod(row_shape)))


def prepare_cache(sources: list[Path], out: Path, size: int = 128, margin: float = 1.125,
                  workers: int | None = None, overwrite: bool = False, progress: bool = True,
                  log=print) -> dict:
    """Build the cache in ``out`` from every image under ``sources``; returns a summary dict
    (count, skipped, side, seconds, images_per_s, bytes, index path)."""
    out = Path(out)
    side = cache_side(size, margin)
    for src in sources:
        if is_cache_dir(src):
            raise InpaintsslError(f"{src}: is already a prepared cache; pass the photo folders as --data")
    files = gather_files([Path(s) for s in sources])
    if is_cache_dir(out) and not overwrite:
        raise InpaintsslError(f"{out}: already holds a cache ({INDEX_NAME}); pass --overwrite to replace it "
                              "or choose another --out")
    old_images = read_index(out).get("images") if is_cache_dir(out) else None
    out.mkdir(parents=True, exist_ok=True)
    need = len(files) * side * side * 3
    free = shutil.disk_usage(out).free
    if need > free:
        raise InpaintsslError(f"{out}: the cache needs {need / 1e9:.2f} GB but only {free / 1e9:.2f} GB is "
                              "free; free some space or choose another --out")
    workers = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) \
        if workers is None else workers
    workers = max(0, min(workers, len(files)))

    name = f"images-{secrets.token_hex(4)}.npy"
    tmp = out / f".{name}.tmp"
    t0 = time.perf_counter()
    skipped: list[dict] = []
    kept: list[str] = []
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), side, side, 3))
        jobs = [(str(f), side) for f in files]
        if workers <= 1:                        # one worker: decode here, a pool would only add IPC
            results, pool = map(_job, jobs), None
        else:                                   # fork: workers start at once (they only run Pillow)
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            pool = ctx.Pool(workers, initializer=_init_worker)
            results = pool.imap(_job, jobs, chunksize=max(1, min(32, len(jobs) // (workers * 8))))
        bar = tqdm(total=len(files), disable=not progress, unit="img", dynamic_ncols=True, file=sys.stderr,
                   desc="prepare")
        try:
            for (path, _), (row, reason) in zip(jobs, results):
                if row is None:
                    skipped.append({"path": path, "reason": reason})
                else:
                    array[len(kept)] = row
                    kept.append(path)
                bar.update(1)
        finally:
            bar.close()
            if pool is not None:
                pool.terminate()
                pool.join()
        array.flush()
        del array
        if not kept:
            raise InpaintsslError(f"none of the {len(files)} files could be read (first: {skipped[0]['reason']})")
        if len(kept) < len(files):
            _shrink_npy(tmp, len(kept), (side, side, 3))
        os.replace(tmp, out / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - t0
    index = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "images": name, "count": len(kept),
             "size": size, "margin": margin, "side": side, "dtype": "uint8", "layout": "N,H,W,3 RGB",
             "geometry": "centre square of the shorter side, resized (bicubic) to side x side",
             "sources": [str(Path(s).resolve()) for s in sources], "files": kept, "skipped": skipped,
             "seconds": round(seconds, 3)}
    try:
        atomic_write_text(out / INDEX_NAME, json.dumps(index, indent=1) + "\n")
        os.chmod(out / INDEX_NAME, 0o644)          # readable by every rank / user, like the array
    except BaseException:
        (out / name).unlink(missing_ok=True)
        raise
    if old_images and old_images != name:
        (out / old_images).unlink(missing_ok=True)
    if skipped:
        log(f"skipped {len(skipped)} unreadable file(s) of {len(files)} (listed in {out / INDEX_NAME}); "
            f"first: {skipped[0]['reason']}")
    return {"count": len(kept), "skipped": len(skipped), "files": len(files), "side": side,
            "seconds": round(seconds, 3), "images_per_s": round(len(files) / max(seconds, 1e-9), 1),
            "bytes": len(kept) * side * side * 3, "index": str(out / INDEX_NAME), "workers": workers}
