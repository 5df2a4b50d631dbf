"""Commands that users run on their photos: ``inpaint``, ``serve``, ``demo``."""

from __future__ import annotations

from pathlib import Path

import click

from ..app.inpaint import METHODS, OUTPUT_FORMATS
from ..app.serve import DEFAULT_MAX_QUEUE
from ..errors import InpaintsslError
from .base import SuggestChoice, cli, device_option, echo_err, preset_option, progress_option


@cli.command()
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="checkpoint file or run folder, or 'bundled' (the model shipped with the package: the "
                   "default for --method model)")
@click.option("--method", type=SuggestChoice(list(METHODS)), default="model", show_default=True,
              help="model = the trained generator; telea / ns = OpenCV's classical inpainting (no checkpoint)")
@click.option("--mask", "mask_path", type=click.Path(path_type=Path), default=None,
              help="mask image of the input's size (white = hole; with transparency: the opaque pixels), or a "
                   "folder of masks named like the inputs")
@click.option("--center", is_flag=True, help="fill the central square whose side is half the shorter side")
@click.option("--dilate", type=click.IntRange(min=0), default=0, show_default=True,
              help="grow the hole by N px (painted edges are feathered)")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="output folder (created if missing)")
@click.option("--format", "fmt", type=SuggestChoice(list(OUTPUT_FORMATS)), default=None,
              help="output format (default: the input's for JPEG inputs, lossless PNG otherwise; webp is lossless)")
@click.option("--overwrite", is_flag=True, help="replace existing files in --out")
@click.option("--skip-existing", is_flag=True, help="keep existing files in --out and skip their inputs "
                                                    "(continue a folder run)")
@device_option()
@progress_option("no progress bar for folder runs")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
def inpaint(checkpoint, method, mask_path, center, dilate, out, fmt, overwrite, skip_existing, device, no_progress,
            inputs):
    """Fill the hole of each INPUT photo (files or folders, any size); writes OUT/<name> (see --format)."""
    from ..app.inpaint import MaskSource, baseline_fill, collect_inputs, inpaint_files, plan_jobs

    if center == (mask_path is not None):
        raise click.UsageError("give exactly one of --mask MASK and --center")
    if overwrite and skip_existing:
        raise click.UsageError("give --overwrite or --skip-existing, not both")
    if method == "model" and checkpoint is None:
        checkpoint = Path("bundled")
    if method != "model" and checkpoint is not None:
        raise click.UsageError(f"--method {method} uses no checkpoint; drop --checkpoint (or use --method model)")
    masks = MaskSource(center=center, path=mask_path, dilate=dilate)
    jobs, kept = plan_jobs(collect_inputs(inputs), out, fmt, overwrite=overwrite, skip_existing=skip_existing)
    if kept:
        echo_err(f"keeping {len(kept)} existing output(s) in {out} (--skip-existing)")
    if not jobs:
        echo_err(f"nothing to do: all {len(kept)} outputs exist in {out}")
        return
    if method == "model":
        from ..gan.inpainter import Inpainter
        fill = Inpainter.from_checkpoint(checkpoint, device=device)
        warning = fill.hole_shape_warning("center" if center else "painted")
        if warning:
            echo_err(warning)
    else:
        fill = baseline_fill(method)
    done = inpaint_files(jobs, fill, masks, progress=not no_progress, echo=click.echo, log=echo_err)
    if done["failed"]:
        raise InpaintsslError(f"{len(done['failed'])} of {len(jobs)} inputs failed (see the lines above); "
                              f"{len(done['written'])} written to {out}")


def _server_options(f):
    """Options shared by ``serve`` and ``demo``."""
    f = device_option()(f)
    f = click.option("--max-queue", type=click.IntRange(min=0), default=DEFAULT_MAX_QUEUE, show_default=True,
                     help="requests that may wait for the model (each holds at most --max-upload-mb of "
                          "memory); more get HTTP 503")(f)
    f = click.option("--max-upload-mb", type=float, default=20.0, show_default=True,
                     help="largest accepted request (photo + mask), in MB")(f)
    f = click.option("--port", type=int, default=7860, show_default=True, help="TCP port (0 = any free port)")(f)
    f = click.option("--host", default="127.0.0.1", show_default=True,
                     help="address to listen on; 0.0.0.0 exposes the demo to your network")(f)
    return f


@cli.command("serve")
@click.option("--checkpoint", default="bundled", show_default=True, type=click.Path(path_type=Path),
              help="checkpoint file or run folder, or 'bundled' (the model shipped with the package)")
@_server_options
def serve_cmd(checkpoint, host, port, max_upload_mb, max_queue, device):
    """Browser demo + HTTP API (POST /api/inpaint) for a trained model. Needs the [demo] extra."""
    from ..app.serve import require_demo_stack

    require_demo_stack()
    _serve(checkpoint, device, host, port, max_upload_mb, max_queue)


def _serve(checkpoint, device, host, port, max_upload_mb, max_queue) -> None:
    """Load the model (one warning line if it only knows centre holes: people paint anything), then serve."""
    from ..app.serve import run_server
    from ..gan.inpainter import Inpainter

    model = Inpainter.from_checkpoint(checkpoint, device=device)
    warning = model.hole_shape_warning("painted")
    if warning:
        echo_err(warning)
    run_server(model, host, port, max_upload_mb, max_queue, echo=click.echo)


@cli.command("demo")
@click.option("--checkpoint", default=None, type=click.Path(path_type=Path),
              help="serve this checkpoint or run folder instead of the bundled model")
@preset_option("smoke", help="preset of the demo model trained when none is cached")
@click.option("--steps", type=click.IntRange(min=1), default=300, show_default=True,
              help="training steps of the demo model")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="where the demo model lives (default: $XDG_CACHE_HOME/inpaintssl or ~/.cache/inpaintssl)")
@click.option("--retrain", is_flag=True, help="serve a small model trained here on scikit-image's photos "
                                              "(--preset, --steps; trained anew) instead of the bundled one")
@progress_option("no progress bar while training")
@_server_options
def demo_cmd(checkpoint, preset, steps, cache_dir, retrain, no_progress, host, port, max_upload_mb, max_queue,
             device):
    """The one command to try it: serve the bundled model in the browser (or --checkpoint, or --retrain)."""
    from ..app.demo import default_cache_dir, ensure_demo_run
    from ..app.serve import require_demo_stack

    require_demo_stack()
    if checkpoint is None and not retrain:
        checkpoint = Path("bundled")
    elif checkpoint is None:
        checkpoint = ensure_demo_run((cache_dir or default_cache_dir()) / "demo-run", preset, steps, retrain,
                                     progress=not no_progress, log=echo_err)
    _serve(checkpoint, device, host, port, max_upload_mb, max_queue)
