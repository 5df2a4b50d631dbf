"""The ``reproduce`` command: the paper end to end at a chosen scale (wiring only; see :mod:`inpaintssl.reproduce`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..reproduce.scales import SCALES
from .base import SuggestChoice, cli, device_option, progress_option


def _scales_help() -> str:
    return "; ".join(f"{s.name}: {s.image_size} px, {s.steps} steps, {s.budget}" for s in SCALES.values())


@cli.command()
@click.option("--scale", type=SuggestChoice(list(SCALES)), default=None, help=_scales_help())
@click.option("--data", multiple=True, type=click.Path(path_type=Path),
              help="pretraining photos (folder, recursive; repeatable) or one prepared cache")
@click.option("--eval-data", multiple=True, type=click.Path(path_type=Path),
              help="unseen photos for the evaluation and the figures (repeatable)")
@click.option("--voc", type=click.Path(path_type=Path), default=None,
              help="VOCdevkit/VOC20xx folder (trainval/test, or train/val) for the transfer")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="reproduction folder")
@click.option("--seed", type=int, default=None, help="seed of training, evaluation masks and transfer [default: 0]")
@click.option("--limit", type=int, default=None, help="evaluation photos (default: the scale's)")
@device_option(default=None, help="auto (CUDA when available), cpu, cuda or cuda:N [default: auto]")
@click.option("--resume", is_flag=True, help="continue the reproduction in --out with its recorded settings")
@click.option("--overwrite", is_flag=True, help="delete what an earlier reproduction wrote in --out and start again")
@progress_option()
def reproduce(scale, data, eval_data, voc, out, seed, limit, device, resume, overwrite, no_progress):
    """Reproduce the paper end to end into OUT/report.html and OUT/report.md.

    Stages: pretraining (M1, M2, M3, m1-plus), evaluation beside Telea / NS / mean fill, Figures 3, 5, 6,
    transfer to VOC (Table 3, Figure 7), linear probes (when available), the report. A finished stage is
    kept: rerun the same command (or --resume) to continue an interrupted reproduction.
    """
    from ..reproduce.pipeline import Settings, run_reproduce, saved_settings

    if resume and overwrite:
        raise click.UsageError("give --resume or --overwrite, not both")
    path = (lambda p: str(Path(p).resolve())) if resume else str     # resumed: relative to the recorded cwd
    given = {"scale": scale, "data": [path(p) for p in data], "eval_data": [path(p) for p in eval_data],
             "voc": None if voc is None else path(voc), "seed": seed, "limit": limit, "device": device}
    if resume:
        base = vars(saved_settings(out))
        given = {k: v if v not in (None, []) else base[k] for k, v in given.items()}
        given["cwd"] = base["cwd"]
    for key, flag in (("scale", "--scale"), ("data", "--data"), ("eval_data", "--eval-data"), ("voc", "--voc")):
        if given[key] in (None, []):
            raise click.UsageError(f"missing option {flag} (or --resume, to take it from the reproduction in --out)")
    given["seed"] = 0 if given["seed"] is None else given["seed"]
    given["device"] = given["device"] or "auto"
    log = lambda msg: click.echo(msg, err=True)  # noqa: E731
    try:
        run_reproduce(Settings(**given), out, resume=resume, overwrite=overwrite, progress=not no_progress, log=log)
    except KeyboardInterrupt:
        click.echo("interrupted; the finished stages are kept: run the same command (or --resume) to continue",
                   err=True)
        sys.exit(130)
    click.echo(f"report: {out / 'report.html'} (and report.md)")
