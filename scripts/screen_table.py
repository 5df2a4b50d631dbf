"""The README's screening table from ``inpaintssl evaluate`` reports (one per hole shape, same photos and seed).

    python scripts/screen_table.py --eval center=screen/eval-center --eval freeform=screen/eval-freeform \
        --base base --vs telea

Reads each report folder's ``per_image.csv`` and prints one markdown row per method: hole PSNR, SSIM, L1 and
sharpness (mean over the photos) for each hole shape, and the paired hole-PSNR difference to ``--base`` and to
``--vs`` (mean ± standard error over the photos: every method is scored on the same photos and holes).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path


def read(folder: Path) -> dict[str, dict[str, dict[str, float]]]:
    """method -> image -> metric -> value."""
    out: dict = {}
    with open(folder / "per_image.csv", newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["method"], {})[row["image"]] = {k: float(v) for k, v in row.items()
                                                               if k not in ("image", "method")}
    return out


def mean(v: list[float]) -> float:
    return sum(v) / len(v)


def paired(a: dict, b: dict, key: str = "psnr_hole") -> str:
    d = [a[i][key] - b[i][key] for i in a]
    m = mean(d)
    se = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d))
    return f"{m:+.2f} ± {se:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", action="append", required=True, help="SHAPE=REPORT_FOLDER; repeatable")
    ap.add_argument("--base", required=True, help="method the paired differences are taken against")
    ap.add_argument("--vs", default="telea", help="a second reference (a baseline)")
    args = ap.parse_args()
    evals = {s.split("=", 1)[0]: read(Path(s.split("=", 1)[1])) for s in args.eval}
    methods = list(next(iter(evals.values())))
    head, rule = ["method"], ["---"]
    for shape in evals:
        head += [f"{shape} PSNR", "SSIM", "L1", "sharpness", f"Δ vs {args.base}", f"Δ vs {args.vs}"]
        rule += ["---:"] * 6
    print("| " + " | ".join(head) + " |\n|" + "|".join(rule) + "|")
    for m in methods:
        cells = [m]
        for scores in evals.values():
            s = scores[m]
            cells += [f"{mean([r[k] for r in s.values()]):.{p}f}"
                      for k, p in (("psnr_hole", 2), ("ssim_hole", 3), ("l1_hole", 4), ("sharpness_hole", 3))]
            cells += ["" if m == args.base else paired(s, scores[args.base]),
                      "" if m == args.vs else paired(s, scores[args.vs])]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
