"""Commands of the downstream task: ``transfer train``, ``transfer compare`` and ``transfer probe``."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InpaintsslError
from .base import Group, cli, device_option, preset_option, progress_option


@cli.group(cls=Group)
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
        click.option("--batch", type=int, default=64, show_default=True, help="batch size"),
        click.option("--lr", type=float, default=0.005, show_default=True, help="SGD learning rate (momentum 0.9)"),
        click.option("--lr-grid", type=float, multiple=True,
                     help="choose the learning rate among these (repeatable) and the epochs (1..--epochs) on a "
                          "20%% validation part of the training split, per init and seed, before the scored run "
                          "(default: the paper's fixed --lr and --epochs)"),
        click.option("--head-from", type=click.Choice(["bottleneck", "pooled"]), default="bottleneck",
                     show_default=True, help="the head reads the 1x1 bottleneck (paper) or the deepest encoder "
                                             "layer averaged over space"),
        click.option("--weight-decay", type=float, default=5e-4, show_default=True, help="SGD weight decay"),
        click.option("--seed", type=int, default=0, show_default=True, help="seed of the head, data order, crops"),
        click.option("--label-fraction", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
                     help="train on this class-balanced fraction of the training split (seeded by --seed)"),
        click.option("--labels", type=click.Choice(["auto", "files", "xml"]), default="auto", show_default=True,
                     help="VOC labels from <class>_<split>.txt files or Annotations/*.xml (auto: files if present)"),
        click.option("--ap", "ap_method", type=click.Choice(["all", "11point"]), default="all", show_default=True,
                     help="AP interpolation: VOC2010+ all-point or VOC2007 11-point"),
        click.option("--workers", type=int, default=2, show_default=True, help="data loader worker processes"),
        device_option(),
        click.option("--overwrite", is_flag=True, help="replace existing results in --out"),
        progress_option("no progress bars"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _transfer_setup(data, train_split, test_split, labels, **kw):
    from ..transfer.train import TransferConfig
    from ..transfer.voc import load_labelled

    cfg = TransferConfig(epochs=kw["epochs"], batch_size=kw["batch"], lr=kw["lr"],
                         weight_decay=kw["weight_decay"], seed=kw["seed"], ap_method=kw["ap_method"],
                         lr_grid=tuple(kw["lr_grid"]), head_from=kw["head_from"],
                         workers=kw["workers"], device=kw["device"]).validate()
    train_data = load_labelled(data, train_split, labels=labels)
    test_data = load_labelled(data, test_split, classes=train_data.classes, labels=labels)
    return cfg, train_data, test_data


@transfer.command("train")
@click.option("--init", required=True, help="inpainting run folder or checkpoint file, 'ssl' (the shipped U-Net encoder) or 'random'")
@preset_option(None, help="architecture for --init random (default m1); with a checkpoint it must match the "
                          "checkpoint's")
@_transfer_options
def transfer_train(init, preset, data, train_split, test_split, out, labels, overwrite, no_progress, **kw):
    """Train one classifier (encoder from --init + new head) on --train-split; evaluate on --test-split."""
    from ..transfer.train import resolve_init, transfer_run
    from ..transfer.voc import label_subset

    cfg, train_data, test_data = _transfer_setup(data, train_split, test_split, labels, **kw)
    train_data = label_subset(train_data, kw["label_fraction"], cfg.seed)
    model_cfg, ckpt = resolve_init(init, preset)
    result = transfer_run(train_data, test_data, model_cfg, ckpt, cfg, out, "random" if ckpt is None else "pretrained",
                          overwrite=overwrite, progress=not no_progress, log=lambda m: click.echo(m, err=True))
    te = result["test"]
    click.echo(f"test top-1 accuracy {100 * te['top1']:.1f}%, mAP {100 * te['map']:.1f}%; "
               f"results in {out / 'metrics.json'}")


@transfer.command("compare")
@click.option("--init", "inits", multiple=True, required=True,
              help="inpainting run folder or checkpoint file (or 'ssl': the shipped U-Net encoder, or 'random'); repeatable: several "
                   "inits are fine-tuned alike and compared with random init")
@click.option("--seeds", type=click.IntRange(1), default=1, show_default=True,
              help="run every init with seeds --seed .. --seed+N-1 (mean ± std, paired difference to random)")
@_transfer_options
def transfer_compare(inits, seeds, data, train_split, test_split, out, labels, overwrite, no_progress, **kw):
    """Pretrained vs random init with the same seed. One --init and one seed: the paper's Table 3
    (OUT/report.md, OUT/history.png, OUT/metrics.json). Several --init or --seeds > 1: every init x seed into
    OUT/<init>/seed<k>/ and one report (OUT/report.md: mean ± std and paired difference to random,
    OUT/curves.png, OUT/metrics.json)."""
    from ..transfer.inits import compare_inits, compare_table3, markdown

    if list(inits) == ["random"]:
        raise InpaintsslError("--init random: compare needs an inpainting run or checkpoint (it trains the "
                              "random-init run itself)")
    cfg, train_data, test_data = _transfer_setup(data, train_split, test_split, labels, **kw)
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    if len(inits) == 1 and seeds == 1:
        from ..transfer.train import resolve_init
        _, ckpt = resolve_init(inits[0], None)
        results = compare_table3(train_data, test_data, ckpt, cfg, out, kw["label_fraction"],
                                 overwrite=overwrite, progress=not no_progress, log=log)
        for name, r in results.items():
            click.echo(f"{name:10s} test top-1 {100 * r['test']['top1']:.1f}%  mAP {100 * r['test']['map']:.1f}%")
    else:
        from ..transfer.probe import resolve_inits
        result = compare_inits(resolve_inits(inits), train_data, test_data, cfg,
                               tuple(range(cfg.seed, cfg.seed + seeds)), kw["label_fraction"], out,
                               overwrite=overwrite, progress=not no_progress, log=log)
        click.echo(markdown(result))
    click.echo(f"report: {out / 'report.md'}")


@transfer.command("probe")
@click.option("--init", "inits", multiple=True, required=True,
              help="encoder to probe: a run folder, a checkpoint file, 'ssl' (the shipped U-Net encoder) or 'random'; repeatable")
@preset_option(None, help="architecture of --init random (default: the first checkpoint's, else m1-64)")
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="VOCdevkit/VOC20xx folder (mAP), or ROOT/<split>/<class>/ images (top-1), e.g. "
                   "photo-pool/imagenette with --train-split train --test-split dev")
@click.option("--train-split", default="trainval", show_default=True, help="split the probes are fitted on")
@click.option("--test-split", default="test", show_default=True, help="split they are scored on, once")
@click.option("--labels", type=click.Choice(["auto", "files", "xml"]), default="auto", show_default=True,
              help="VOC labels from <class>_<split>.txt files or Annotations/*.xml")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="report folder")
@click.option("--seeds", type=click.IntRange(1), default=3, show_default=True,
              help="seeds 0..N-1 (validation split, label subset, random init's weights)")
@click.option("--label-fraction", "fractions", multiple=True, type=click.FloatRange(0, 1, min_open=True),
              help="fraction of the training labels (class-balanced, seeded); repeatable  [default: 1]")
@click.option("--grid", type=click.IntRange(1, 8), default=4, show_default=True,
              help="each encoder layer is average-pooled to GRID x GRID before the probe (grids 2 and 8 "
                   "scored lower at the best layers: docs/transfer.md)")
@click.option("--bn-photos", type=click.IntRange(0), default=2048, show_default=True,
              help="recompute batch norm on this many hole-free training photos first (0 = the checkpoint's "
                   "statistics, gathered on holed batches)")
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="feature cache folder (default OUT/features): a rerun only refits the probes")
@click.option("--overwrite", is_flag=True, help="replace an existing probe report in --out")
def transfer_probe(inits, preset, data, train_split, test_split, labels, out, seeds, fractions, grid, bn_photos,
                   cache, overwrite):
    """Linear probes on every encoder layer of several inits: OUT/report.md (layer x init table, mean ± std
    over seeds, paired difference to random), OUT/probe_layers.png, OUT/probe_fractions.png, OUT/probes.json."""
    from ..transfer.probe import ProbeConfig, compare_probes, resolve_inits
    from ..transfer.probe_report import write_probe_report
    from ..transfer.train import prepare_out_dir
    from ..transfer.voc import load_labelled

    train_data = load_labelled(data, train_split, labels=labels)
    test_data = load_labelled(data, test_split, classes=train_data.classes, labels=labels)
    resolved = resolve_inits(inits, preset)
    prepare_out_dir(out, overwrite, ("report.md", "probes.json", "probe_layers.png", "probe_fractions.png"),
                    "a probe report")
    result = compare_probes(resolved, train_data, test_data, ProbeConfig(grid=grid, bn_photos=bn_photos), seeds=tuple(range(seeds)),
                            fractions=tuple(sorted(set(fractions or (1.0,)))), cache_dir=cache or out / "features",
                            log=lambda m: click.echo(m, err=True))
    click.echo(write_probe_report(result, out))
    click.echo(f"report: {out / 'report.md'}")
