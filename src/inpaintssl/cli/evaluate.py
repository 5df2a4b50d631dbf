"""Commands of the evaluation: ``evaluate``, ``ablation``, ``plot-losses``."""

from __future__ import annotations

from pathlib import Path

import sys

import click

from ..presets import PRESETS
from ..errors import InpaintsslError
from .base import SuggestChoice, check_overrides, cli, device_option, progress_option


def _log(msg: str) -> None:
    """A line on stderr that does not tear the progress bar apart."""
    from tqdm import tqdm
    with tqdm.external_write_mode(file=sys.stderr):
        click.echo(msg, err=True)


@cli.command()
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(path_type=Path),
              help="checkpoint file or run folder (named by its run folder); repeat the flag, or list more "
                   "paths after it: --checkpoint A B")
@click.argument("more_checkpoints", nargs=-1, type=click.Path(path_type=Path))
@click.option("--data", multiple=True, required=True, type=click.Path(path_type=Path),
              help="folder of evaluation photos (recursive) or one file; repeatable")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="report folder")
@click.option("--baselines", default="telea,ns,mean", show_default=True,
              help="comma-separated classical baselines (telea, ns, mean) or 'none'")
@click.option("--mask", type=SuggestChoice(["center", "rect", "freeform", "mixed"]), default="center",
              show_default=True, help="hole shape of the fixed evaluation masks (mixed: one of the three per photo)")
@click.option("--limit", type=int, default=None, help="evaluate only the first N readable photos (sorted by path)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the evaluation masks")
@click.option("--size", type=int, default=None, help="eval size in px (default: the first checkpoint's, else 128)")
@click.option("--grid-rows", type=int, default=8, show_default=True, help="photos shown in grid.png")
@click.option("--resolution", type=click.Choice(["square", "native"]), default="square", show_default=True,
              help="square: the paper's protocol (centre square resized to --size); native: photos at their "
                   "own size, holes at the photo's scale, filled through the inpaint command's path")
@click.option("--holes", default="center,strokes", show_default=True,
              help="native: comma-separated hole kinds (center, rect, strokes)")
@click.option("--max-side", type=int, default=640, show_default=True,
              help="native: photos with a longer side above this are shrunk to it")
@click.option("--fill-path", "fill_paths", default="default", show_default=True,
              help="native: comma-separated inference paths for every checkpoint (rows name@path); "
                   "v1, coverage, prefill, low-composite, regions, blend-4, thickness-32, "
                   "thickness-96, native-scale, default")
@device_option(help="auto, cpu, cuda or cuda:N (for checkpoints)")
@click.option("--overwrite", is_flag=True, help="replace an existing report in --out")
@progress_option("no progress bars")
def evaluate(checkpoints, more_checkpoints, data, out, baselines, mask, limit, seed, size, grid_rows, resolution,
             holes, max_side, fill_paths, device, overwrite, no_progress):
    """Score checkpoints and classical baselines on the same seeded masks; write a report.

    Checkpoints come from --checkpoint (repeatable) and from extra paths (--checkpoint A B).
    Writes OUT/report.md, metrics.json, per_image.csv, grid.png (and loss_curves.png for run folders);
    with --resolution native, grid_<holes>.png of crops at the photos' own resolution instead.
    """
    from ..evaluation.evaluate import run_evaluation
    from ..evaluation.report import check_report_dir, write_report

    if resolution == "native":
        from ..evaluation.native import run_native, write_native_report
        if size is not None:
            raise InpaintsslError("--size is the square protocol's; --resolution native keeps each photo's size "
                                  "(use --max-side to cap it)")
        result = run_native([*checkpoints, *more_checkpoints], list(data), baselines,
                            kinds=[k.strip() for k in holes.split(",") if k.strip()],
                            fill_paths=[p.strip() for p in fill_paths.split(",") if p.strip()], limit=limit,
                            seed=seed, max_side=max_side, device=device, grid_rows=grid_rows, log=_log,
                            progress=not no_progress)
        command = "inpaintssl evaluate " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else ""
        paths = write_native_report(result, out, command=command, overwrite=overwrite)
        click.echo(f"{len(result.images)} photos x {len(result.info)} methods; report: {paths['report.md']}")
        return

    if size is not None and size < 16:
        raise InpaintsslError(f"--size {size}: must be at least 16 px")
    if grid_rows < 0:
        raise InpaintsslError("--grid-rows must be >= 0")
    check_report_dir(out, overwrite)
    result = run_evaluation([*checkpoints, *more_checkpoints], list(data), baselines, mask=mask, limit=limit,
                            seed=seed, size=size, device=device, grid_rows=grid_rows, log=_log,
                            progress=not no_progress)
    paths = write_report(result, out, title="Inpainting evaluation", overwrite=overwrite)
    if result.skipped:
        click.echo(f"skipped {len(result.skipped)} unreadable file(s) (listed in the report)", err=True)
    click.echo(f"{len(result.images)} photos x {len(result.scores)} methods; report: {paths['report.md']}")


