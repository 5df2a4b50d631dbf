"""Where and how a reproduction ran: the machine, and the exact commands (the whole and each stage).

    machine_info("auto")   # {"cpu": "AMD EPYC", "cores": 2, "torch": "2.13.0+cpu", "device": "cpu", ...}
    commands(ctx)          # [(title, shell lines)]: the reproduce command, then one block per stage

The per-stage commands are the ordinary ``inpaintssl train / evaluate / plot-losses / transfer compare``
invocations that compute the same thing as each stage (``train --set`` carries every config value that
differs from the preset it starts from, so the configs are identical but for the preset's name).
"""

from __future__ import annotations

import os
import platform
import shlex
from importlib import metadata
from pathlib import Path

from ..gan.step import pick_device, resolve_precision
from .scales import config_overrides


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict:
    import torch
    dev = pick_device(device)
    info = {"cpu": cpu_model(), "logical cores": os.cpu_count(),
            "usable cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch": torch.__version__, "torch threads": torch.get_num_threads(), "device": str(dev),
            "precision": resolve_precision(dev), "python": platform.python_version(), "os": platform.platform()}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    try:
        info["inpaintssl"] = metadata.version("inpaintssl")
    except metadata.PackageNotFoundError:
        pass
    return info


def host_line(device: str) -> str:
    """One line naming the machine, stored with each stage (a reproduction may span machines)."""
    m = machine_info(device)
    return f"{m.get('gpu') or m['cpu']}, {m['usable cores']} cores, torch {m['torch']}, {m['device']}"


def _q(path) -> str:
    return shlex.quote(str(path))


def reproduce_command(settings: dict, out: Path) -> str:
    s = settings
    parts = ["inpaintssl reproduce", f"--scale {s['scale']}", *(f"--data {_q(p)}" for p in s["data"]),
             *(f"--eval-data {_q(p)}" for p in s["eval_data"]), f"--voc {_q(s['voc'])}", f"--out {_q(out)}",
             f"--seed {s['seed']}", f"--device {s['device']}"]
    if s.get("limit") is not None:
        parts.append(f"--limit {s['limit']}")
    return " ".join(parts)


def commands(ctx) -> list[tuple[str, str]]:
    """[(title, commands)] for the whole reproduction and each stage (run from the recorded folder)."""
    s, out, scale = ctx.settings, ctx.out, ctx.scale
    cd = f"cd {_q(s['cwd'])}"
    data = " ".join(f"--data {_q(p)}" for p in s["data"])
    eval_data = " ".join(f"--data {_q(p)}" for p in s["eval_data"])
    train = []
    for name, model in ctx.models.items():
        sets = "".join(f" --set {_q(o)}" for o in config_overrides(model.cfg, model.base))
        train.append(f"inpaintssl train --preset {model.base} {data} --out {_q(ctx.run_dir(name))} "
                     f"--steps {model.cfg.train.steps} --mask center{sets}")
    runs = " ".join(_q(ctx.run_dir(n)) for n in ctx.models)
    limit = f" --limit {ctx.limit}" if ctx.limit is not None else ""
    evaluate = (f"inpaintssl evaluate --checkpoint {runs} {eval_data} --out {_q(out / 'evaluation')} "
                f"--baselines {','.join(scale.baselines)} --mask center{limit} --seed {ctx.seed} "
                f"--size {scale.image_size} --grid-rows {scale.figure_rows} --device {ctx.device} --overwrite")
    curves = f"inpaintssl plot-losses {runs} --out {_q(out / 'figures' / 'loss_curves.png')} --overwrite"
    t = ctx.transfer_cfg
    transfer = (f"inpaintssl transfer compare --data {_q(s['voc'])} --init {_q(ctx.run_dir('m1'))} "
                f"--train-split {ctx.splits[0]} --test-split {ctx.splits[1]} --epochs {t.epochs} "
                f"--batch {t.batch_size} --lr {t.lr} --weight-decay {t.weight_decay} --seed {t.seed} "
                f"--workers {t.workers} --device {t.device} --out {_q(out / 'transfer')} --overwrite")
    if scale.voc_limit is not None:
        transfer = (f"# the {scale.name} scale uses {scale.voc_limit} evenly spaced photos of each split; "
                    f"'transfer compare' has no flag for that, so this trains on all of them\n{transfer}")
    return [
        ("The whole reproduction (rerun it to continue an interrupted one)", f"{cd}\n{reproduce_command(s, out)}"),
        ("1. Pretraining (one run per model)", "\n".join([cd, *train])),
        ("2. Evaluation beside the baselines", f"{cd}\n{evaluate}"),
        ("3. Figures: the loss curves (Figures 3, 5, 6 are drawn by the figures stage itself)",
         f"{cd}\n{curves}"),
        ("4. Transfer to VOC (Table 3, Figure 7)", f"{cd}\n{transfer}"),
    ]
