"""Command-line interface: wiring only; the work happens in the engine modules.

    inpaintssl train --preset m1 --data train2014/ --out runs/m1 --steps 20000
    inpaintssl inpaint --checkpoint runs/m1 --center photo.jpg --out filled/
    inpaintssl presets m1            # print a preset's resolved config

A problem the user can fix (an :class:`InpaintsslError`) becomes one ``Error: ...`` line on stderr and
exit status 1; usage mistakes exit 2 (click's convention); an interrupted training run exits 130.
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

import click

from .config import PRESETS, apply_overrides, config_to_dict, get_preset, load_config
from .errors import InpaintsslError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InpaintsslError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:
            raise click.Abort() from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="inpaintssl")
def cli():
    """Self-supervised learning by image inpainting (context-encoder GAN, its ablations, transfer)."""


@cli.command()
@click.argument("name", required=False)
def presets(name):
    """List the presets, or print one preset's resolved config as JSON."""
    if name is None:
        for key in PRESETS:
            m = get_preset(key).model
            click.echo(f"{key:8s} {m.image_size:4d} px  skips={m.skips!s:5s} global_d={m.global_d!s:5s} "
                       f"local_d={m.local_d!s:5s} predict={m.predict}")
        return
    click.echo(json.dumps(config_to_dict(get_preset(name)), indent=2))


@cli.command()
@click.option("--preset", default=None, help=f"one of: {', '.join(PRESETS)} (default m1; on --resume, the run's)")
@click.option("--data", "data", multiple=True, type=click.Path(path_type=Path),
              help="image folder (recursive) or file; repeatable. Default: sample photos shipped with scikit-image")
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
    from .data import embedded_photos, gather_files, steps_for_epochs
    from .train import train as run_training

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
        n = len(gather_files(sources)) if sources else len(embedded_photos())
        cfg.train.steps = steps_for_epochs(epochs, n, cfg.train.batch_size)
    cfg.validate()
    if dry_run:
        click.echo(json.dumps(config_to_dict(cfg), indent=2))
        return
    summary = run_training(cfg, out, sources or None, resume=resume, overwrite=overwrite,
                           progress=not no_progress, log=lambda msg: click.echo(msg, err=True))
    click.echo(f"step {summary['step']} of {cfg.train.steps}; checkpoint: {out / 'checkpoints' / 'latest.pt'}")
    if summary["interrupted"]:
        sys.exit(130)


def _collect_inputs(inputs: tuple[Path, ...]) -> list[tuple[Path, Path]]:
    """(file, path relative to its input root) for every image given directly or inside a folder."""
    from .images import list_images
    found = []
    for item in inputs:
        if item.is_dir():
            files = list_images(item)
            if not files:
                raise InpaintsslError(f"{item}: folder has no image files (.jpg .png .webp ...)")
            found += [(f, f.relative_to(item)) for f in files]
        elif item.exists():
            found.append((item, Path(item.name)))
        else:
            raise InpaintsslError(f"{item}: no such file or folder")
    return found


@cli.command()
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="checkpoint file or run folder")
@click.option("--mask", "mask_path", type=click.Path(path_type=Path), default=None,
              help="mask image (white = hole, same size as the input) or a folder of masks named like the inputs")
@click.option("--center", is_flag=True, help="fill the central square whose side is half the shorter side")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="output folder for the PNGs")
@click.option("--overwrite", is_flag=True, help="replace existing files in --out")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
def inpaint(checkpoint, mask_path, center, out, overwrite, device, inputs):
    """Fill the hole of each INPUT photo (files or folders, any size); writes OUT/<name>.png."""
    from .images import load_mask, load_rgb, save_png
    from .inpaint import Inpainter, center_hole

    if center == (mask_path is not None):
        raise InpaintsslError("give exactly one of --mask MASK and --center")
    if mask_path is not None and not mask_path.exists():
        raise InpaintsslError(f"{mask_path}: no such mask file or folder")
    pairs = _collect_inputs(inputs)
    sources = {p.resolve() for p, _ in pairs}
    jobs = []
    for src, rel in pairs:
        dst = out / rel.with_suffix(".png")
        if dst.resolve() in sources:
            raise InpaintsslError(f"{dst}: would overwrite an input photo; choose another --out")
        if dst.exists() and not overwrite:
            raise InpaintsslError(f"{dst}: already exists; pass --overwrite to replace it or choose another --out")
        jobs.append((src, rel, dst))
    model = Inpainter.from_checkpoint(checkpoint, device=device)

    def mask_for(src: Path, rel: Path, shape) -> "np.ndarray":  # noqa: F821
        if center:
            return center_hole(*shape)
        if mask_path.is_dir():
            cands = [c for c in mask_path.glob(f"{glob.escape(rel.with_suffix('').as_posix())}.*") if c.is_file()]
            if not cands:
                raise InpaintsslError(f"{src}: no mask named {rel.with_suffix('').as_posix()}.* in {mask_path}")
            return load_mask(sorted(cands)[0], shape)
        return load_mask(mask_path, shape)

    failures = 0
    for src, rel, dst in jobs:
        try:
            rgb = load_rgb(src)
            result = model(rgb, mask_for(src, rel, rgb.shape[:2]))
            save_png(result, dst)
            click.echo(str(dst))
        except InpaintsslError as e:
            if len(jobs) == 1:
                raise
            failures += 1
            click.echo(f"skipped: {e}", err=True)
    if failures:
        raise InpaintsslError(f"{failures} of {len(jobs)} inputs failed (see the lines above); "
                              f"{len(jobs) - failures} written to {out}")


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="inpaintssl")


if __name__ == "__main__":
    main()
