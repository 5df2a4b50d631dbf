"""The equal-compute pretext study's tables and plot (docs/transfer.md): probes and fine-tuning, per pretext.

    python scripts/ssl_study.py --probes study/probe-all --probes study/probe-10 \
        --finetune "VOC2007, paper recipe=study/ft-voc" --finetune "Imagenette 10%=study/ft-in10" --out docs/ssl-study.png

``--probes``: report folders of ``inpaintssl transfer probe`` (their ``probes.json``), every init probed alike;
``--finetune NAME=ROOT``: ``ROOT/<init>/seed<k>/metrics.json`` from ``inpaintssl transfer train`` (one per init
and seed, same seeds for every init, ``random`` among them); a NAME starting with "voc" is scored by mAP, any
other by top-1. Prints markdown: the layer x pretext table per label fraction (mean ± std over seeds), each
init's best layer (chosen on validation) against random's best layer, and the fine-tuned scores with the paired
difference to random; draws the best-layer and fine-tuning bars into ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from inpaintssl.evaluation.plots import save_figure
from inpaintssl.transfer.probe_report import mean_std, plus_minus, summarise


def probe_tables(results: list[dict]) -> tuple[list[str], dict]:
    lines, best = [], {}
    for result in results:
        s = summarise(result)
        inits = list(result["inits"])
        for fraction in result["fractions"]:
            seeds = len(result["seeds"])
            lines += [f"**Linear probes, {fraction:.0%} of the labels** (test top-1 %, "
                      f"{'mean ± std over ' + str(seeds) + ' seeds' if seeds > 1 else 'seed 0'}; "
                      "in brackets the paired difference to random)", "",
                      "| layer | " + " | ".join(inits) + " |", "|---|" + "---:|" * len(inits)]
            for layer in result["layers"]:
                cells = []
                for init in inits:
                    c = s["cells"].get(init, {}).get(fraction, {}).get(layer)
                    cell = plus_minus(c["test"], c["test_std"]) if c else ""
                    if c and "vs_random" in c:
                        cell += f" ({plus_minus(c['vs_random'], c['vs_random_std'], True)})"
                    cells.append(cell)
                lines.append(f"| {layer} | " + " | ".join(cells) + " |")
            ref_layer = s["best"]["random"][fraction]
            ref = s["cells"]["random"][fraction][ref_layer]
            lines += ["", "Best layer by validation, against random's best layer "
                      f"(random: {ref_layer} {plus_minus(ref['test'], ref['test_std'])}):", ""]
            for init in inits:
                layer = s["best"][init][fraction]
                c = s["cells"][init][fraction][layer]
                best.setdefault(fraction, {})[init] = (layer, c["test"], c["test_std"], c["test"] - ref["test"])
                lines.append(f"- {init}: {layer} {plus_minus(c['test'], c['test_std'])} "
                             f"({c['test'] - ref['test']:+.1f} points)")
            lines.append("")
    return lines, best


METRIC_LABEL = {"map": "mAP", "top1": "top-1"}


def scored_by(name: str) -> str:
    """The metric key of a fine-tuning table: ``map`` for a NAME starting with "voc" (any case), else ``top1``."""
    return "map" if name.lower().startswith("voc") else "top1"


def finetune_table(name: str, root: Path) -> tuple[list[str], dict]:
    runs = {}
    for f in sorted(root.glob("*/seed*/metrics.json")):
        m = json.loads(f.read_text())
        runs.setdefault(f.parent.parent.name, {})[int(f.parent.name[4:])] = m
    if "random" not in runs:
        raise SystemExit(f"{root}: no random/seed*/metrics.json to pair with")
    metric = scored_by(name)
    ref = runs["random"]
    lines = [f"**Fine-tuned, {name}** (test {METRIC_LABEL[metric]} %, mean ± std over seeds; "
             "in brackets the paired difference to random at the same seed)", "",
             "| init | seeds | test | vs random |", "|---|---:|---:|---:|"]
    out = {}
    for init, seeds in runs.items():
        vals = [100 * seeds[k]["test"][metric] for k in sorted(seeds)]
        common = sorted(set(seeds) & set(ref))
        m, sd = mean_std(vals)
        d = mean_std(100 * (seeds[k]["test"][metric] - ref[k]["test"][metric]) for k in common)
        out[init] = (m, sd, d[0] if init != "random" else 0.0)
        diff = "" if init == "random" else plus_minus(*d, True)
        lines.append(f"| {init} | {len(vals)} | {plus_minus(m, sd)} | {diff} |")
    return lines + [""], out


def plot(best: dict, fine: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [(f"probe, {fr:.0%} labels: best layer (top-1 %)", {k: (v[1], v[2]) for k, v in b.items()})
              for fr, b in sorted(best.items(), reverse=True)]
    panels += [(f"fine-tuned, {n} ({METRIC_LABEL[scored_by(n)]} %)",
                {k: (v[0], v[1]) for k, v in f.items()}) for n, f in fine.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (title, vals) in zip(axes[0], panels):
        names = list(vals)
        means, stds = np.array([vals[n][0] for n in names]), np.array([vals[n][1] for n in names])
        colors = ["0.6" if n == "random" else "C0" for n in names]
        ax.bar(range(len(names)), means, yerr=stds, color=colors, capsize=3)
        if "random" in vals:
            ax.axhline(vals["random"][0], color="0.3", lw=0.8, ls="--")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_ylim(max(0, means.min() - 10), means.max() + 5)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--probes", type=Path, action="append", default=[], help="a transfer probe report folder")
    ap.add_argument("--finetune", action="append", default=[], help="NAME=ROOT of transfer train runs")
    ap.add_argument("--out", type=Path, help="plot file (PNG)")
    a = ap.parse_args()
    lines, best = probe_tables([json.loads((p / "probes.json").read_text()) for p in a.probes])
    fine = {}
    for spec in a.finetune:
        name, _, root = spec.partition("=")
        more, fine[name] = finetune_table(name, Path(root))
        lines += more
    print("\n".join(lines))
    if a.out:
        plot(best, fine, a.out)
        print(f"plot: {a.out}")


if __name__ == "__main__":
    main()
