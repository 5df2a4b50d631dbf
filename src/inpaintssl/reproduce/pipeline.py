"""``inpaintssl reproduce``: check every input, then run the stages in order, each skipped when complete.

    settings = Settings(scale="tiny", data=["train2017"], eval_data=["val2017"], voc="VOCdevkit/VOC2007")
    state = run_reproduce(settings, Path("repro"))        # OUT/stages.json, OUT/report.md, OUT/report.html

**Before any training** every input is checked, each problem one :class:`InpaintsslError` line: the scale,
``--limit``, every ``--data`` / ``--eval-data`` folder (it exists and holds photos), the VOC folder (both
splits and their labels load), the optional packages the evaluation needs, and ``--out`` (new, empty, or
a reproduction made by this command: a folder that holds anything else is refused, even with --overwrite).

**Skip rule.** A stage's *fingerprint* hashes what its result depends on (its resolved inputs and the
fingerprints of the stages it needs). A stage is complete, and kept, when ``stages.json`` records it as
done (or skipped) with the same fingerprint and all its output files exist. Otherwise it runs: the
pretraining stage resumes each run from its ``latest.pt`` (so an interrupted reproduction continues,
exactly, with the same command or ``--resume``), later stages are redone from their inputs. Pretraining
with other settings than the recorded ones is refused (use ``--overwrite`` or another ``--out``);
``--overwrite`` deletes only what this command writes (:data:`OUT_ENTRIES`).

**Failures.** A stage that raises is recorded as failed with its error, stages that need it are
blocked, the others still run, the report marks them, and the command ends with one error naming the
failed stage(s); the finished stages stay as they are. Ctrl-C records the stage as interrupted.

``stages.json``: ``{"format", "version", "settings", "stages": {name: {"status": pending | running | done
| skipped | failed | blocked | interrupted, "this_run": ran | kept | ..., "fingerprint", "seconds",
"started", "finished", "host", "error" | "reason", ...stage details}}}``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..checkpoint import atomic_write_text, read_json_record
from ..data.images import list_images
from ..data.sources import gather_files, is_cache_dir
from ..errors import InpaintsslError
from ..evaluation.evaluate import check_dependencies
from ..transfer.voc import LabelledImages, find_voc_root, is_voc_root, load_labelled
from .provenance import host_line
from .scales import get_scale, pretrain_models, transfer_config
from .report import write_reports
from .stages import STAGES, Context, SkipStage, fmt_seconds

STATE_FILE = "stages.json"
STATE_FORMAT, STATE_VERSION = "inpaintssl-reproduce", 1
OUT_ENTRIES = ("runs", "evaluation", "figures", "transfer", "probes", "report.md", "report.html", STATE_FILE)
SPLIT_PAIRS = (("trainval", "test"), ("train", "val"), ("train", "test"))    # VOC2007 first, VOC2012 (the paper's)


@dataclass
class Settings:
    """The command's inputs as given (paths relative to ``cwd``), saved in stages.json for ``--resume``."""
    scale: str
    data: list[str]
    eval_data: list[str]
    voc: str
    seed: int = 0
    limit: int | None = None         # evaluation photos; None = the scale's
    device: str = "auto"
    cwd: str = field(default_factory=os.getcwd)

    def path(self, p: str) -> Path:
        return Path(p) if Path(p).is_absolute() else Path(self.cwd) / p


def read_state(out: Path) -> dict | None:
    path = Path(out) / STATE_FILE
    if not path.is_file():
        return None
    return read_json_record(path, STATE_FORMAT, "pass --overwrite to start the reproduction again",
                            "not a stages file of 'inpaintssl reproduce'; choose another --out")


def saved_settings(out: Path) -> Settings:
    """The settings of the reproduction in ``out`` (for --resume)."""
    state = read_state(out)
    if state is None:
        raise InpaintsslError(f"{out}: nothing to resume (no {STATE_FILE}); drop --resume to start a reproduction")
    return Settings(**state["settings"])


def fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stage_fingerprint(stage, ctx: Context, fps: dict[str, str]) -> str:
    """Hash of the stage's inputs and the fingerprints of the stages it needs (``fps``)."""
    return fingerprint([stage.inputs(ctx), [fps.get(d) for d in stage.needs]])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- input checks (before any training)

def _photo_folder(path: Path, flag: str, cache_ok: bool = False) -> int:
    if not path.exists():
        raise InpaintsslError(f"{path}: no such folder or file; check {flag}")
    if cache_ok and is_cache_dir(path):
        return 0
    if flag == "--data":
        return len(gather_files([path]))                  # its own one-line errors (empty folder, not an image)
    found = len(list_images(path))
    if not found:
        raise InpaintsslError(f"{path}: no photos (JPEG/PNG/WebP/BMP/TIFF) in this folder or its sub-folders; "
                              f"check {flag}")
    return found


