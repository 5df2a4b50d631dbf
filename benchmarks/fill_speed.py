"""How long ``inpaint`` takes to fill one photo at its own size, against OpenCV's Telea on the same holes.

    python benchmarks/fill_speed.py                                  # bundled model, VOC2007 test photos
    python benchmarks/fill_speed.py --checkpoint runs/fcn --photos 20 --rounds 3 --threads 2

For the first ``--photos`` VOC2007 test photos (500 x 375 and the like: the native protocol's photos) and
each hole kind of the native protocol (centre square, brush strokes), times one call of the inpainter
(:class:`inpaintssl.gan.inpainter.Inpainter`, the path ``inpaint`` and ``serve`` run: pre-fill, windows,
generator, composite) and one call of ``cv2.inpaint`` (Telea, radius 3), alternating, ``--rounds`` times
after one warm-up call each. Prints the median seconds per photo of both and their ratio, per hole kind.
Decoding and encoding the files are not included (they are the same for every method).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from inpaintssl.evaluation.native import load_native, native_hole
from inpaintssl.gan.inpainter import Inpainter
from inpaintssl.gan.prefill import telea_prefill

VOC = Path(__file__).resolve().parents[2] / "shared" / "data" / "voc2007-sample" / "VOCdevkit" / "VOC2007"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="bundled")
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not VOC.is_dir():
        raise SystemExit(f"VOC2007 photos not found at {VOC}")
    ids = (VOC / "ImageSets" / "Main" / "test.txt").read_text().split()[:args.photos]
    photos = [load_native(VOC / "JPEGImages" / f"{i}.jpg") for i in ids]
    model = Inpainter.from_checkpoint(args.checkpoint, device="cpu")
    print(f"{args.checkpoint} ({model.cfg.preset}, {model.precision}), {len(photos)} photos, "
          f"{torch.get_num_threads()} torch threads")
    for kind in ("center", "strokes"):
        holes = [native_hole(kind, *p.shape[:2], 0, i) for i, p in enumerate(photos)]
        model(photos[0], holes[0]), telea_prefill(photos[0], holes[0])      # warm-up
        ours, telea = [], []
        for _ in range(args.rounds):
            for p, h in zip(photos, holes):
                t0 = time.perf_counter()
                model(p, h)
                t1 = time.perf_counter()
                telea_prefill(p, h)
                ours.append(t1 - t0)
                telea.append(time.perf_counter() - t1)
        a, b = statistics.median(ours), statistics.median(telea)
        size = statistics.median(p.shape[1] for p in photos), statistics.median(p.shape[0] for p in photos)
        print(f"{kind:8s} median photo {size[0]:.0f}x{size[1]:.0f}: inpainter {a:.3f} s (max {max(ours):.3f}), "
              f"telea {b:.3f} s, ratio {a / b:.1f}x")


if __name__ == "__main__":
    main()
