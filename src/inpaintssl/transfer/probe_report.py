"""Outputs of ``transfer probe``: the layer x init table, the paired differences, two figures.

    summary = summarise(result)                # result: transfer.probe.compare_probes(...)
    write_probe_report(result, Path("out"))    # out/report.md, out/probes.json, out/probe_layers.png,
                                               # out/probe_fractions.png (when several label fractions)

Every number is a test-split score (top-1 accuracy, or mAP for multi-label data) in points, mean ± sample
standard deviation over the seeds. "vs random" is paired: for each seed, the init's score minus the random
init's score at the same seed, layer and label fraction (the seed draws the same validation split and label
subset for both), then mean ± std of those differences. "best layer" is chosen per init on the validation
score (mean over seeds), never on the test split.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..checkpoint import atomic_write_text
from ..evaluation.plots import save_figure

REFERENCE = "random"


def _cells(result: dict) -> dict[tuple[str, float, str], dict]:
    """(init, fraction, layer) -> {seed: row}."""
    out: dict = {}
    for r in result["rows"]:
        out.setdefault((r["init"], r["fraction"], r["layer"]), {})[r["seed"]] = r
    return out


def mean_std(values) -> tuple[float, float]:
    v = np.asarray(list(values), dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def summarise(result: dict) -> dict:
    """{"cells": {init: {fraction: {layer: {...}}}}, "best": {init: {fraction: layer}}} (see module doc)."""
    cells = _cells(result)
    inits = list(result["inits"])
    out: dict = {"cells": {}, "best": {}}
    for init in inits:
        for fraction in result["fractions"]:
            for layer in result["layers"]:
                rows = cells.get((init, fraction, layer), {})
                if not rows:
                    continue
                test_m, test_s = mean_std(100 * r["test"] for r in rows.values())
                c = {"test": test_m, "test_std": test_s, "val": mean_std(100 * r["val"] for r in rows.values())[0],
                     "train": mean_std(100 * r["train"] for r in rows.values())[0],
                     "train_loss": mean_std(r["train_loss"] for r in rows.values())[0],
                     "grad_norm": max(r["grad_norm"] for r in rows.values()),
                     "grad_max": max(r["grad_max"] for r in rows.values()), "seeds": len(rows)}
                ref = cells.get((REFERENCE, fraction, layer), {})
                common = sorted(set(rows) & set(ref))
                if init != REFERENCE and common:
                    c["vs_random"], c["vs_random_std"] = mean_std(100 * (rows[s]["test"] - ref[s]["test"])
                                                                   for s in common)
                out["cells"].setdefault(init, {}).setdefault(fraction, {})[layer] = c
            layers = out["cells"].get(init, {}).get(fraction, {})
            if layers:
                out["best"].setdefault(init, {})[fraction] = max(layers, key=lambda k: layers[k]["val"])
    return out


def plus_minus(m: float, s: float, signed: bool = False) -> str:
    return f"{m:+.1f} ± {s:.1f}" if signed else f"{m:.1f} ± {s:.1f}"


def over_seeds(seeds) -> str:
    """How a report's ± reads: "mean ± std over seeds 0, 1, 2", or "seed 1 (one run: ± 0.0)"."""
    seeds = list(seeds)
    if len(seeds) == 1:
        return f"seed {seeds[0]} (one run: ± 0.0)"
    return f"mean ± std over seeds {', '.join(map(str, seeds))}"


