"""The screening table of docs/results.md from ``inpaintssl evaluate`` reports (one per hole shape, same photos and seed).

    python scripts/screen_table.py --eval center=screen/eval-center --eval freeform=screen/eval-freeform \
        --base base --vs telea

Reads each report folder's ``per_image.csv`` and prints one markdown row per method: hole PSNR, SSIM, L1,
sharpness and checkerboard (mean over the photos) for each hole shape, and the paired hole-PSNR difference to
``--base`` and to ``--vs`` (mean ± standard error over the photos: every method is scored on the same photos and
holes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from inpaintssl.reproduce.report import paired_difference, read_per_image


# (header, per_image.csv column, decimals) of each hole-shape block; the first header gets the shape's name
COLUMNS = (("PSNR", "psnr_hole", 2), ("SSIM", "ssim_hole", 3), ("L1", "l1_hole", 4),
           ("sharpness", "sharpness_hole", 3), ("checker", "checker_hole", 2))


def paired(a: dict, b: dict, key: str = "psnr_hole") -> str:
    mean, se, _ = paired_difference(a[key], b[key])
    return f"{mean:+.2f} ± {se:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", action="append", required=True, help="SHAPE=REPORT_FOLDER; repeatable")
    ap.add_argument("--base", required=True, help="method the paired differences are taken against")
    ap.add_argument("--vs", default="telea", help="a second reference (a baseline)")
    args = ap.parse_args()
    evals = {s.split("=", 1)[0]: read_per_image(Path(s.split("=", 1)[1]) / "per_image.csv") for s in args.eval}
    methods = list(next(iter(evals.values())))
    head, rule = ["method"], ["---"]
    for shape in evals:
        head += [f"{shape} {COLUMNS[0][0]}", *(h for h, _, _ in COLUMNS[1:]), f"Δ vs {args.base}", f"Δ vs {args.vs}"]
        rule += ["---:"] * (len(COLUMNS) + 2)
    print("| " + " | ".join(head) + " |\n|" + "|".join(rule) + "|")
    for m in methods:
        cells = [m]
        for scores in evals.values():
            s = scores[m]
            cells += [f"{s[k].mean():.{p}f}" for _, k, p in COLUMNS]
            cells += ["" if m == args.base else paired(s, scores[args.base]),
                      "" if m == args.vs else paired(s, scores[args.vs])]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
