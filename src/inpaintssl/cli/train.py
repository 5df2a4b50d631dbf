"""Commands of the pretext task: ``presets``, ``train``, ``prepare``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..config import PRESETS, apply_overrides, config_to_dict, get_preset, load_config
from ..errors import InpaintsslError
from .base import cli


@cli.command()
@click.argument("name", required=False)
def presets(name):
    """List the presets, or print one preset's resolved config as JSON."""
    if name is None:
        for key in PRESETS:
            m = get_preset(key).model
            click.echo(f"{key:11s} {m.image_size:4d} px  skips={m.skips!s:5s} global_d={m.global_d!s:5s} "
                       f"local_d={m.local_d!s:5s} predict={m.predict}")
        return
    click.echo(json.dumps(config_to_dict(get_preset(name)), indent=2))


@cli.command()
@click.option("--preset", default=None, help=f"one of: {', '.join(PRESETS)} (default m1; on --resume, the run's)")
@click.option("--data", "data", multiple=True, type=click.Path(path_type=Path),
              help="image folder (recursive) or file; repeatable; or one cache made by 'inpaintssl prepare'. "
                   "Default: sample photos shipped with scikit-image")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="run folder")
@click.option("--steps", type=int, default=None, help="total optimisation steps of the run")
@click.option("--epochs", type=float, default=None, help="alternative to --steps: passes over the data")
@click.option("--mask", type=click.Choice(["center", "rect", "freeform", "mixed"]), default=None,
              help="hole shape during training (default: the preset's, center)")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="override a config value, e.g. --set train.seed=7 --set loss.w3=1e-4")
@click.option("--resume", is_flag=True, help="continue the run in --out from checkpoints/latest.pt")
@click.option("--overwrite", is_flag=True, help="replace an existing run in --out")
@click.option("--dry-run", is_flag=True, help="print the resolved config and exit")
@click.option("--no-progress", is_flag=True, help="no progress bar")
def train(preset, data, out, steps, epochs, mask, overrides, resume, overwrite, dry_run, no_progress):
    """Train the inpainting GAN (M1, M2, M3 or smoke) on a folder of photos."""
    from ..data.folder import embedded_photos, gather_files, steps_for_epochs
    from ..gan.train import train as run_training

    if steps is not None and epochs is not None:
        raise InpaintsslError("give --steps or --epochs, not both")
    if resume and overwrite:
        raise InpaintsslError("give --resume or --overwrite, not both")
    if resume and (out / "config.json").is_file():
        cfg = load_config(out / "config.json")
        if preset is not None and preset != cfg.preset:
            raise InpaintsslError(f"{out} is a {cfg.preset!r} run; --preset {preset} cannot resume it "
                                  "(drop --preset, or start a new run with another --out)")
    else:
        cfg = get_preset(preset or "m1")
    if mask is not None:
        cfg.mask.kind = mask
    apply_overrides(cfg, overrides)
    sources = list(data)
    if steps is not None:
        cfg.train.steps = steps
    elif epochs is not None:
        from ..data.cache import is_cache_dir, read_index
        if len(sources) == 1 and is_cache_dir(sources[0]):        # a prepared cache: its image count
            n = int(read_index(sources[0])["count"])
        else:
            n = len(gather_files(sources)) if sources else len(embedded_photos())
        cfg.train.steps = steps_for_epochs(epochs, n, cfg.train.batch_size)
    cfg.validate()
    if dry_run:
        click.echo(json.dumps(config_to_dict(cfg), indent=2))
        return
    summary = run_training(cfg, out, sources or None, resume=resume, overwrite=overwrite,
                           progress=not no_progress, log=lambda msg: click.echo(msg, err=True))
    if summary.get("rank", 0) == 0:                                # under torchrun: one line, not one per rank
        click.echo(f"step {summary['step']} of {cfg.train.steps}; checkpoint: {out / 'checkpoints' / 'latest.pt'}")
    if summary["interrupted"]:
        sys.exit(130)


@cli.command()
@click.option("--data", "data", multiple=True, required=True, type=click.Path(path_type=Path),
              help="image folder (recursive) or file; repeatable")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="cache folder to write")
@click.option("--size", type=int, default=128, show_default=True, help="training image size the cache is for")
@click.option("--margin", type=float, default=1.125, show_default=True,
              help="stored side = size * margin: head-room for random crops (1 = exactly the training size)")
@click.option("--workers", type=int, default=None, help="decoding processes (default: one per CPU core)")
@click.option("--overwrite", is_flag=True, help="replace an existing cache in --out")
@click.option("--no-progress", is_flag=True, help="no progress bar")
def prepare(data, out, size, margin, workers, overwrite, no_progress):
    """Decode every photo once into a memory-mapped uint8 cache; then train with --data OUT."""
    from ..data.prepare import prepare_cache

    if workers is not None and workers < 0:
        raise InpaintsslError(f"--workers {workers}: must be >= 0 (0 decodes in this process)")
    s = prepare_cache(list(data), out, size=size, margin=margin, workers=workers, overwrite=overwrite,
                      progress=not no_progress, log=lambda msg: click.echo(msg, err=True))
    click.echo(f"cached {s['count']} of {s['files']} images ({s['skipped']} skipped) as {s['side']}x{s['side']} "
               f"in {s['seconds']:.1f} s ({s['images_per_s']:.0f} images/s, {s['workers']} workers), "
               f"{s['bytes'] / 1e6:.1f} MB: {s['index']}")
