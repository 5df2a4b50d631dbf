"""The stages of ``inpaintssl reproduce``, in order, each a plain function of a :class:`Context`.

    ctx = Context(out, scale, models, sources, eval_sources, voc, splits, transfer_cfg, limit=8)
    for stage in STAGES:
        stage.run(ctx)                      # the pipeline adds skipping, timing, stages.json, errors

=========== ================================================== ============================================
stage       what (engine function)                             outputs under OUT
=========== ================================================== ============================================
pretrain    M1, M2, M3 and m1-plus alike (``gan.train.train``)  ``runs/<name>/`` (run folders)
evaluate    the models beside Telea / NS / mean on the same     ``evaluation/`` (report.md, metrics.json,
            central holes (``evaluation.evaluate`` + report)    per_image.csv, grid.png, loss_curves.png)
figures     Figures 3 (M1), 5 (M2), 6 (M3) on fixed unseen      ``figures/`` (figure*.png,
            photos, and the loss curves                         loss_curves.png)
transfer    VOC classification from the M1 encoder and from     ``transfer/`` (report.md, metrics.json,
            random init (``transfer.inits.compare_table3``)     history.png = Figure 7, pretrained/, random/)
probes      linear probes at every depth (transfer.probe)      ``probes/result.json``
report      ``report.md`` and the self-contained ``report.html`` ``report.md``, ``report.html``
=========== ================================================== ============================================

A stage returns a dict that the pipeline stores in its record of ``stages.json``; it raises
:class:`SkipStage` to be recorded as skipped with a reason. ``Stage.inputs`` is what the stage's result
depends on (hashed into its fingerprint, together with the fingerprints of the stages it ``needs``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoint import atomic_write_text, load_checkpoint
from ..config import config_to_dict
from ..errors import InpaintsslError
from ..evaluation.ablation import evaluate_models, train_models
from ..evaluation.plots import plot_loss_curves, read_metrics
from ..gan.step import build_state, pick_device, train_step, training_masks
from ..transfer.probe import probes
from ..transfer.inits import compare_table3
from ..transfer.train import TransferConfig
from ..transfer.voc import LabelledImages
from .figures import FigurePhotos, save_figure_grid
from .scales import ModelRun, Scale




# the paper's figures: model -> (file under OUT/figures, caption)
FIGURES = {
    "m1": ("figure3_m1.png", "Figure 3 (M1): real | corrupted | reconstructed"),
    "m2": ("figure5_m2.png", "Figure 5 (M2, no global discriminator)"),
    "m3": ("figure6_m3.png", "Figure 6 (M3, no skips, predicts the patch)"),
    "m1-plus": ("figure3_m1-plus.png", "The improved recipe m1-plus (ours, not in the paper), same layout"),
}


class SkipStage(Exception):
    """Raised by a stage that does not apply; the message is the reason recorded and reported."""


@dataclass
class Context:
    """Everything the stages read. ``records`` is stages.json's per-stage dict; ``rec`` the running stage's
    record and ``save`` writes stages.json (for progress a stage wants kept if it is interrupted)."""
    out: Path
    scale: Scale
    models: dict[str, ModelRun]
    sources: list[Path]
    eval_sources: list[Path]
    voc: Path
    splits: tuple[str, str]
    transfer_cfg: TransferConfig
    voc_data: tuple[LabelledImages, LabelledImages] | None = None
    limit: int | None = None
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    log: Callable[[str], None] = print
    records: dict = field(default_factory=dict)
    rec: dict = field(default_factory=dict)
    save: Callable[[], None] = lambda: None
    settings: dict = field(default_factory=dict)    # the command's inputs as given (pipeline.Settings)
    # writes report.md / report.html from every stage's outputs: report.write_reports, set by the pipeline
    # (report.py reads this module's STAGES, so this module does not import it)
    write_reports: Callable[["Context"], None] | None = None
    cache: dict = field(default_factory=dict)

    def run_dir(self, name: str) -> Path:
        return self.out / "runs" / name

    def runs(self) -> dict[str, Path]:
        return {name: self.run_dir(name) for name in self.models}

    def sub(self, msg: str) -> None:
        self.log(f"    {msg}")


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    run: Callable[[Context], dict]
    outputs: Callable[[Context], list[Path]]
    inputs: Callable[[Context], dict]
    describe: Callable[[Context], str]
    estimate: Callable[[Context], float]        # nominal seconds, before this machine's measured speed
    needs: tuple[str, ...] = ()


def _paths(paths) -> list[str]:
    return [str(Path(p).resolve()) for p in paths]


# ---------------------------------------------------------------- 1. pretraining

def _done_steps(run: Path) -> int:
    try:
        rows = read_metrics(run)
    except InpaintsslError:                       # no run yet (or a damaged log: train decides what to do)
        return 0
    return int(rows[-1]["step"]) if rows else 0        # a row's step counts the finished steps


def time_steps(model: ModelRun, device: str, steps: int = 2) -> float:
    """Seconds per training step of this config, measured on random data after one warm-up step."""
    cfg = model.cfg
    state = build_state(cfg, pick_device(device))
    b, s = cfg.train.batch_size, cfg.model.image_size
    real = torch.rand(b, 3, s, s, generator=torch.Generator().manual_seed(0)).to(state.device) * 2 - 1
    mask = training_masks(cfg, 0, b).to(state.device)
    train_step(state, real, mask, metrics=False)
    if state.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(state, real, mask, metrics=False)
    if state.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def _thinned(log: Callable[[str], None]) -> Callable[[str], None]:
    """``log`` for train, keeping about ten of its "step N/M ..." lines per run (the stage lines hold the ETA)."""
    def out(msg: str) -> None:
        m = re.match(r"step (\d+)/(\d+)", msg)
        if m is None or int(m[1]) % max(1, int(m[2]) // 10) == 0 or m[1] == m[2]:
            log(msg)
    return out


def _remaining(ctx: Context) -> dict[str, int]:
    return {n: max(0, m.cfg.train.steps - _done_steps(ctx.run_dir(n))) for n, m in ctx.models.items()}


def estimate_pretrain(ctx: Context) -> float:
    """Remaining steps x the measured speed of the first steps of each model (compute only)."""
    left = _remaining(ctx)
    speed = ctx.cache.setdefault("step_s", {})
    for name, model in ctx.models.items():
        if left[name] and name not in speed:
            speed[name] = time_steps(model, ctx.device)
    return sum(left[n] * speed.get(n, 0.0) for n in ctx.models)


def pretrain(ctx: Context) -> dict:
    """The ablation's training (:func:`..evaluation.ablation.train_models`) with an ETA per model, corrected
    by the measured speed as runs finish, and the record saved after each."""
    runs = ctx.rec.setdefault("runs", {})
    left, speed = _remaining(ctx), ctx.cache.get("step_s", {})
    est = {"factor": 1.0, "spent": 0.0, "predicted": 0.0}

    def before(name: str, i: int, _again: bool) -> None:
        eta = left[name] * speed.get(name, 0.0) * est["factor"]
        rest = sum(left[n] * speed.get(n, 0.0) for n in list(ctx.models)[i - 1:]) * est["factor"]
        ctx.sub(f"{name} ({i}/{len(ctx.models)}, preset {ctx.models[name].cfg.preset}): "
                + (f"{left[name]} steps to go; ETA {fmt_seconds(eta)} (stage {fmt_seconds(rest)})"
                   if left[name] else "complete"))

    def after(name: str, summary: dict, took: float) -> None:
        if left[name] and speed.get(name):          # the measured speed, data loading included, takes over
            est["spent"], est["predicted"] = est["spent"] + took, est["predicted"] + left[name] * speed[name]
            est["factor"] = est["spent"] / est["predicted"]
        kept = runs.get(name, {}).get("seconds") or 0.0
        runs[name] = {"step": summary["step"], "seconds": round(kept + (summary.get("seconds") or 0.0), 2)}
        ctx.save()

    train_models({n: copy.deepcopy(m.cfg) for n, m in ctx.models.items()}, {n: ctx.run_dir(n) for n in ctx.models},
                 ctx.sources, resume=True, overwrite=True, progress=ctx.progress, log=_thinned(ctx.sub),
                 before=before, after=after)
    return {"runs": runs}


def _pretrain_inputs(ctx: Context) -> dict:
    cfgs = {}
    for name, model in ctx.models.items():
        d = config_to_dict(model.cfg)
        d["train"].pop("device")                    # resuming on another device is the same run
        cfgs[name] = d
    return {"models": cfgs, "data": _paths(ctx.sources)}


# ---------------------------------------------------------------- 2. evaluation

def evaluate(ctx: Context) -> dict:
    runs = ctx.runs()
    kept = ctx.records.get("pretrain", {}).get("runs", {})
    seconds = {n: kept.get(n, {}).get("seconds") for n in runs}
    result = evaluate_models({n: m.cfg for n, m in ctx.models.items()}, runs, seconds, ctx.sources, ctx.eval_sources,
                             ctx.out / "evaluation",
                             f"M1 / M2 / M3 / m1-plus beside the classical baselines ({ctx.scale.image_size} px)",
                             ctx.scale.baselines, ctx.limit, ctx.seed, ctx.scale.image_size, ctx.device,
                             ctx.scale.figure_rows, log=ctx.sub)
    return {"photos": len(result.images), "skipped_files": len(result.skipped)}


def _eval_inputs(ctx: Context) -> dict:
    return {"eval_data": _paths(ctx.eval_sources), "limit": ctx.limit, "seed": ctx.seed,
            "baselines": list(ctx.scale.baselines), "size": ctx.scale.image_size, "rows": ctx.scale.figure_rows}


def _eval_photos(ctx: Context) -> int:
    return ctx.limit or ctx.cache.get("eval_photos", 100)


# ---------------------------------------------------------------- 3. figures

def figures(ctx: Context) -> dict:
    folder = ctx.out / "figures"
    photos = FigurePhotos.load(ctx.eval_sources, ctx.scale.image_size, ctx.scale.figure_rows, ctx.seed, ctx.sub)
    composites = photos.run(ctx.runs(), ctx.device)
    for name, (file, _) in FIGURES.items():
        save_figure_grid(photos, composites[name], ctx.scale.figure_rows, folder / file)
    plot_loss_curves(ctx.runs(), folder / "loss_curves.png")
    return {"photos": photos.names}


def _figure_inputs(ctx: Context) -> dict:
    return {"eval_data": _paths(ctx.eval_sources), "seed": ctx.seed, "size": ctx.scale.image_size,
            "rows": ctx.scale.figure_rows}


# ---------------------------------------------------------------- 4. transfer (+ the probes hook)

def transfer(ctx: Context) -> dict:
    train_data, test_data = ctx.voc_data
    ckpt = load_checkpoint(ctx.run_dir("m1"))
    results = compare_table3(train_data, test_data, ckpt, ctx.transfer_cfg, ctx.out / "transfer",
                             overwrite=True, progress=ctx.progress, log=ctx.sub)
    return {name: {"test_top1": r["test"]["top1"], "train_top1": r["train"]["top1"]} for name, r in results.items()}


def _transfer_inputs(ctx: Context) -> dict:
    cfg = dataclasses.asdict(ctx.transfer_cfg)
    for volatile in ("device", "workers"):
        cfg.pop(volatile)
    return {"voc": str(ctx.voc.resolve()), "splits": list(ctx.splits), "voc_limit": ctx.scale.voc_limit,
            "transfer": cfg}


def _transfer_photos(ctx: Context) -> int:
    tr, te = ctx.voc_data
    return 2 * (ctx.transfer_cfg.epochs * (len(tr.files) + len(te.files)) + len(tr.files))


def probe_stage(ctx: Context) -> dict:
    train_data, test_data = ctx.voc_data
    result = probes(runs=ctx.runs(), train_data=train_data, test_data=test_data, out_dir=ctx.out / "probes",
                    log=ctx.sub)
    atomic_write_text(ctx.out / "probes" / "result.json", json.dumps(result, indent=2, default=str) + "\n")
    return {}


def _report(ctx: Context) -> dict:
    if ctx.write_reports is None:
        raise SkipStage("no report writer given (the pipeline passes reproduce.report.write_reports)")
    ctx.write_reports(ctx)
    return {}


def _report_inputs(ctx: Context) -> dict:
    return {n: [r.get("status"), r.get("fingerprint"), r.get("seconds")] for n, r in ctx.records.items()
            if n != "report"}


def fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


def _n_methods(ctx: Context) -> int:
    return len(ctx.models) + len(ctx.scale.baselines)


STAGES: list[Stage] = [
    Stage("pretrain", "pretraining", pretrain,
          lambda c: [c.run_dir(n) / "checkpoints" / "latest.pt" for n in c.models], _pretrain_inputs,
          lambda c: f"{len(c.models)} models x {c.scale.steps} steps at {c.scale.image_size} px "
                    f"({', '.join(c.models)})",
          estimate_pretrain),
    Stage("evaluate", "evaluation", evaluate,
          lambda c: [c.out / "evaluation" / f for f in ("report.md", "metrics.json", "per_image.csv", "grid.png")],
          _eval_inputs,
          lambda c: f"{_n_methods(c)} methods on {_eval_photos(c)} photos of {', '.join(map(str, c.eval_sources))}",
          lambda c: _eval_photos(c) * _n_methods(c) * c.scale.s_per_eval_image, needs=("pretrain",)),
    Stage("figures", "figures", figures,
          lambda c: [c.out / "figures" / f for f in [*(f for f, _ in FIGURES.values()), "loss_curves.png"]],
          _figure_inputs,
          lambda c: f"Figures 3, 5, 6 on the first {c.scale.figure_rows} evaluation photos, loss curves",
          lambda c: c.scale.figure_rows * len(c.models) * c.scale.s_per_eval_image, needs=("pretrain",)),
    Stage("transfer", "transfer to VOC", transfer,
          lambda c: [c.out / "transfer" / f for f in ("report.md", "metrics.json", "history.png")],
          _transfer_inputs,
          lambda c: f"M1 encoder vs random init, {c.transfer_cfg.epochs} epoch(s) on {c.voc} "
                    f"({c.splits[0]} -> {c.splits[1]})",
          lambda c: _transfer_photos(c) * c.scale.s_per_transfer_image, needs=("pretrain",)),
    Stage("probes", "linear probes", probe_stage,
          lambda c: [c.out / "probes" / "result.json"],
          lambda c: dict(_transfer_inputs(c), available=True),
          lambda c: "linear probes of the encoders", lambda c: 0.0, needs=("pretrain",)),
    Stage("report", "report", _report,
          lambda c: [c.out / "report.md", c.out / "report.html"], _report_inputs,
          lambda c: "report.md and report.html", lambda c: 2.0),
]
