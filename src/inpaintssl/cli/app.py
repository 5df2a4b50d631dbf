"""Commands that users run on their photos: ``inpaint``, ``serve``, ``demo``."""

from __future__ import annotations

import glob
from pathlib import Path

import click

from ..config import PRESETS
from ..errors import InpaintsslError
from .base import cli


def _collect_inputs(inputs: tuple[Path, ...]) -> list[tuple[Path, Path]]:
    """(file, path relative to its input root) for every image given directly or inside a folder."""
    from ..data.images import list_images
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
    from ..data.images import load_mask, load_rgb, save_png
    from ..gan.inpainter import Inpainter, center_hole

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

    def mask_for(src: Path, rel: Path, shape):
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


def _server_options(f):
    """Options shared by ``serve`` and ``demo``."""
    f = click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda")(f)
    f = click.option("--max-queue", type=int, default=8, show_default=True,
                     help="requests that may wait for the model; more get HTTP 503")(f)
    f = click.option("--max-upload-mb", type=float, default=20.0, show_default=True,
                     help="largest accepted request (photo + mask), in MB")(f)
    f = click.option("--port", type=int, default=7860, show_default=True, help="TCP port (0 = any free port)")(f)
    f = click.option("--host", default="127.0.0.1", show_default=True,
                     help="address to listen on; 0.0.0.0 exposes the demo to your network")(f)
    return f


@cli.command("serve")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="checkpoint file or run folder")
@_server_options
def serve_cmd(checkpoint, host, port, max_upload_mb, max_queue, device):
    """Browser demo + HTTP API (POST /api/inpaint) for a trained model. Needs the [demo] extra."""
    from ..gan.inpainter import Inpainter
    from ..app.serve import _require_demo_stack, run_server

    _require_demo_stack()
    run_server(Inpainter.from_checkpoint(checkpoint, device=device), host, port, max_upload_mb, max_queue,
               echo=click.echo)


@cli.command("demo")
@click.option("--checkpoint", default=None, type=click.Path(path_type=Path),
              help="serve this checkpoint or run folder instead of the cached demo model")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="smoke", show_default=True,
              help="preset of the demo model trained when none is cached")
@click.option("--steps", type=int, default=300, show_default=True, help="training steps of the demo model")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="where the demo model lives (default: $XDG_CACHE_HOME/inpaintssl or ~/.cache/inpaintssl)")
@click.option("--retrain", is_flag=True, help="train the demo model anew even if one is cached")
@click.option("--no-progress", is_flag=True, help="no progress bar while training")
@_server_options
def demo_cmd(checkpoint, preset, steps, cache_dir, retrain, no_progress, host, port, max_upload_mb, max_queue,
             device):
    """The one command to try it: train a small model on the bundled photos once (or reuse it), then serve."""
    from ..app.demo import default_cache_dir, ensure_demo_run
    from ..gan.inpainter import Inpainter
    from ..app.serve import _require_demo_stack, run_server

    _require_demo_stack()
    if checkpoint is None:
        if steps < 1:
            raise InpaintsslError(f"--steps {steps}: must be >= 1")
        checkpoint = ensure_demo_run((cache_dir or default_cache_dir()) / "demo-run", preset, steps, retrain,
                                     progress=not no_progress, log=lambda msg: click.echo(msg, err=True))
    run_server(Inpainter.from_checkpoint(checkpoint, device=device), host, port, max_upload_mb, max_queue,
               echo=click.echo)
