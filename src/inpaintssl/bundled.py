"""The trained model that ships inside the package, selected by the name ``bundled``.

    ckpt = load_bundled()                       # a checkpoint dict, like load_checkpoint("runs/m1")
    inpainter = Inpainter.from_checkpoint("bundled")
    inpaintssl inpaint --center photo.jpg --out filled/     # --checkpoint defaults to bundled

Files (package data under ``inpaintssl/weights/``):

* ``bundled.safetensors``  the EMA generator's state dict, floating tensors in fp16 (half the size of
  fp32; the fills differ from fp32 weights by rounding only), loaded back as fp32;
* ``bundled.json``         the file's SHA-256, the resolved training config, the training step and a
  summary of how it was trained (the model card, ``docs/MODEL_CARD.md``, has the whole story).

Loading checks the SHA-256 before reading a byte of tensor data: a missing, truncated or altered file is
a one-line error that says how to reinstall, never a traceback. safetensors holds tensors only (no
pickle), so loading runs no code. The name ``bundled`` always means this model; a run folder that
happens to be called ``bundled`` is reached as ``./bundled``.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from .errors import InpaintsslError
from .files import atomic_write, atomic_write_text

BUNDLED = "bundled"      # the inpainting model: inpaint, serve and demo use it by default
SSL = "ssl"              # the shipped U-Net encoder for transfer (--init ssl): centre-hole pretext, 36,000 steps
WEIGHTS_FILE = "bundled.safetensors"
INFO_FILE = "bundled.json"
REINSTALL = "reinstall inpaintssl (pip install --force-reinstall --no-deps inpaintssl, or pip install -e . in a checkout)"


# the shipped models, by name -> their folder under weights/ ("" = weights/ itself)
SHIPPED = {BUNDLED: "", SSL: "ssl"}


def is_bundled(name) -> bool:
    """True for the exact name of a shipped model, ``bundled`` or ``ssl`` (a str or a relative Path spelled so)."""
    return str(name) in SHIPPED


def weights_dir(name: str = BUNDLED) -> Path:
    """The folder of the shipped model ``name``."""
    return Path(str(resources.files("inpaintssl") / "weights")) / SHIPPED[str(name)]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundled_info(folder: Path | None = None) -> dict:
    """The recorded metadata (sha256, config, step, training summary) of the bundled model."""
    path = Path(folder or weights_dir()) / INFO_FILE
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InpaintsslError(f"the bundled model's record {path} is missing or unreadable "
                              f"({type(e).__name__}); {REINSTALL}") from None
    if not isinstance(info, dict) or not {"sha256", "config"} <= set(info):
        raise InpaintsslError(f"the bundled model's record {path} is incomplete; {REINSTALL}")
    return info


def load_bundled(folder: Path | None = None, map_location="cpu", name: str = BUNDLED) -> dict:
    """The bundled model as a checkpoint dict: ``generator`` (fp32 state dict), ``config``, ``step``,
    ``path``, ``bundled=True``. ``folder`` (default: the package's) is for tests and the export script."""
    folder = Path(folder or weights_dir(name))
    info = bundled_info(folder)
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise InpaintsslError(f"the bundled model's weights {path} are missing; {REINSTALL}")
    digest = sha256_file(path)
    if digest != info["sha256"]:
        raise InpaintsslError(f"the bundled model's weights {path} are corrupted (SHA-256 {digest[:12]}... "
                              f"instead of {info['sha256'][:12]}...); {REINSTALL}")
    from safetensors.torch import load_file
    try:
        weights = load_file(str(path), device=str(map_location))
    except Exception as e:                                    # checked by hash, so this is unexpected
        raise InpaintsslError(f"{path}: cannot read the bundled weights ({type(e).__name__}); {REINSTALL}") from None
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    return {"generator": weights, "config": info["config"], "step": info.get("step"), "path": str(path),
            "bundled": True, "sources": info.get("training", {}).get("data", [])}


def export_bundled(generator_state: dict, config: dict, step: int, training: dict, folder: Path) -> dict:
    """Write ``bundled.safetensors`` (floating tensors as fp16) and ``bundled.json`` into ``folder``;
    returns the record. Used by ``scripts/make_bundled.py`` (maintainers), not at run time."""
    from safetensors.torch import save

    folder = Path(folder)
    tensors = {k: (v.detach().half() if v.is_floating_point() else v.detach()).contiguous().cpu()
               for k, v in generator_state.items()}
    blob = save(tensors)
    atomic_write(folder / WEIGHTS_FILE, lambda f: f.write(blob))
    info = {"sha256": sha256_file(folder / WEIGHTS_FILE), "file": WEIGHTS_FILE,
            "bytes": (folder / WEIGHTS_FILE).stat().st_size, "step": int(step), "config": config,
            "training": training}
    atomic_write_text(folder / INFO_FILE, json.dumps(info, indent=2) + "\n")
    return info
