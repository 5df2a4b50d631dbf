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
        from .cache import is_cache_dir, read_index
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
    from .prepare import prepare_cache

    if workers is not None and workers < 0:
        raise InpaintsslError(f"--workers {workers}: must be >= 0 (0 decodes in this process)")
    s = prepare_cache(list(data), out, size=size, margin=margin, workers=workers, overwrite=overwrite,
                      progress=not no_progress, log=lambda msg: click.echo(msg, err=True))
    click.echo(f"cached {s['count']} of {s['files']} images ({s['skipped']} skipped) as {s['side']}x{s['side']} "
               f"in {s['seconds']:.1f} s ({s['images_per_s']:.0f} images/s, {s['workers']} workers), "
               f"{s['bytes'] / 1e6:.1f} MB: {s['index']}")


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
@click.option("--mask", type=click.Choice(["center", "rect", "freeform"]), default="center", show_default=True,
              help="hole shape of the fixed evaluation masks")
@click.option("--limit", type=int, default=None, help="evaluate only the first N readable photos (sorted by path)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the evaluation masks")
@click.option("--size", type=int, default=None, help="eval size in px (default: the first checkpoint's, else 128)")
@click.option("--grid-rows", type=int, default=8, show_default=True, help="photos shown in grid.png")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda (for checkpoints)")
@click.option("--overwrite", is_flag=True, help="replace an existing report in --out")
def evaluate(checkpoints, more_checkpoints, data, out, baselines, mask, limit, seed, size, grid_rows, device,
             overwrite):
    """Score checkpoints and classical baselines on the same seeded masks; write a report.

    Checkpoints come from --checkpoint (repeatable) and from extra paths (--checkpoint A B).
    Writes OUT/report.md, metrics.json, per_image.csv, grid.png (and loss_curves.png for run folders).
    """
    from .evaluate import run_evaluation
    from .report import check_report_dir, write_report

    if size is not None and size < 16:
        raise InpaintsslError(f"--size {size}: must be at least 16 px")
    if grid_rows < 0:
        raise InpaintsslError("--grid-rows must be >= 0")
    check_report_dir(out, overwrite)
    log = lambda msg: click.echo(msg, err=True)  # noqa: E731
    result = run_evaluation([*checkpoints, *more_checkpoints], list(data), baselines, mask=mask, limit=limit,
                            seed=seed, size=size, device=device, grid_rows=grid_rows, log=log)
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
@click.option("--also", multiple=True, metavar="PRESET",
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
@click.option("--no-progress", is_flag=True, help="no progress bars")
def ablation(data, out, eval_data, size, also, steps, seed, batch, overrides, baselines, limit, grid_rows, resume,
             overwrite, no_progress):
    """Train M1, M2 and M3 (and --also presets) alike (paper 5.4), evaluate them side by side (6.1)."""
    from .ablation import run_ablation

    done = run_ablation(list(data), out, list(eval_data) or None, size=int(size), steps=steps, seed=seed,
                        batch=batch, overrides=overrides, also=also, baselines=baselines, limit=limit, grid_rows=grid_rows,
                        resume=resume, overwrite=overwrite, progress=not no_progress,
                        log=lambda msg: click.echo(msg, err=True))
    click.echo(f"report: {done['report']}")


@cli.command("plot-losses")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="PNG file to write")
def plot_losses(runs, out):
    """Draw the training loss curves of one or more RUN folders (their metrics.jsonl) into a PNG."""
    from .evaluate import checkpoint_name, unique_name
    from .plots import plot_loss_curves

    used: set[str] = set()
    named = {unique_name(checkpoint_name(run), used): run for run in runs}
    click.echo(str(plot_loss_curves(named, out)))


@cli.group(cls=_Group)
def transfer():
    """Transfer to classification (paper section 6.2): fine-tune or linear-probe the generator's encoder."""