@cli.command()
@click.option("--data", multiple=True, required=True, type=click.Path(path_type=Path),
              help="training photos (folder, recursive, or file); repeatable")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="ablation folder: runs/m1, runs/m2, runs/m3 and the report")
@click.option("--eval-data", multiple=True, type=click.Path(path_type=Path),
              help="held-out evaluation photos (default: the training photos); repeatable")
@click.option("--size", type=click.Choice(["32", "64", "128"]), default="32", show_default=True,
              help="scale: 32 = smoke-sized M1/M2/M3, 64 = m*-64 presets, 128 = the paper's m1/m2/m3")
@click.option("--also", multiple=True, type=SuggestChoice(list(PRESETS)),
              help="also train this preset of the same size alike (e.g. m1-plus-64); repeatable")
@click.option("--steps", type=int, default=300, show_default=True, help="training steps of each model")
@click.option("--seed", type=int, default=0, show_default=True, help="training seed and evaluation mask seed")
@click.option("--batch", type=int, default=None, help="batch size (default: the preset's)")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="config override applied to all models, e.g. --set optim.lr_g=1e-3")
@click.option("--baselines", default="telea,ns,mean", show_default=True,
              help="classical baselines also evaluated (comma-separated) or 'none'")
@click.option("--limit", type=int, default=40, show_default=True, help="evaluation photos")
@click.option("--grid-rows", type=int, default=8, show_default=True, help="photos shown in grid.png")
@click.option("--resume", is_flag=True, help="continue (or keep, if finished) existing runs in OUT/runs")
@click.option("--overwrite", is_flag=True, help="retrain existing runs and replace the report")
@device_option(None, help="auto, cpu, cuda or cuda:N for training and scoring (default: train.device, auto)")
@progress_option("no progress bars (log lines instead)")
def ablation(data, out, eval_data, size, also, steps, seed, batch, overrides, baselines, limit, grid_rows, resume,
             overwrite, device, no_progress):
    """Train M1, M2 and M3 (and --also presets) alike (paper 5.4), evaluate them side by side (6.1)."""
    from ..evaluation.ablation import run_ablation

    if resume and overwrite:
        raise click.UsageError("give --resume or --overwrite, not both")
    check_overrides(overrides)
    done = run_ablation(list(data), out, list(eval_data) or None, size=int(size), steps=steps, seed=seed,
                        batch=batch, overrides=overrides, also=also, baselines=baselines, limit=limit, grid_rows=grid_rows,
                        resume=resume, overwrite=overwrite, device=device, progress=not no_progress,
                        log=lambda msg: click.echo(msg, err=True))
    click.echo(f"report: {done['report']}")


@cli.command("plot-losses")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(),       # a str: Path() would drop a trailing "/"
              help="PNG file to write, or a folder (existing, or ending in /) to write loss_curves.png into")
@click.option("--overwrite", is_flag=True, help="replace an existing PNG")
def plot_losses(runs, out, overwrite):
    """Draw the training loss curves of one or more RUN folders (their metrics.jsonl) into a PNG."""
    from ..evaluation.evaluate import checkpoint_name, unique_name
    from ..evaluation.plots import plot_loss_curves

    folder = out.endswith(("/", "\\")) or Path(out).is_dir()
    png = Path(out) / "loss_curves.png" if folder else Path(out)
    if png.suffix.lower() != ".png":
        raise click.BadParameter(f"{out}: give a .png file, or a folder (existing, or ending in /)",
                                 param_hint="--out")
    if png.is_dir():
        raise InpaintsslError(f"{png}: is a folder; choose another --out")
    if any(d.exists() and not d.is_dir() for d in png.parents):
        raise InpaintsslError(f"{png}: a folder on its path is a file; choose another --out")
    if png.exists() and not overwrite:
        raise InpaintsslError(f"{png}: already exists; pass --overwrite to replace it or choose another --out")
    used: set[str] = set()
    named = {unique_name(checkpoint_name(run), used): run for run in runs}
    click.echo(str(plot_loss_curves(named, png)))