def markdown(result: dict, summary: dict) -> str:
    metric = "mAP" if result["metric"] == "map" else "top-1 accuracy"
    inits, layers = list(result["inits"]), result["layers"]
    p = result["probe"]
    lines = [f"Linear probes on frozen encoder features: test {metric} (%), "
             f"{over_seeds(result['seeds'])}; {result['train_images']} training and "
             f"{result['test_images']} test images (`{result['train_labels']}` / `{result['test_labels']}`). "
             f"Each layer average-pooled to {p['grid']}x{p['grid']} and standardised, batch norm recomputed on "
             f"{p.get('bn_photos', 0)} hole-free training photos (0 = the checkpoint's); L-BFGS softmax "
             f"(or per-class logistic) regression, weight decay chosen on a {p['val_fraction']:.0%} validation "
             f"split of the training images. Best layer: by validation score.", ""]
    for fraction in result["fractions"]:
        if len(result["fractions"]) > 1 or fraction != 1:
            lines += [f"**{fraction:.0%} of the training labels** (class-balanced, seeded)", ""]
        lines += ["| layer | " + " | ".join(inits) + " |", "|---|" + "---:|" * len(inits)]
        for layer in layers:
            row = []
            for init in inits:
                c = summary["cells"].get(init, {}).get(fraction, {}).get(layer)
                if c is None:
                    row.append("")
                    continue
                cell = plus_minus(c["test"], c["test_std"])
                if "vs_random" in c:
                    cell += f" ({plus_minus(c['vs_random'], c['vs_random_std'], True)})"
                if c["grad_max"] > 10 * p["tol"]:
                    cell += " *"
                row.append(cell)
            lines.append(f"| {layer} | " + " | ".join(row) + " |")
        best = []
        for init in inits:
            layer = summary["best"].get(init, {}).get(fraction)
            if layer is not None:
                c = summary["cells"][init][fraction][layer]
                best.append(f"{init} {layer} {plus_minus(c['test'], c['test_std'])}")
        lines += ["", "In brackets: paired difference to the random init (points). "
                      "Best layer per init (by validation): " + "; ".join(best) + ".", ""]
    worst = max(result["rows"], key=lambda r: r["grad_norm"])
    lines += [f"Final gradient of the fitted probes (test-time refits): largest L2 norm {worst['grad_norm']:.1e} "
              f"({worst['init']} {worst['layer']}), largest entry "
              f"{max(r['grad_max'] for r in result['rows']):.1e} (L-BFGS stops below {p['tol']:g})"
              + ("; `*`: some seed's largest entry is above 10x that." if any(r["grad_max"] > 10 * p["tol"]
                                                                            for r in result["rows"]) else "."), ""]
    secs = ", ".join(f"{k} {v['seconds']:.0f} s" + (f" ({v['fits_reused']} fits from the cache)"
                                                      if v.get("fits_reused") else "")
                     for k, v in result["inits"].items())
    lines += [f"Wall time (features and probes, all seeds): {secs}.", ""]
    return "\n".join(lines)


def plot_layers(result: dict, summary: dict, path: Path, fraction: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = np.arange(len(result["layers"]))
    for init, by_fraction in summary["cells"].items():
        cells = by_fraction.get(fraction, {})
        m = [cells[k]["test"] if k in cells else np.nan for k in result["layers"]]
        s = [cells[k]["test_std"] if k in cells else np.nan for k in result["layers"]]
        ax.errorbar(x, m, yerr=s, marker="o", capsize=3, label=init)
    ax.set_xticks(x, result["layers"])
    ax.set_ylabel(f"test {'mAP' if result['metric'] == 'map' else 'top-1 accuracy'} (%)")
    ax.set_title(f"linear probe by layer ({fraction:.0%} of the labels)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_fractions(result: dict, summary: dict, path: Path) -> None:
    """Each init's best layer (by validation, per fraction) against the label fraction."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for init, by_fraction in summary["cells"].items():
        fr = [f for f in result["fractions"] if f in summary["best"].get(init, {})]
        cells = [by_fraction[f][summary["best"][init][f]] for f in fr]
        ax.errorbar([100 * f for f in fr], [c["test"] for c in cells], yerr=[c["test_std"] for c in cells],
                    marker="o", capsize=3, label=init)
    ax.set_xscale("log")
    ax.set_xlabel("training labels used (%)")
    ax.set_ylabel(f"test {'mAP' if result['metric'] == 'map' else 'top-1 accuracy'} (%), best layer")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def write_probe_report(result: dict, out_dir: Path) -> str:
    """OUT/probes.json (every row), OUT/report.md, OUT/probe_layers.png, OUT/probe_fractions.png."""
    out_dir = Path(out_dir)
    summary = summarise(result)
    text = "# Linear probes at every encoder depth\n\n" + markdown(result, summary)
    text += "\n![accuracy by layer](probe_layers.png)\n"
    plot_layers(result, summary, out_dir / "probe_layers.png", max(result["fractions"]))
    if len(result["fractions"]) > 1:
        plot_fractions(result, summary, out_dir / "probe_fractions.png")
        text += "\n![accuracy by label fraction](probe_fractions.png)\n"
    atomic_write_text(out_dir / "probes.json", json.dumps({**result, "summary": _json_keys(summary)}, indent=2) + "\n")
    atomic_write_text(out_dir / "report.md", text)
    return text


def _json_keys(obj):
    """Float dict keys (label fractions) as strings, for JSON."""
    if isinstance(obj, dict):
        return {str(k): _json_keys(v) for k, v in obj.items()}
    return obj
