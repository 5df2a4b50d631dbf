"""Training loss curves from runs' ``metrics.jsonl`` (matplotlib, Agg backend, PNG).

    plot_loss_curves({"m1": Path("runs/m1"), "m2": Path("runs/m2")}, Path("report/loss_curves.png"))

One panel per logged quantity that any run has (:data:`PANELS` order: hole MSE, the weighted
reconstruction loss, the adversarial terms, the discriminator losses), one line per run, x = step.
Values are plotted as logged (every ``train.log_every`` steps, on the training scale [-1, 1]); the
MSE panels use a log y axis. A second, bolder line is an exponential moving average (weight
:data:`SMOOTH`) so trends show through the GAN noise. Compare models on "MSE inside the hole": an M3
run's weighted total has no outside-the-hole term (its output outside the hole *is* the input), so it
sits far below M1/M2's. matplotlib is imported lazily with the Agg backend, so no display is needed;
a missing matplotlib is a clear :class:`InpaintsslError`.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..checkpoint import atomic_write
from ..errors import InpaintsslError

# (key in metrics.jsonl, panel title, log y axis)
PANELS = (
    ("hole_mse", "MSE inside the hole", True),
    ("mse_total", "L_MSE total (w1 full + w2 masked)", True),
    ("g_adv_global", "G adversarial, global D", False),
    ("g_adv_local", "G adversarial, local D", False),
    ("d_global", "global D loss", False),
    ("d_local", "local D loss", False),
)
SMOOTH = 0.8


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of ``run_dir/metrics.jsonl`` (a truncated last line, from a crash, is ignored)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise InpaintsslError(f"{run_dir}: no metrics.jsonl; pass a run folder made by 'inpaintssl train'")
    rows, lines = [], path.read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if n != len(lines):
                raise InpaintsslError(f"{path}: line {n} is not JSON; the file is damaged") from None
    return rows


def ema(values: list[float], weight: float = SMOOTH) -> list[float]:
    """Exponential moving average, debiased at the start like TensorBoard's smoothing."""
    out, acc = [], 0.0
    for i, v in enumerate(values, 1):
        acc = weight * acc + (1 - weight) * v
        out.append(acc / (1 - weight ** i))
    return out


def plot_loss_curves(runs: dict[str, Path], out_png: Path, title: str | None = None) -> Path:
    """Draw the panels for ``runs`` ({name: run folder}) into ``out_png``; returns its path."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InpaintsslError("loss curves need matplotlib, which is not installed: "
                              "pip install 'inpaintssl[eval]'") from None
    data = {name: read_metrics(d) for name, d in runs.items()}
    panels = [p for p in PANELS if any(p[0] in r for rows in data.values() for r in rows)]
    if not panels:
        raise InpaintsslError(f"no loss values in the metrics.jsonl of {', '.join(map(str, runs.values()))}")
    ncol = min(3, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (key, label, log_y) in zip(axes.flat, panels):
        for c, (name, rows) in enumerate(data.items()):
            pts = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
            if not pts:
                continue
            steps, vals = zip(*pts)
            col = colours[c % len(colours)]
            ax.plot(steps, vals, color=col, alpha=0.3, linewidth=0.8)
            ax.plot(steps, ema(list(vals)), color=col, linewidth=1.6, label=name)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("step")
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out_png)


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically (temp file, then rename) and close it."""
    import matplotlib.pyplot as plt
    path = Path(path)
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))    # never a half-written PNG
    finally:
        plt.close(fig)
    return path
