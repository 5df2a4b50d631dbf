"""Checkpoints: one dict of state_dicts + step + config + format version, written atomically,
loaded without executing code.

    save_checkpoint(run / "checkpoints" / "latest.pt", {"step": 100, "config": {...}, "generator": sd, ...})
    ckpt = load_checkpoint("runs/m1")            # a run folder means its checkpoints/latest.pt

Layout of a run folder::

    RUN/config.json            resolved config
    RUN/metrics.jsonl          one JSON line per log step
    RUN/samples/step_NNNNNN.png  real | corrupted | reconstructed (paper Figure 3)
    RUN/checkpoints/latest.pt  written at the end of the run and on Ctrl-C / SIGTERM
    RUN/checkpoints/step_NNNNNN.pt  periodic

Saving writes a temp file in the same folder and renames it over the target, so a crash never leaves a
half-written ``latest.pt``. Loading uses ``torch.load(weights_only=True)``: a pickle that would run code
is refused with an error instead of being executed.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InpaintsslError
from .files import atomic_write, atomic_write_text   # noqa: F401  (re-exported: callers import them from here)

if TYPE_CHECKING:       # torch is imported inside the functions that use it: torch-free code (inpaintssl
    import torch        # prepare) imports this module without loading it

FORMAT_VERSION = 1
def read_json_record(path: Path, fmt: str, unreadable: str, foreign: str) -> dict:
    """A JSON object whose ``format`` field is ``fmt``; one-line errors (``unreadable`` / ``foreign`` say what
    to do) for a file that cannot be read or parsed, and for one of another kind."""
    import json
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InpaintsslError(f"{path}: cannot read ({e}); {unreadable}") from None
    if not isinstance(record, dict) or record.get("format") != fmt:
        raise InpaintsslError(f"{path}: {foreign}")
    return record


def save_checkpoint(path: Path, state: dict) -> None:
    import torch
    state = dict(state, format_version=FORMAT_VERSION)
    atomic_write(path, lambda f: torch.save(state, f))


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint file, or a run folder (its ``checkpoints/latest.pt``)."""
    path = Path(path)
    if path.is_dir():
        for cand in (path / "checkpoints" / "latest.pt", path / "latest.pt"):
            if cand.is_file():
                return cand
        raise InpaintsslError(f"{path}: folder has no checkpoints/latest.pt; pass a run folder made by "
                              "'inpaintssl train' or a .pt checkpoint file")
    if not path.exists():
        raise InpaintsslError(f"{path}: no such checkpoint file or run folder")
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load safely (no code execution). Raises InpaintsslError for anything that is not our checkpoint.

    The names ``bundled`` and ``ssl`` load the models shipped inside the package (:mod:`inpaintssl.bundled`)."""
    from .bundled import is_bundled, load_bundled
    if is_bundled(path):
        return load_bundled(map_location=map_location, name=str(path))
    import torch
    path = resolve_checkpoint(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        code = [ln for ln in lines if "GLOBAL" in ln or "global" in ln.split(":")[0]]
        if code:                                     # the pickle names a Python callable: never run it
            raise InpaintsslError(f"{path}: refused to load: the file holds Python objects that could run "
                                  f"code, which inpaintssl checkpoints never contain ({code[0][:120]})") from None
        raise InpaintsslError(f"{path}: not a readable PyTorch checkpoint (corrupt or not a .pt file)") from None
    except Exception as e:                           # any other failure of an untrusted file: corrupt / not ours
        first = (str(e).splitlines() or [""])[0][:160]
        raise InpaintsslError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(ckpt, dict) or "generator" not in ckpt or "config" not in ckpt:
        raise InpaintsslError(f"{path}: not an inpaintssl checkpoint (no generator weights or config)")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise InpaintsslError(f"{path}: checkpoint format {ckpt['format_version']} is newer than this "
                              f"inpaintssl understands ({FORMAT_VERSION}); upgrade inpaintssl")
    ckpt["path"] = str(path)
    return ckpt


def check_compatible(ckpt: dict, expected: dict, what: str = "this run") -> None:
    """Error naming both sides if the checkpoint's model config differs from ``expected`` (a config dict).

    A key missing on one side (a checkpoint written before that option existed) counts as its default."""
    import dataclasses
    from .config import ModelConfig
    defaults = dataclasses.asdict(ModelConfig())
    have, want = dict(defaults, **ckpt["config"].get("model", {})), dict(defaults, **expected.get("model", {}))
    diffs = [f"model.{k}={have.get(k)!r} vs {want.get(k)!r}" for k in sorted(set(have) | set(want))
             if have.get(k) != want.get(k)]
    if diffs:
        raise InpaintsslError(
            f"{ckpt.get('path', 'checkpoint')}: checkpoint of preset {ckpt['config'].get('preset')!r} "
            f"({have.get('image_size')} px) does not match {what} (preset {expected.get('preset')!r}, "
            f"{want.get('image_size')} px): {'; '.join(diffs)}")


def generator_weights(ckpt: dict) -> dict:
    """The generator state dict used for inference, evaluation and transfer: the moving average of the
    weights (``generator_ema``) when the run kept one (``train.ema`` > 0), else the trained weights."""
    return ckpt.get("generator_ema", ckpt["generator"])


def checkpoint_name(path: Path) -> str:
    """A run folder's name; 'run@step_000200' for a periodic checkpoint inside a run; else the file stem."""
    p = Path(path).resolve()
    if p.is_dir():
        return p.name
    if p.parent.name == "checkpoints":
        return p.parent.parent.name if p.stem == "latest" else f"{p.parent.parent.name}@{p.stem}"
    return p.stem


def unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``, ... if already in ``used``; the result is added to ``used``."""
    cand, k = name, 2
    while cand in used:
        cand, k = f"{name}-{k}", k + 1
    used.add(cand)
    return cand
