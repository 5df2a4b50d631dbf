"""``inpaintssl prepare`` vs a plain one-process Pillow loop on the same photos (images/s and ratio).

    python benchmarks/prepare_speed.py                                   # the shared COCO sample photos
    python benchmarks/prepare_speed.py --data photos/ --size 128 --workers 16 --rounds 3

Plain loop: for every file, ``Image.open`` -> ``convert("RGB")`` -> centre square crop -> bicubic resize
to the cached side -> uint8 array, one process, full-resolution decoding (the straightforward code).
Project: :func:`inpaintssl.data.prepare.prepare_cache` (JPEG draft decoding, a process pool, writing the
memory-mapped cache and its index). Both read the files once before timing so the page cache is warm;
rounds alternate between the two and the median is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from inpaintssl.data.sources import gather_files
from inpaintssl.data.prepare import cache_side, prepare_cache

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco-sample"


def plain_loop(files: list[Path], side: int) -> np.ndarray:
    out = np.empty((len(files), side, side, 3), np.uint8)
    for i, path in enumerate(files):
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            s = min(w, h)
            left, top = (w - s) // 2, (h - s) // 2
            out[i] = np.asarray(img.crop((left, top, left + s, top + s)).resize((side, side), Image.BICUBIC))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, action="append", default=None,
                    help=f"photo folder, repeatable (default: {SHARED}/train2017 and val2017)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--margin", type=float, default=1.125)
    ap.add_argument("--workers", type=int, default=None, help="prepare's processes (default: one per core)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    sources = args.data or [SHARED / "train2017", SHARED / "val2017"]
    missing = [s for s in sources if not s.exists()]
    if missing:
        raise SystemExit(f"{missing[0]}: not found; pass --data PHOTO_FOLDER")
    files = gather_files(sources)
    side = cache_side(args.size, args.margin)
    for f in files:                                             # warm the page cache for both contenders
        f.read_bytes()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{len(files)} photos from {', '.join(str(s) for s in sources)}; stored side {side} px; {cores} cores")

    plain_rates, prep_rates = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            t = time.perf_counter()
            plain_loop(files, side)
            plain_rates.append(len(files) / (time.perf_counter() - t))
            t = time.perf_counter()
            s = prepare_cache(sources, Path(tmp) / "cache", size=args.size, margin=args.margin,
                              workers=args.workers, overwrite=True, progress=False, log=lambda *_: None)
            prep_rates.append(len(files) / (time.perf_counter() - t))
    plain, prep = statistics.median(plain_rates), statistics.median(prep_rates)
    print(f"plain loop (1 process, full decode)  {plain:8.1f} images/s   (rounds: "
          f"{', '.join(f'{r:.1f}' for r in plain_rates)})")
    print(f"inpaintssl prepare ({s['workers']} workers, draft)     {prep:8.1f} images/s   (rounds: "
          f"{', '.join(f'{r:.1f}' for r in prep_rates)})")
    print(f"ratio prepare/plain: {prep / plain:.2f}")
    return {"plain_images_per_s": plain, "prepare_images_per_s": prep, "ratio": prep / plain}


if __name__ == "__main__":
    main()
