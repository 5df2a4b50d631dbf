"""Outputs of a transfer comparison: the paper's Table 3 as markdown and its Figure 7 as a PNG.

    plot_history({"pretrained": hist_a, "random": hist_b}, Path("out/history.png"))
    write_report({"pretrained": result_a, "random": result_b}, setup_info, Path("out/report.md"))

``hist_*`` are lists of the per-epoch rows of ``history.jsonl`` (epoch, train/test loss, top-1, mAP);
``result_*`` are the dicts :func:`inpaintssl.transfer.fit` returns. The figure has three panels (loss,
top-1 accuracy, mAP against the epoch): one colour per run, solid lines for training (running values
over the augmented batches of the epoch) and dashed lines for the test split.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..checkpoint import atomic_write_text
from ..evaluation.plots import save_figure

ROW_NAMES = {"pretrained": "With weight initialization from pretrained model (inpainting encoder)",
             "random": "With random weight initialization"}


def plot_history(histories: dict[str, list[dict]], path: Path) -> None:
    """Write a 1x3 figure (loss, top-1 accuracy %, mAP %) per epoch for every run in ``histories``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = (("loss", "loss", 1.0), ("top1", "top-1 accuracy (%)", 100.0), ("map", "mAP (%)", 100.0))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for (key, title, scale), ax in zip(panels, axes):
        for i, (name, rows) in enumerate(histories.items()):
            epochs = [r["epoch"] for r in rows]
            colour = f"C{i}"
            for split, style in (("train", "-"), ("test", "--")):
                values = [_nan(r.get(f"{split}_{key}")) * scale for r in rows]
                ax.plot(epochs, values, style, color=colour, marker="o", markersize=3, label=f"{name} {split}")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _nan(v) -> float:
    return math.nan if v is None else float(v)


def _pct(v) -> str:
    v = _nan(v)
    return "n/a" if math.isnan(v) else f"{100 * v:.1f}"


def write_report(results: dict[str, dict], info: dict, path: Path) -> str:
    """Markdown: setup, Table 3 (train/test top-1 accuracy and mAP), per-class AP; returns the text."""
    names = list(results)
    first = results[names[0]]
    t = info.get("transfer", {})
    m = info.get("model", {})
    lines = [
        "# Transfer to classification: pretrained vs random initialisation", "",
        f"- inpainting checkpoint: `{info.get('checkpoint')}` (preset {info.get('preset')}, "
        f"step {info.get('checkpoint_step')}, {m.get('image_size')} px, bottleneck {m.get('bottleneck')})",
        f"- training labels: `{info.get('train_labels')}` ({first['train']['images']} images); "
        f"test labels: `{info.get('test_labels')}` ({first['test']['images']} images)",
        f"- fine-tuned, {first['epochs']} epoch(s), batch {t.get('batch_size')}, SGD lr {t.get('lr')} "
        f"momentum {t.get('momentum')} weight decay {t.get('weight_decay')}, dropout {t.get('dropout')}, "
        f"seed {t.get('seed')} (the same for both runs)",
        "- top-1 accuracy: an image is correct when its highest-scoring class is present in it; "
        f"AP: VOC, difficult images ignored, {_ap_name(first['test'].get('ap_method'))}; "
        "mAP: mean over the classes with at least one positive image in that split",
        "- training numbers: the whole training split re-evaluated after training with the test-time "
        "transform (centre crop, dropout off)", "",
        "## Table 3", "",
        "| Model | Training accuracy (%) | Testing accuracy (%) | Training mAP (%) | Testing mAP (%) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:
        r = results[name]
        lines.append(f"| {ROW_NAMES.get(name, name)} | {_pct(r['train']['top1'])} | {_pct(r['test']['top1'])} "
                     f"| {_pct(r['train']['map'])} | {_pct(r['test']['map'])} |")
    ref = info.get("reference")
    if ref:
        lines += ["", f"For reference, classifiers that ignore the image: always ranking the most frequent "
                      f"training class first gives test top-1 accuracy {_pct(ref['prior_top1'])}%; a random "
                      f"ranking gives mAP about {_pct(ref['chance_map'])}%."]
    if len(names) == 2:
        a, b = (results[n]["test"] for n in names)
        lines += ["", f"Test difference ({names[0]} - {names[1]}): top-1 accuracy "
                      f"{_diff(a['top1'], b['top1'])} points, mAP {_diff(a['map'], b['map'])} points."]
    lines += ["", "## Per-class test AP (%)", "",
              "| class | train positives | test positives | " + " | ".join(names) + " |",
              "|---|---:|---:|" + "---:|" * len(names)]
    for c in first["test"]["ap"]:
        aps = " | ".join(_pct(results[n]["test"]["ap"][c]) for n in names)
        lines.append(f"| {c} | {first['train']['positives'][c]} | {first['test']['positives'][c]} | {aps} |")
    lines += ["", "Training history (paper Figure 7): `history.png`; per-epoch numbers: "
                  "`<run>/history.jsonl`.", ""]
    text = "\n".join(lines)
    atomic_write_text(Path(path), text)
    return text


def _ap_name(method) -> str:
    return "VOC2007 11-point interpolation" if method == "11point" else "VOC2010+ all-point interpolation"


def _diff(a, b) -> str:
    a, b = _nan(a), _nan(b)
    return "n/a" if math.isnan(a) or math.isnan(b) else f"{100 * (a - b):+.1f}"