def voc_splits(root: Path) -> tuple[str, str]:
    """(train split, test split): trainval/test where both exist (VOC2007), else train/val (VOC2012) ..."""
    if not root.is_dir():
        raise InpaintsslError(f"{root}: no such folder; --voc takes a VOCdevkit/VOC20xx folder")
    voc = is_voc_root(root) or any(is_voc_root(p) for p in root.glob("VOC*"))
    base = find_voc_root(root) if voc else root
    for pair in SPLIT_PAIRS:
        if all((base / "ImageSets" / "Main" / f"{s}.txt").is_file() if voc else (base / s).is_dir() for s in pair):
            return pair
    raise InpaintsslError(f"{root}: no train/test pair of splits (looked for "
                          f"{', '.join('+'.join(p) for p in SPLIT_PAIRS)} in ImageSets/Main); check --voc")


def subsample(data: LabelledImages, limit: int | None) -> LabelledImages:
    """``limit`` evenly spaced images of a split (all of them if it has no more)."""
    n = len(data.files)
    if limit is None or n <= limit:
        return data
    idx = np.unique(np.linspace(0, n - 1, limit).round().astype(int))
    return dataclasses.replace(data, files=[data.files[i] for i in idx], labels=data.labels[idx],
                               source=f"{data.source} ({len(idx)} of {n} images, evenly spaced)")


def check_out(out: Path, resume: bool, overwrite: bool) -> dict | None:
    """The recorded state of ``out`` (None for a new reproduction); refuses anything that is not ours."""
    if resume and overwrite:
        raise InpaintsslError("give --resume or --overwrite, not both")
    if out.exists() and not out.is_dir():
        raise InpaintsslError(f"{out}: is a file; --out takes a folder (new, empty, or an earlier reproduction)")
    state = read_state(out)
    if state is None and resume:
        raise InpaintsslError(f"{out}: nothing to resume (no {STATE_FILE}); drop --resume to start a reproduction")
    if state is None and out.is_dir() and any(out.iterdir()):
        names = sorted(p.name for p in out.iterdir())
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise InpaintsslError(f"{out}: holds something else ({shown}) "
                              "and no stages.json; choose a new or empty --out")
    return state


def build_context(settings: Settings, out: Path, progress: bool, log) -> Context:
    """Check every input (module docstring) and resolve the scale's models and transfer settings."""
    scale = get_scale(settings.scale)
    limit = settings.limit if settings.limit is not None else scale.eval_limit
    if limit is not None and limit < 1:
        raise InpaintsslError(f"--limit {limit}: must be at least 1")
    if not settings.data or not settings.eval_data or not settings.voc:
        raise InpaintsslError("reproduce needs --data, --eval-data and --voc")
    sources = [settings.path(p) for p in settings.data]
    for src in sources:
        _photo_folder(src, "--data", cache_ok=True)
    if any(is_cache_dir(s) for s in sources) and len(sources) > 1:
        raise InpaintsslError("a prepared cache must be the only --data (prepare one cache from all the folders)")
    eval_sources = [settings.path(p) for p in settings.eval_data]
    n_eval = sum(_photo_folder(src, "--eval-data") for src in eval_sources)
    voc = settings.path(settings.voc)
    splits = voc_splits(voc)
    train_data = load_labelled(voc, splits[0])
    test_data = load_labelled(voc, splits[1], classes=train_data.classes)
    check_dependencies(scale.baselines)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InpaintsslError("the figures need matplotlib, which is not installed: "
                              "pip install 'inpaintssl[eval]'") from None
    ctx = Context(out, scale, pretrain_models(scale, settings.seed, settings.device), sources, eval_sources, voc,
                  splits, transfer_config(scale, settings.seed, settings.device),
                  (subsample(train_data, scale.voc_limit), subsample(test_data, scale.voc_limit)),
                  limit=limit, seed=settings.seed, device=settings.device, progress=progress, log=log,
                  settings=dataclasses.asdict(settings), write_reports=write_reports)
    ctx.cache["eval_photos"] = min(n_eval, limit or n_eval)
    return ctx


def _refuse_other_pretraining(state: dict, settings: Settings, fp: str, out: Path) -> None:
    old = state.get("stages", {}).get("pretrain", {}).get("fingerprint")
    if old is None or old == fp:
        return
    was, now = state.get("settings", {}), dataclasses.asdict(settings)
    diffs = [f"--{k.replace('_', '-')} {was.get(k)} -> {now[k]}" for k in ("scale", "data", "seed")
             if was.get(k) != now[k]]
    raise InpaintsslError(f"{out}: holds a reproduction pretrained with other settings "
                          f"({'; '.join(diffs) or 'the model configs differ (another inpaintssl version?)'}); "
                          "pass --overwrite to start again, or choose another --out")


# ---------------------------------------------------------------- running the stages

