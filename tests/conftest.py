"""Shared fixtures: tiny synthetic photo folders and a smoke-preset run trained once per session."""

from __future__ import annotations

import os
from pathlib import Path

# Before torch loads (here and in the subprocesses the tests start): OpenMP threads that spin while
# waiting lose whole time slices when the 2 cores are shared, which made small models up to 20x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest
from PIL import Image

from inpaintssl.config import apply_overrides

from inpaintssl.presets import get_preset
from inpaintssl.gan.train import train

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
COCO_TRAIN = SHARED_DATA / "coco-sample" / "train2017"
COCO_VAL = SHARED_DATA / "coco-sample" / "val2017"
VOC2007 = SHARED_DATA / "voc2007-sample" / "VOCdevkit" / "VOC2007"

needs_coco = pytest.mark.skipif(not COCO_TRAIN.is_dir(),
                                reason=f"real photos not found at {COCO_TRAIN} (shared data is only on dev/CI machines)")


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The test models are tiny: one intra-op thread is as fast and immune to a busy machine."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def synthetic_photo(rng: np.random.Generator, h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth, photo-like (H, W, 3) uint8 image: colour gradients plus a soft blob."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    gy, gx = rng.uniform(-1.5, 1.5, size=(2, 3))
    img = base + gy * yy[..., None] + gx * xx[..., None]
    cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(6, 16)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
    img = img + blob * rng.uniform(-80, 80, size=3)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_photos(folder: Path, n: int, seed: int = 0, h: int = 48, w: int = 64) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / (f"img_{i:03d}.png" if i % 2 else f"img_{i:03d}.jpg")
        Image.fromarray(synthetic_photo(rng, h, w)).save(p, quality=95)
        paths.append(p)
    return paths


@pytest.fixture(scope="session")
def tiny_photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    write_photos(folder, 12, seed=1)
    return folder


def smoke_config(steps: int, *overrides: str):
    cfg = get_preset("smoke")
    return apply_overrides(cfg, [f"train.steps={steps}", "train.sample_every=1000", "train.ckpt_every=1000",
                                 *overrides])


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, tiny_photos) -> Path:
    """A smoke-preset run (20 steps) on the tiny synthetic photos; used by the inference tests."""
    run = tmp_path_factory.mktemp("runs") / "smoke"
    train(smoke_config(20), run, [tiny_photos], progress=False, log=lambda *_: None)
    return run
