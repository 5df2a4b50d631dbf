"""The newcomer's demo model: train a small inpainter once on the bundled photos, cache it, reuse it.

    run = ensure_demo_run(default_cache_dir() / "demo-run", preset="smoke", steps=300)
    inpainter = Inpainter.from_checkpoint(run)          # then inpaintssl.app.serve.create_app(inpainter)

``inpaintssl demo`` calls this when no ``--checkpoint`` is given. Choices:

* data: the real photos shipped with scikit-image (:func:`inpaintssl.data.embedded_photos`), copied
  once into ``<cache>/demo-photos`` downscaled so their shorter side is 4x the model's input size. The
  trainer crops 87.5-100 % of the shorter side and resizes it to the model size, so the model sees
  the same content; loading a training sample drops from ~4.9 ms to ~0.9 ms (measured, smoke).
* masks: ``mixed`` (centre squares, rectangles, free-form strokes), because in the browser people
  paint strokes and rectangles anywhere; the paper's centre square alone fits them poorly. A
  patch-predicting preset (M3) keeps its centre mask, the only one it supports.
* reuse: a finished run with the same preset and at least ``steps`` steps is served as is; an
  interrupted one (Ctrl-C while training) is resumed; ``retrain=True`` starts over.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..checkpoint import load_checkpoint
from ..config import Config, apply_overrides
from ..presets import get_preset
from ..errors import InpaintsslError
from ..data.images import open_image

DEMO_PRESET = "smoke"
DEMO_STEPS = 300


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/inpaintssl`` or ``~/.cache/inpaintssl``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inpaintssl"


def demo_config(preset: str = DEMO_PRESET, steps: int = DEMO_STEPS, seed: int = 0) -> Config:
    """The demo's training config: ``preset`` with mixed hole shapes, one checkpoint at the end."""
    cfg = get_preset(preset)
    if cfg.model.predict != "patch":
        cfg.mask.kind = "mixed"
    apply_overrides(cfg, [f"train.steps={steps}", f"train.seed={seed}", f"train.ckpt_every={steps}",
                          f"train.sample_every={max(1, steps // 2)}", "data.workers=0"])
    return cfg.validate()


def prepare_demo_photos(folder: Path, min_side: int) -> list[Path]:
    """Downscaled PNG copies of the bundled photos (shorter side ``min_side`` at most) in ``folder``."""
    from ..data.folder import embedded_photos
    from ..data.images import save_png

    folder = Path(folder)
    out = []
    for src in embedded_photos():
        dst = folder / f"{src.stem}-{min_side}.png"
        if not dst.is_file():
            img = open_image(src)
            ratio = min_side / min(img.size)
            if ratio < 1:
                size = (max(1, round(img.width * ratio)), max(1, round(img.height * ratio)))
                img = img.resize(size, Image.BICUBIC, reducing_gap=3.0)
            save_png(np.asarray(img), dst)
        out.append(dst)
    return out


def finished_step(run_dir: Path) -> tuple[int, str] | None:
    """(step, preset) of the run's latest checkpoint, or None if it has none that loads."""
    try:
        ckpt = load_checkpoint(Path(run_dir))
    except InpaintsslError:
        return None
    return int(ckpt.get("step", 0)), str(ckpt["config"].get("preset"))


def ensure_demo_run(run_dir: Path, preset: str = DEMO_PRESET, steps: int = DEMO_STEPS, retrain: bool = False,
                    progress: bool = True, log=print) -> Path:
    """A run folder holding a trained demo model: reused, resumed or trained (see module docstring)."""
    from ..gan.train import train

    run_dir = Path(run_dir)
    have = None if retrain else finished_step(run_dir)
    if have is not None and have[1] == preset and have[0] >= steps:
        log(f"reusing the demo model in {run_dir} ({preset}, {have[0]} steps; --retrain to train anew)")
        return run_dir
    cfg = demo_config(preset, steps)
    photos = prepare_demo_photos(run_dir.parent / "demo-photos", 4 * cfg.model.image_size)
    resume = have is not None and have[1] == preset
    log(f"{'resuming' if resume else 'training'} a small {preset} demo model for {steps} steps on "
        f"{len(photos)} bundled photos into {run_dir} (once; later runs reuse it)")
    summary = train(cfg, run_dir, photos, resume=resume, overwrite=not resume, progress=progress, log=log)
    if summary.get("interrupted"):
        raise InpaintsslError(f"demo training interrupted at step {summary['step']}; run 'inpaintssl demo' "
                              "again to resume it")
    return run_dir
