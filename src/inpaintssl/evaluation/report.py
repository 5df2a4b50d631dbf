"""Write an :class:`evaluate.EvalResult` to a report folder.

    paths = write_report(result, Path("reports/m1"), title="Smoke checkpoint vs baselines")

Files (each written atomically, so a crash never leaves half a report):

* ``report.md``       the protocol, a table (one row per method, mean ± sample std of each metric, the
                      best mean of each column in bold), unreadable files, the grid and the loss curves;
* ``metrics.json``    ``{"protocol": {...}, "methods": {name: {metric_key: {"mean", "std"}}},
                      "method_info": {name: {...}}, "images": [...], "skipped": [...]}``;
* ``per_image.csv``   one row per (image, method): ``image, method, psnr_hole, ..., l2_image`` (METRIC_KEYS);
* ``grid.png``        rows = the first ``grid_rows`` photos; columns = original, corrupted, each method's
                      composite; a header names the columns; tiles under 96 px are enlarged (nearest);
* ``loss_curves.png`` only when a checkpoint came from a run folder with ``metrics.jsonl`` (:mod:`plots`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..checkpoint import atomic_write_text
from ..errors import InpaintsslError
from .evaluate import EvalResult
from .metrics import HIGHER_IS_BETTER, METRIC_KEYS, PSNR_CAP_DB, TARGET_VALUE
from ..data.images import make_grid, save_png

REPORT_FILES = ("report.md", "metrics.json", "per_image.csv", "grid.png", "loss_curves.png")
MIN_TILE = 96                    # grid tiles smaller than this are enlarged by an integer factor
_HEADERS = {"psnr": "PSNR dB", "ssim": "SSIM", "l1": "L1", "l2": "L2 (MSE)", "sharpness": "sharpness",
            "checker": "checkerboard"}
_DIGITS = {"psnr": 2, "ssim": 4, "l1": 4, "l2": 5, "sharpness": 3, "checker": 2}


def check_report_dir(out: Path, overwrite: bool) -> None:
    """Refuse to replace an existing report unless ``overwrite`` (call before any long work)."""
    existing = [n for n in REPORT_FILES if (Path(out) / n).exists()]
    if existing and not overwrite:
        raise InpaintsslError(f"{out}: already holds a report ({', '.join(existing)}); pass --overwrite to "
                              "replace it or choose another --out")


def labelled_grid(rows: list[list[np.ndarray]], labels: list[str]) -> np.ndarray:
    """make_grid of the tiles (enlarged to >= MIN_TILE px) under a white header naming each column."""
    size = rows[0][0].shape[0]
    k = max(1, math.ceil(MIN_TILE / size))
    if k > 1:
        rows = [[t.repeat(k, 0).repeat(k, 1) for t in row] for row in rows]
    grid = make_grid(rows)
    tile, pad, head = size * k, 2, 16
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + head), "white")
    canvas.paste(Image.fromarray(grid), (0, head))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    for j, text in enumerate(labels):
        while len(text) > 3 and draw.textlength(text, font=font) > tile:
            text = text[:-2] + "~"                                 # shorten names wider than a tile
        x = pad + j * (tile + pad) + (tile - draw.textlength(text, font=font)) / 2
        draw.text((x, 2), text, fill="black", font=font)
    return np.asarray(canvas)


def _fmt(key: str, stats: dict[str, float]) -> str:
    d = _DIGITS[key.split("_")[0]]
    return f"{stats['mean']:.{d}f} ± {stats['std']:.{d}f}"


def metrics_table(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown table: one row per method, one column per metric key, best mean in bold (for a metric
    with a :data:`metrics.TARGET_VALUE`, e.g. sharpness: the mean closest to the target, marked →1)."""
    best = {}
    for key in METRIC_KEYS:
        metric, means = key.split("_")[0], [s[key]["mean"] for s in summary.values()]
        if metric in TARGET_VALUE:
            best[key] = min(means, key=lambda v: abs(v - TARGET_VALUE[metric]))
        else:
            best[key] = max(means) if HIGHER_IS_BETTER[metric] else min(means)
    head = ["method"]
    for key in METRIC_KEYS:
        metric, region = key.split("_")
        arrow = (f"→{TARGET_VALUE[metric]:g}" if metric in TARGET_VALUE
                 else "↑" if HIGHER_IS_BETTER[metric] else "↓")
        head.append(f"{_HEADERS[metric]} {region} {arrow}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summary.items():
        cells = [f"**{_fmt(k, s[k])}**" if len(summary) > 1 and s[k]["mean"] == best[k] else _fmt(k, s[k])
                 for k in METRIC_KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _method_lines(result: EvalResult) -> list[str]:
    out = []
    for name, inf in result.info.items():
        ms = f"{1000 * inf.get('seconds_per_image', 0):.1f} ms/image"
        if inf["kind"] == "checkpoint":
            how = "resized via a context window" if inf.get("resized") else "at its own size"
            out.append(f"- `{name}`: checkpoint `{inf['path']}` (preset {inf['preset']}, step {inf['step']}, "
                       f"{inf['image_size']} px, run {how}); {ms}")
        else:
            out.append(f"- `{name}`: baseline; {ms}")
    return out


def write_report(result: EvalResult, out: Path, title: str = "Inpainting evaluation", intro: str = "",
                 overwrite: bool = True) -> dict[str, Path]:
    """Write the report files into ``out``; returns {file name: path}. ``intro`` is Markdown put first."""
    out = Path(out)
    check_report_dir(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    summary, p = result.summary(), result.protocol
    paths = {name: out / name for name in REPORT_FILES[:4]}

    doc = {"protocol": p, "methods": summary, "method_info": result.info, "images": result.images,
           "skipped": result.skipped}
    atomic_write_text(paths["metrics.json"], json.dumps(doc, indent=2, default=str) + "\n")

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "method", *METRIC_KEYS])
    for name, sc in result.scores.items():
        for i, img in enumerate(result.images):
            writer.writerow([img, name, *(f"{sc[k][i]:.6g}" for k in METRIC_KEYS)])
    atomic_write_text(paths["per_image.csv"], buf.getvalue())

    labels = ["original", "corrupted", *result.scores]
    if result.grid_rows:
        save_png(labelled_grid(result.grid_rows, labels), paths["grid.png"])

    curves_note = ""
    if result.runs:
        try:
            from .plots import plot_loss_curves
            paths["loss_curves.png"] = plot_loss_curves(result.runs, out / "loss_curves.png")
            curves_note = ("## Training loss curves\n\n![loss curves](loss_curves.png)\n\n"
                           f"From the `metrics.jsonl` of: {', '.join(f'`{n}`' for n in result.runs)}.\n")
        except InpaintsslError as e:
            curves_note = f"## Training loss curves\n\nNot drawn: {e}\n"

    md = [f"# {title}", ""]
    if intro:
        md += [intro.rstrip(), ""]
    md += ["## Protocol", "",
           f"- {p['images']} photos from {', '.join(f'`{d}`' for d in p['data'])}; each centre-cropped to a "
           f"square and resized (bicubic) to {p['eval_size']} x {p['eval_size']} px.",
           f"- Masks: `{p['mask']}`, seed {p['seed']} (mask i depends only on the seed and i; the same for every "
           f"method); holes cover {100 * p['hole_fraction']:.1f}% of the pixels.",
           "- Each method sees the photo with the hole painted gray and returns a full image; the score is on "
           "the composite (its output inside the hole, the original outside).",
           f"- Pixel scale [0, 1]. L1 = mean |error|, L2 = mean squared error, PSNR = 10 log10(1 / L2), capped "
           f"at {PSNR_CAP_DB:.0f} dB; SSIM: Gaussian window sigma 1.5, per channel. `hole` = over the hole pixels "
           "(SSIM: the SSIM map averaged over the hole pixels), `image` = over the whole image. Sharpness (hole) = "
           "mean luma gradient magnitude of the composite in the hole / that of the original (1 = as sharp, "
           "< 1 blurrier, > 1 noisier; closer to 1 is better). Checkerboard (hole) = the share of the fill's "
           "high-pass luma that repeats with the pixel grid at periods 2 and 4 (0-1; the original photo's detail "
           "scores about 0.16 on a 32 px hole, Telea's fill about 0.08; lower is better).",
           "- Mean ± sample standard deviation over the photos; the best mean of each column is bold "
           "(sharpness: the mean closest to 1).", "",
           "## Results", "", metrics_table(summary), "", "Methods:", "", *_method_lines(result), ""]
    if result.skipped:
        md += [f"Skipped {len(result.skipped)} unreadable file(s):", "",
               *(f"- {s}" for s in result.skipped), ""]
    else:
        md += ["No file was skipped.", ""]
    if result.grid_rows:
        md += ["## Side by side", "", "![comparison grid](grid.png)", "",
               f"Rows: the first {len(result.grid_rows)} photos. Columns: {', '.join(labels)}.", ""]
    if curves_note:
        md += [curves_note]
    md += ["Per-image values: [per_image.csv](per_image.csv); machine-readable summary: "
           "[metrics.json](metrics.json).", ""]
    atomic_write_text(paths["report.md"], "\n".join(md))
    return paths