@dataclass
class Pace:
    """This machine against the scale's nominal costs, from the stages run so far in this invocation. The
    factor is bounded to [1/4, 4]: at small scales a stage's time is mostly fixed overhead."""
    spent: float = 0.0
    nominal: float = 0.0

    def eta(self, stage: str, estimate: float) -> float:
        if stage == "pretrain":                     # already measured: the first steps of each model
            return estimate
        return estimate * min(4.0, max(0.25, self.spent / self.nominal if self.nominal else 1.0))

    def add(self, stage: str, took: float, estimate: float) -> None:
        if stage != "pretrain" and estimate > 0:
            self.spent, self.nominal = self.spent + took, self.nominal + estimate


def run_stage(stage, ctx: Context, rec: dict, fp: str, host: str, pace: Pace, tag: str) -> None:
    """Run one stage, recording in ``rec`` what happened (done, skipped, failed; interrupted re-raises)."""
    log = ctx.log
    runs = rec.get("runs") if stage.name == "pretrain" and rec.get("fingerprint") == fp else None
    rec.clear()
    rec.update(status="running", this_run="running", fingerprint=fp, started=_now(), host=host)
    if runs:
        rec["runs"] = runs                               # per-run times of an interrupted pretraining
    ctx.rec = rec
    ctx.save()
    t0 = time.perf_counter()
    try:
        est = stage.estimate(ctx)
        log(f"{tag}: {stage.describe(ctx)}; ETA {fmt_seconds(pace.eta(stage.name, est))}")
        t0 = time.perf_counter()
        extra = stage.run(ctx)
    except SkipStage as e:
        rec.update(status="skipped", this_run="skipped", reason=str(e))
        log(f"{tag}: skipped ({e})")
    except KeyboardInterrupt:
        rec.update(status="interrupted", this_run="interrupted", seconds=round(time.perf_counter() - t0, 2))
        ctx.save()
        raise
    except Exception as e:                               # recorded; the other stages still run
        msg = str(e) if isinstance(e, InpaintsslError) else f"{type(e).__name__}: {e}"
        rec.update(status="failed", this_run="failed", error=msg, seconds=round(time.perf_counter() - t0, 2))
        if not isinstance(e, InpaintsslError):           # a bug: keep its traceback
            rec["traceback"] = traceback.format_exc()
            log(rec["traceback"].rstrip())
        log(f"{tag}: FAILED after {fmt_seconds(rec['seconds'])}: {msg}")
    else:
        took = time.perf_counter() - t0
        rec.update(extra or {}, status="done", this_run="ran", seconds=round(took, 2), finished=_now())
        pace.add(stage.name, took, est)
        log(f"{tag}: done in {fmt_seconds(took)}")


def run_reproduce(settings: Settings, out: Path, resume: bool = False, overwrite: bool = False,
                  progress: bool = True, log=print) -> dict:
    """Check the inputs, then run (or keep) every stage; returns the final stages.json dict."""
    out = Path(out)
    state = check_out(out, resume, overwrite)
    ctx = build_context(settings, out, progress, log)
    fps: dict[str, str] = {}
    pre = STAGES[0]
    fps[pre.name] = stage_fingerprint(pre, ctx, fps)
    if state is not None and overwrite:
        for name in OUT_ENTRIES:
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        state = None
    if state is not None:
        _refuse_other_pretraining(state, settings, fps[pre.name], out)
    records = (state or {}).get("stages", {})
    state = {"format": STATE_FORMAT, "version": STATE_VERSION, "settings": dataclasses.asdict(settings),
             "stages": {s.name: records.get(s.name, {"status": "pending"}) for s in STAGES}}
    ctx.records = state["stages"]
    ctx.save = lambda: atomic_write_text(out / STATE_FILE, json.dumps(state, indent=2) + "\n")
    out.mkdir(parents=True, exist_ok=True)
    ctx.save()
    host, pace = host_line(settings.device), Pace()
    for i, stage in enumerate(STAGES, 1):
        tag, rec = f"[{i}/{len(STAGES)}] {stage.title}", ctx.records[stage.name]
        fps[stage.name] = fp = stage_fingerprint(stage, ctx, fps)
        blocked = [d for d in stage.needs if ctx.records[d].get("status") != "done"]
        if blocked:
            reason = "; ".join(f"needs {d}, which is {ctx.records[d].get('status')}" for d in blocked)
            rec.clear()
            rec.update(status="blocked", this_run="blocked", reason=reason)
            log(f"{tag}: blocked ({reason})")
        elif (rec.get("status") in ("done", "skipped") and rec.get("fingerprint") == fp
              and all(p.exists() for p in stage.outputs(ctx))):
            rec["this_run"] = "kept"
            note = rec.get("reason") or f"ran {fmt_seconds(rec.get('seconds', 0))} on {rec.get('finished')}"
            log(f"{tag}: complete, kept ({note})")
        else:
            run_stage(stage, ctx, rec, fp, host, pace, tag)
        ctx.save()
    failed = {n: r["error"] for n, r in ctx.records.items() if r.get("status") == "failed"}
    if failed:
        raise InpaintsslError(
            "; ".join(f"stage '{n}' failed: {err}" for n, err in failed.items())
            + f". The finished stages are kept in {out}; fix the cause and run the same command again to continue")
    return state