def _transfer_options(f):
    """Options shared by ``transfer train`` and ``transfer compare``."""
    opts = [
        click.option("--data", required=True, type=click.Path(path_type=Path),
                     help="VOCdevkit/VOC20xx folder (ImageSets/Main, JPEGImages), or ROOT/<split>/<class>/ images"),
        click.option("--train-split", default="trainval", show_default=True, help="split to train on"),
        click.option("--test-split", default="test", show_default=True, help="split to evaluate on"),
        click.option("--out", required=True, type=click.Path(path_type=Path), help="output folder"),
        click.option("--epochs", type=int, default=14, show_default=True, help="passes over the training split"),
        click.option("--mode", type=click.Choice(["finetune", "linear"]), default="finetune", show_default=True,
                     help="finetune everything, or train a linear head on the frozen encoder"),
        click.option("--batch", type=int, default=64, show_default=True, help="batch size"),
        click.option("--lr", type=float, default=0.005, show_default=True, help="SGD learning rate (momentum 0.9)"),
        click.option("--weight-decay", type=float, default=5e-4, show_default=True, help="SGD weight decay"),
        click.option("--seed", type=int, default=0, show_default=True, help="seed of the head, data order, crops"),
        click.option("--labels", type=click.Choice(["auto", "files", "xml"]), default="auto", show_default=True,
                     help="VOC labels from <class>_<split>.txt files or Annotations/*.xml (auto: files if present)"),
        click.option("--ap", "ap_method", type=click.Choice(["all", "11point"]), default="all", show_default=True,
                     help="AP interpolation: VOC2010+ all-point or VOC2007 11-point"),
        click.option("--workers", type=int, default=2, show_default=True, help="data loader worker processes"),
        click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda"),
        click.option("--overwrite", is_flag=True, help="replace existing results in --out"),
        click.option("--no-progress", is_flag=True, help="no progress bars"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _transfer_setup(data, train_split, test_split, labels, **kw):
    from .transfer import TransferConfig
    from .voc import load_labelled

    cfg = TransferConfig(epochs=kw["epochs"], mode=kw["mode"], batch_size=kw["batch"], lr=kw["lr"],
                         weight_decay=kw["weight_decay"], seed=kw["seed"], ap_method=kw["ap_method"],
                         workers=kw["workers"], device=kw["device"]).validate()
    train_data = load_labelled(data, train_split, labels=labels)
    test_data = load_labelled(data, test_split, classes=train_data.classes, labels=labels)
    return cfg, train_data, test_data


@transfer.command("train")
@click.option("--init", required=True, help="inpainting run folder or checkpoint file, or 'random'")
@click.option("--preset", default=None,
              help=f"architecture for --init random (one of: {', '.join(PRESETS)}; default m1); with a "
                   "checkpoint it must match the checkpoint's")
@_transfer_options
def transfer_train(init, preset, data, train_split, test_split, out, labels, overwrite, no_progress, **kw):
    """Train one classifier (encoder from --init + new head) on --train-split; evaluate on --test-split."""
    from .transfer import resolve_init, transfer_run

    cfg, train_data, test_data = _transfer_setup(data, train_split, test_split, labels, **kw)
    model_cfg, ckpt = resolve_init(init, preset)
    result = transfer_run(train_data, test_data, model_cfg, ckpt, cfg, out, "random" if ckpt is None else "pretrained",
                          overwrite=overwrite, progress=not no_progress, log=lambda m: click.echo(m, err=True))
    te = result["test"]
    click.echo(f"test top-1 accuracy {100 * te['top1']:.1f}%, mAP {100 * te['map']:.1f}%; "
               f"results in {out / 'metrics.json'}")


@transfer.command("compare")
@click.option("--init", required=True, help="inpainting run folder or checkpoint file (compared with random init)")
@_transfer_options
def transfer_compare(init, data, train_split, test_split, out, labels, overwrite, no_progress, **kw):
    """Pretrained vs random init with the same seed; writes OUT/report.md, OUT/history.png, OUT/metrics.json."""
    from .transfer import compare, resolve_init

    if init == "random":
        raise InpaintsslError("--init random: compare needs an inpainting run or checkpoint (it trains the "
                              "random-init run itself)")
    cfg, train_data, test_data = _transfer_setup(data, train_split, test_split, labels, **kw)
    _, ckpt = resolve_init(init, None)
    results = compare(train_data, test_data, ckpt, cfg, out, overwrite=overwrite, progress=not no_progress,
                      log=lambda m: click.echo(m, err=True))
    for name, r in results.items():
        click.echo(f"{name:10s} test top-1 {100 * r['test']['top1']:.1f}%  mAP {100 * r['test']['map']:.1f}%")
    click.echo(f"report: {out / 'report.md'}")

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
    from .inpaint import Inpainter
    from .serve import _require_demo_stack, run_server

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
    from .demo import default_cache_dir, ensure_demo_run
    from .inpaint import Inpainter
    from .serve import _require_demo_stack, run_server

    _require_demo_stack()
    if checkpoint is None:
        if steps < 1:
            raise InpaintsslError(f"--steps {steps}: must be >= 1")
        checkpoint = ensure_demo_run((cache_dir or default_cache_dir()) / "demo-run", preset, steps, retrain,
                                     progress=not no_progress, log=lambda msg: click.echo(msg, err=True))
    run_server(Inpainter.from_checkpoint(checkpoint, device=device), host, port, max_upload_mb, max_queue,
               echo=click.echo)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="inpaintssl")


if __name__ == "__main__":
    main()
