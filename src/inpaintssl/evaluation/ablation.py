"""The paper's ablation (sections 5.4 and 6.1) as one command: train M1, M2, M3 alike, then evaluate.
The one orchestrator of it: ``inpaintssl ablation`` calls :func:`run_ablation`, and ``inpaintssl reproduce``
calls its parts (:func:`ablation_configs`, :func:`train_models`, :func:`evaluate_models`) as its
pretraining and evaluation stages, with its own progress records in between.

    summary = run_ablation([Path("train2017")], Path("ablation/"), eval_sources=[Path("val2017")],
                           size=32, steps=300, seed=0)
    # ablation/runs/{m1,m2,m3}/ (ordinary run folders), ablation/report.md, metrics.json,
    # per_image.csv, grid.png, loss_curves.png

The three models differ only in what the paper varies (:func:`ablation_configs`):

* ``m1``: U-Net skips, global + local discriminators, predicts the whole image;
* ``m2``: ``m1`` without the global discriminator;
* ``m3``: no skips, no global discriminator, predicts only the central patch.

``also`` adds presets of the same size trained alike (an improved recipe such as ``m1-plus-64``), so one
command gives the whole comparison: M1, M2, M3, the improved preset and the classical baselines.

``size`` picks the scale: 128 = the paper's ``m1/m2/m3`` presets, 64 = ``m1-64/m2-64/m3-64``, 32 = the
``smoke`` preset (M1 at 32 px, width 16, bottleneck 128, batch 8) with M2 and M3 derived from it by the
same switches. All three share the data, step count, seed (so the same data order, crops and masks),
batch size, and any ``--set`` overrides. Training uses the paper's central square hole (M3 cannot train
on any other), and the evaluation uses the same central hole with :mod:`evaluate`'s fixed protocol on
``eval_sources`` -- held-out photos if given, otherwise the training photos (the report says which).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config import Config, apply_overrides

from ..presets import get_preset
from ..data.sources import gather_files, is_cache_dir
from ..errors import InpaintsslError
from .evaluate import check_dependencies, parse_baselines, run_evaluation
from .plots import read_metrics
from .report import check_report_dir, write_report
from ..gan.train import train

SCALES: dict[int, dict[str, str]] = {
    32: {"m1": "smoke", "m2": "smoke", "m3": "smoke"},
    64: {"m1": "m1-64", "m2": "m2-64", "m3": "m3-64"},
    128: {"m1": "m1", "m2": "m2", "m3": "m3"},
}
# the switches that turn an M1 config into M2 / M3 (used at 32 px, where only M1 has a preset)
VARIANTS: dict[str, list[str]] = {
    "m1": [],
    "m2": ["model.global_d=false"],
    "m3": ["model.global_d=false", "model.skips=false", "model.predict=patch"],
}


def ablation_configs(size: int, steps: int, seed: int = 0, batch: int | None = None,
                     overrides: Sequence[str] = (), also: Sequence[str] = ()) -> dict[str, Config]:
    """{"m1", "m2", "m3", *also: Config} at the given scale, identical apart from the ablated switches.

    ``also`` names further presets of the same image size (e.g. an improved recipe, ``m1-plus-64``),
    trained with the same data, steps, seed, batch, hole and overrides; each is named by its preset."""
    if size not in SCALES:
        raise InpaintsslError(f"--size {size}: choose one of {', '.join(map(str, SCALES))}")
    if steps < 1:
        raise InpaintsslError(f"--steps {steps}: must be at least 1")
    cfgs = {}
    for name, preset in [*SCALES[size].items(), *((p, p) for p in also)]:
        if name in cfgs:
            raise InpaintsslError(f"--also {name}: listed twice or clashes with m1/m2/m3")
        cfg = get_preset(preset)
        if name in VARIANTS and preset == "smoke":
            apply_overrides(cfg, VARIANTS[name])
            cfg.preset = f"{name}-32"
        elif cfg.model.image_size != size:
            raise InpaintsslError(f"--also {preset}: a {cfg.model.image_size} px preset in a {size} px ablation; "
                                  f"pick one trained at {size} px (see 'inpaintssl presets')")
        cfg.train.steps, cfg.train.seed = steps, seed
        if batch is not None:
            cfg.train.batch_size = batch
        cfg.mask.kind = "center"
        apply_overrides(cfg, overrides)
        if cfg.mask.kind != "center":
            raise InpaintsslError("the ablation trains on the central square hole (M3 supports no other); "
                                  "drop the mask.kind override")
        cfgs[name] = cfg.validate()
    return cfgs


def _switches(cfg: Config) -> str:
    m = cfg.model
    return (f"{'yes' if m.skips else 'no'} | {'yes' if m.global_d else 'no'} | {'yes' if m.local_d else 'no'} | "
            f"{m.predict}")


def training_section(cfgs: dict[str, Config], runs: dict[str, Path], seconds: dict[str, float | None],
                     sources: Sequence[Path], eval_sources: Sequence[Path] | None) -> str:
    """Markdown describing the training runs (switches, steps, time, final hole MSE)."""
    any_cfg = next(iter(cfgs.values()))
    lines = [f"Trained on {', '.join(f'`{s}`' for s in sources)} for {any_cfg.train.steps} steps each "
             f"(batch {any_cfg.train.batch_size}, seed {any_cfg.train.seed}, {any_cfg.model.image_size} px, "
             "central square hole); same data order, crops and masks for all models.",
             "Evaluated on " + (", ".join(f"`{s}`" for s in eval_sources) + " (photos not used for training)."
                                if eval_sources else "**the training photos** (no --eval-data given)."),
             "", "## Training", "",
             "| model | preset | skips | global D | local D | predicts | steps | train time s "
             "| final hole MSE ([-1, 1] scale) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, cfg in cfgs.items():
        rows = [r for r in read_metrics(runs[name]) if "hole_mse" in r]
        last = f"{rows[-1]['hole_mse']:.4f}" if rows else "n/a"
        step = rows[-1]["step"] if rows else "n/a"
        secs = "kept" if seconds[name] is None else f"{seconds[name]:.0f}"
        lines.append(f"| {name} | {cfg.preset} | {_switches(cfg)} | {step} | {secs} | {last} |")
    lines += ["", "Run folders: " + ", ".join(f"`{runs[n]}`" for n in cfgs) + "."]
    return "\n".join(lines)


def train_models(cfgs: dict[str, Config], run_dirs: dict[str, Path], sources: Sequence[Path], resume: bool,
                 overwrite: bool, progress: bool = False, log=print, before=None, after=None) -> dict[str, dict]:
    """Train each config into its run folder, one after the other; {name: train()'s summary}.

    A run with a ``latest.pt`` continues (or is kept, if finished) when ``resume``; else ``overwrite``
    replaces it. ``before(name, index, resuming)`` and ``after(name, summary, seconds)`` are called around
    each run (reproduce's ETA and records). A run stopped by Ctrl-C raises KeyboardInterrupt."""
    import time

    out = {}
    for i, (name, cfg) in enumerate(cfgs.items(), 1):
        again = resume and (Path(run_dirs[name]) / "checkpoints" / "latest.pt").is_file()
        if before is not None:
            before(name, i, again)
        t0 = time.perf_counter()
        out[name] = train(cfg, Path(run_dirs[name]), [Path(s) for s in sources], resume=again,
                          overwrite=overwrite and not again, progress=progress, log=log)
        if out[name].get("interrupted"):
            raise KeyboardInterrupt
        if after is not None:
            after(name, out[name], time.perf_counter() - t0)
    return out


def evaluate_models(cfgs: dict[str, Config], runs: dict[str, Path], seconds: dict[str, float | None],
                    sources: Sequence[Path], eval_sources: Sequence[Path] | None, out: Path, title: str,
                    baselines: Sequence[str], limit: int | None, seed: int, size: int, device: str,
                    grid_rows: int, progress: bool = False, log=print):
    """The trained runs and ``baselines`` on the same central holes (:func:`.evaluate.run_evaluation`),
    reported in ``out`` with the training section first; returns the evaluation result."""
    result = run_evaluation(list(runs.values()), list(eval_sources or sources), baselines, mask="center",
                            limit=limit, seed=seed, size=size, device=device, grid_rows=grid_rows, log=log,
                            progress=progress)
    intro = training_section(cfgs, runs, seconds, sources, eval_sources)
    write_report(result, out, title=title, intro=intro, overwrite=True)
    return result


def run_ablation(sources: Sequence[Path], out: Path, eval_sources: Sequence[Path] | None = None,
                 size: int = 32, steps: int = 300, seed: int = 0, batch: int | None = None,
                 overrides: Sequence[str] = (), also: Sequence[str] = (), baselines: Sequence[str] | str = ("telea", "ns", "mean"),
                 limit: int | None = 40, grid_rows: int = 8, resume: bool = False, overwrite: bool = False,
                 device: str | None = None, progress: bool = False, log=print) -> dict:
    """Train M1, M2, M3 (and the ``also`` presets) into ``out/runs/<name>``, evaluate them, write ``out/report.md`` & co.

    ``resume`` continues (or keeps, if already finished) runs that have a ``latest.pt``; ``overwrite``
    replaces existing runs and report. ``device`` (auto, cpu, cuda, cuda:N; None = each config's
    ``train.device``) trains and scores. Returns
    {"runs", "report", "summary"}.
    """
    out = Path(out)
    if not sources:
        raise InpaintsslError("ablation needs training photos: pass --data DIR")
    if resume and overwrite:
        raise InpaintsslError("give --resume or --overwrite, not both")
    cfgs = ablation_configs(size, steps, seed, batch, overrides, also)
    baselines = parse_baselines(baselines)
    if limit is not None and limit < 1:
        raise InpaintsslError(f"--limit {limit}: must be at least 1")
    check_dependencies(baselines)
    check_report_dir(out, overwrite or resume)                      # fail now, not after training
    for src in sources:                                             # missing / empty folders too
        if not is_cache_dir(Path(src)):
            gather_files([Path(src)])
    for src in eval_sources or []:
        if not Path(src).exists():
            raise InpaintsslError(f"{src}: no such file or folder; check --eval-data")
    taken = [str(out / "runs" / n) for n in cfgs if (out / "runs" / n / "config.json").exists()]
    if taken and not (resume or overwrite):
        raise InpaintsslError(f"{', '.join(taken)}: already hold runs; pass --resume to continue (or keep) "
                              "them, --overwrite to retrain, or choose another --out")
    runs = {name: out / "runs" / name for name in cfgs}
    for cfg in cfgs.values():
        cfg.train.device = device or cfg.train.device
    summaries = train_models(cfgs, runs, sources, resume, overwrite, progress, log, before=lambda name, i, again: log(
        f"== {name} ({cfgs[name].preset}): {'resuming' if again else 'training'} {cfgs[name].train.steps} steps "
        f"-> {runs[name]}"))
    seconds = {name: s.get("seconds") for name, s in summaries.items()}   # None: already finished, kept
    log(f"== evaluating {', '.join(cfgs)}" + (f" and {', '.join(baselines)}" if baselines else ""))
    title = " / ".join(["M1", "M2", "M3", *also])
    result = evaluate_models(cfgs, runs, seconds, sources, eval_sources, out,
                             f"Ablation {title} at {size} px (paper sections 5.4 and 6.1)", baselines, limit, seed,
                             size, device or "auto", grid_rows, progress, log)
    return {"runs": runs, "report": out / "report.md", "summary": result.summary()}
