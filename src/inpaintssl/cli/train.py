"""Commands of the pretext task: ``presets``, ``train``, ``prepare``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..config import MASK_KINDS, Config, apply_overrides, config_to_dict, load_config

from ..presets import PRESETS, get_preset
from ..errors import InpaintsslError
from .base import SuggestChoice, check_overrides, cli, device_option, preset_option, progress_option

PRESET_COLUMNS = ("preset", "px", "skips", "discrim.", "predicts", "hole", "L2 norm w1/w2", "lr", "crops",
                  "steps", "batch")


def preset_row(key: str, cfg: Config) -> tuple[str, ...]:
    """One line of ``inpaintssl presets``: what tells the presets apart."""
    m, d = cfg.model, cfg.data
    discs = "+".join(n for n, on in (("global", m.global_d), ("local", m.local_d)) if on) or "none"
    return (key, str(m.image_size), "yes" if m.skips else "no", discs, m.predict, cfg.mask.kind,
            f"{cfg.loss.mse_norm} {cfg.loss.w1:g}/{cfg.loss.w2:g}", cfg.optim.schedule,
            f"{100 * d.crop_min:g}-{100 * d.crop_max:g}%", str(cfg.train.steps), str(cfg.train.batch_size))


@cli.command()
@click.argument("name", required=False, metavar="[NAME]", type=SuggestChoice(list(PRESETS)))
def presets(name):
    """List the presets (size, switches, hole, loss, schedule, crops, default steps), or print one preset's
    resolved config as JSON."""
    if name is None:
        rows = [PRESET_COLUMNS, *(preset_row(k, get_preset(k)) for k in PRESETS)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(PRESET_COLUMNS))]
        for r in rows:
            click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        return
    click.echo(json.dumps(config_to_dict(get_preset(name)), indent=2))


@cli.command()
@preset_option(None, help="default m1; on --resume, the run's ('inpaintssl presets' lists them)")
@click.option("--data", "data", multiple=True, type=click.Path(path_type=Path),
              help="image folder (recursive) or file; repeatable; or one cache made by 'inpaintssl prepare'. "
                   "Default: sample photos shipped with scikit-image")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="run folder")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="total optimisation steps of the run (on --resume too: the total, not steps to add)")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None,
              help="alternative to --steps: passes over the data")
@click.option("--mask", type=SuggestChoice(list(MASK_KINDS)), default=None,
              help="hole shape during training (default: the preset's, center; mixed = the shapes people paint; none = no hole, the autoencoder control of transfer)")
@device_option(None, help="auto, cpu, cuda or cuda:N (default: the preset's train.device, auto)")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="override a config value, e.g. --set train.seed=7 --set loss.w3=1e-4")
@click.option("--resume", is_flag=True, help="continue the run in --out from checkpoints/latest.pt")
@click.option("--overwrite", is_flag=True, help="replace an existing run in --out")
@click.option("--dry-run", is_flag=True, help="print the resolved config and exit")
@progress_option("no progress bar: a log line every train.log_every steps instead (for nohup, CI)")
def train(preset, data, out, steps, epochs, mask, device, overrides, resume, overwrite, dry_run, no_progress):
    """Train the inpainting GAN (M1, M2, M3 or smoke) on a folder of photos."""
    from ..data.folder import embedded_photos, steps_for_epochs
    from ..data.sources import gather_files
    from ..gan.train import train as run_training

    if steps is not None and epochs is not None:
        raise click.UsageError("give --steps or --epochs, not both")
    if resume and overwrite:
        raise click.UsageError("give --resume or --overwrite, not both")
    check_overrides(overrides)
    if resume and (out / "config.json").is_file():
        cfg = load_config(out / "config.json")
        if preset is not None and preset != cfg.preset:
            raise InpaintsslError(f"{out} is a {cfg.preset!r} run; --preset {preset} cannot resume it "
                                  "(drop --preset, or start a new run with another --out)")
    else:
        cfg = get_preset(preset or "m1")
    if mask is not None:
        cfg.mask.kind = mask
    if device is not None:
        cfg.train.device = device
    apply_overrides(cfg, overrides)
    sources = list(data)
    if steps is not None:
        cfg.train.steps = steps
    elif epochs is not None:
        from ..data.sources import is_cache_dir, read_index
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
    code = 130 if summary["interrupted"] else 0
    if summary.get("world", 1) > 1:                                 # a torchrun worker: no interpreter shutdown
        from ..gan.distributed import exit_worker
        exit_worker(code)
    if code:
        sys.exit(code)


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
