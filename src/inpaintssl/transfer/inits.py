"""Encoder inits fine-tuned alike and compared: the one path of ``transfer compare`` (and of reproduce's
transfer stage).

    inits = probe.resolve_inits(["runs/center", "runs/ae", "random"])
    result = compare_inits(inits, train, test, TransferConfig(), seeds=(0, 1, 2), fraction=0.1, out_dir=out)
    results = compare_table3(train, test, load_checkpoint("runs/m1"), TransferConfig(), out)   # one init, one seed

Every (init, seed) is one :func:`.train.transfer_run` (:func:`fine_tune_inits`) with the same transfer
config but its seed, so for one seed every init gets the same head initialisation, data order, crops,
dropout stream and label subset (``fraction`` < 1: :func:`.voc.label_subset` seeded by the seed), and a
random init the DCGAN initialisation of that seed. ``init - random`` is therefore paired by seed. Nothing is
chosen on the test split: every run trains for the configured epochs and its last epoch is scored (as in the
paper). Two reports:

* :func:`compare_inits` (several inits or seeds; ``random`` is added as the reference when not given):
  runs in ``OUT/<init>/seed<k>/``; ``OUT/report.md`` (init x metric table, mean ± sample std over the
  seeds, paired difference to random), ``OUT/curves.png`` (test metric per epoch, mean over seeds, per
  init), ``OUT/metrics.json``;
* :func:`compare_table3` (one checkpoint against random init, one seed: the paper's Table 3): runs in
  ``OUT/pretrained/`` and ``OUT/random/``; ``OUT/report.md`` (:func:`.report.write_report`),
  ``OUT/history.png`` (both runs: Figure 7), ``OUT/metrics.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..checkpoint import atomic_write_text
from ..config import ModelConfig, config_from_dict
from ..evaluation.plots import save_figure
from .metrics import reference_levels
from .probe import init_record
from .probe_report import REFERENCE, mean_std, over_seeds, plus_minus
from .report import plot_history, write_report
from .train import TransferConfig, json_safe, prepare_out_dir, transfer_run
from .voc import LabelledImages, label_subset

FILES = ("report.md", "metrics.json", "curves.png")
TABLE3_FILES = ("report.md", "metrics.json", "history.png", "pretrained", "random")


def fine_tune_inits(inits: dict[str, tuple[ModelConfig, dict | None]], train: LabelledImages,
                    test: LabelledImages, cfg: TransferConfig, seeds: Sequence[int], fraction: float,
                    run_dir: Callable[[str, int], Path], progress: bool = False, log=print):
    """Every init with every seed, seed by seed, each into ``run_dir(init, seed)``: yields (init, seed,
    the seed's label subset, the result of :func:`.train.transfer_run`)."""
    for seed in seeds:
        sub, c = label_subset(train, fraction, seed), dataclasses.replace(cfg, seed=seed)
        for name, (model_cfg, ckpt) in inits.items():
            yield name, seed, sub, transfer_run(sub, test, model_cfg, ckpt, c, run_dir(name, seed), name,
                                                overwrite=True, progress=progress, log=log)


def compare_inits(inits: dict[str, tuple[ModelConfig, dict | None]], train: LabelledImages, test: LabelledImages,
                  cfg: TransferConfig, seeds: Sequence[int], fraction: float, out_dir: Path,
                  overwrite: bool = False, progress: bool = False, log=print) -> dict:
    """Fine-tune every init with every seed; write the report (module doc)."""
    out_dir = Path(out_dir)
    if REFERENCE not in inits:
        arch = next(iter(inits.values()))[0]
        inits = {**inits, REFERENCE: (arch, None)}
    prepare_out_dir(out_dir, overwrite, FILES + tuple(inits), "a comparison of inits")
    runs, t0 = [], time.perf_counter()
    for name, seed, sub, r in fine_tune_inits(inits, train, test, cfg, seeds, fraction,
                                              lambda name, seed: out_dir / name / f"seed{seed}", progress, log):
        runs.append({"init": name, "seed": seed, "train_images": len(sub.files),
                     "test": r["test"], "train": r["train"], "history": r["history"],
                     "final_train_loss": r["history"][-1]["train_loss"], "seconds": r["seconds"],
                     "choice": r.get("choice")})
        log(f"[{name} seed {seed}] test top-1 {100 * r['test']['top1']:.1f}% mAP {100 * r['test']['map']:.1f}%")
    result = {"metric": "map" if train.multilabel else "top1", "seeds": list(seeds), "fraction": fraction,
              "train_images": len(train.files), "test_images": len(test.files), "train_labels": train.source,
              "test_labels": test.source, "transfer": dataclasses.asdict(cfg),
              "reference": reference_levels(train.labels, test.labels), "seconds": time.perf_counter() - t0,
              "inits": {name: {**init_record(m, ck),
                               "mask": None if ck is None else ck["config"].get("mask", {}).get("kind")}
                        for name, (m, ck) in inits.items()},
              "runs": runs}
    result["summary"] = summarise(result)
    text = markdown(result)
    plot_curves(result, out_dir / "curves.png")
    atomic_write_text(out_dir / "metrics.json", json.dumps(json_safe(result), indent=2) + "\n")
    atomic_write_text(out_dir / "report.md", "# Inits compared by fine-tuning\n\n" + text
                      + "\n![test score per epoch](curves.png)\n")
    return result


def compare_table3(train: LabelledImages, test: LabelledImages, ckpt: dict, cfg: TransferConfig, out_dir: Path,
                   fraction: float = 1.0, overwrite: bool = False, progress: bool = False, log=print) -> dict:
    """The checkpoint's encoder vs random init, same architecture, seed ``cfg.seed``: the paper's Table 3 into
    ``out_dir`` (module doc). Returns {"pretrained": ..., "random": ...}, the runs' results."""
    out_dir = Path(out_dir)
    prepare_out_dir(out_dir, overwrite, TABLE3_FILES, "a comparison")
    model_cfg = config_from_dict(ckpt["config"]).model
    inits = {"pretrained": (model_cfg, ckpt), "random": (model_cfg, None)}
    results = {}
    for name, _, sub, r in fine_tune_inits(inits, train, test, cfg, (cfg.seed,), fraction,
                                           lambda name, _: out_dir / name, progress, log):
        results[name] = r
    plot_history({k: v["history"] for k, v in results.items()}, out_dir / "history.png")
    info = {"checkpoint": ckpt.get("path"), "checkpoint_step": ckpt.get("step"),
            "preset": ckpt["config"].get("preset"), "model": dataclasses.asdict(model_cfg),
            "transfer": dataclasses.asdict(cfg), "train_labels": sub.source,
            "test_labels": test.source, "reference": reference_levels(sub.labels, test.labels)}
    write_report(results, info, out_dir / "report.md")
    atomic_write_text(out_dir / "metrics.json", json.dumps(json_safe({"setup": info, **results}), indent=2) + "\n")
    return results


def summarise(result: dict) -> dict:
    """{init: {"top1"|"map"|"train_top1"|"train_map": (mean, std), "vs_random_top1"|"vs_random_map": (mean, std)}}
    in points; the paired differences take the seeds both inits ran."""
    by = {}
    for r in result["runs"]:
        by.setdefault(r["init"], {})[r["seed"]] = r
    out, ref = {}, by.get(REFERENCE, {})
    for name, rows in by.items():
        s, common = {}, sorted(set(rows) & set(ref))
        for key in ("top1", "map"):
            s[key] = mean_std(100 * r["test"][key] for r in rows.values())
            s[f"train_{key}"] = mean_std(100 * r["train"][key] for r in rows.values())
            if name != REFERENCE and common:
                s[f"vs_random_{key}"] = mean_std(100 * (rows[k]["test"][key] - ref[k]["test"][key]) for k in common)
        s["seconds"] = float(np.mean([r["seconds"] for r in rows.values()]))
        out[name] = s
    return out


def markdown(result: dict) -> str:
    t, summary = result["transfer"], result["summary"]
    n_train = result["runs"][0]["train_images"] if result["runs"] else 0
    grid = t.get("lr_grid") or ()
    recipe = (f"lr and epochs chosen per run on a {t['val_fraction']:.0%} validation part of the training "
              f"images (lr from {', '.join(f'{v:g}' for v in grid)}, 1-{t['epochs']} epochs; chosen: "
              + "; ".join(f"{r['init']} seed {r['seed']} {r['choice']['lr']:g}/{r['choice']['epochs']}"
                          for r in result["runs"] if r.get("choice")) + ")"
              if grid else f"{t['epochs']} epochs, SGD lr {t['lr']}")
    lines = [f"fine-tuned from the {t.get('head_from', 'bottleneck')}, {recipe}, SGD momentum {t['momentum']} weight decay "
             f"{t['weight_decay']}, batch {t['batch_size']}; {n_train} training images "
             f"({result['fraction']:.0%} of `{result['train_labels']}`"
             f"{', class-balanced per seed' if result['fraction'] < 1 else ''}), "
             f"{result['test_images']} test images (`{result['test_labels']}`). Test scores of the last epoch, "
             f"{over_seeds(result['seeds'])}; in brackets the paired difference "
             "to the random init at the same seed (points).", "",
             "| init | test top-1 (%) | test mAP (%) | train top-1 (%) | train mAP (%) | s / run |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, s in summary.items():
        cells = []
        for key in ("top1", "map"):
            cell = plus_minus(*s[key])
            if f"vs_random_{key}" in s:
                cell += f" ({plus_minus(*s[f'vs_random_{key}'], True)})"
            cells.append(cell)
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {plus_minus(*s['train_top1'])} | {plus_minus(*s['train_map'])} "
                     f"| {s['seconds']:.0f} |")
    ref = result["reference"]
    lines += ["", f"Classifiers that ignore the image: the most frequent training class gives top-1 "
                  f"{100 * ref['prior_top1']:.1f}%; a random ranking gives mAP about {100 * ref['chance_map']:.1f}%. "
                  f"Wall time of the whole comparison: {result['seconds'] / 60:.1f} min.", ""]
    return "\n".join(lines)


def plot_curves(result: dict, path: Path) -> None:
    """Test top-1 and mAP per epoch, mean over the seeds, one line per init."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    names = list(dict.fromkeys(r["init"] for r in result["runs"]))
    for key, ax in zip(("top1", "map"), axes):
        for name in names:
            hist = [r["history"] for r in result["runs"] if r["init"] == name]
            n = min(len(h) for h in hist)
            values = 100 * np.array([[h[e][f"test_{key}"] for e in range(n)] for h in hist], dtype=float)
            ax.plot(np.arange(1, n + 1), np.nanmean(values, 0), marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"test {'top-1 accuracy' if key == 'top1' else 'mAP'} (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
