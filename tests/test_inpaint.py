"""Inference on photos of any size: the hole is filled, every other pixel is bit-identical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from conftest import COCO_TRAIN, COCO_VAL, needs_coco, smoke_config, synthetic_photo
from inpaintssl.cli import main
from inpaintssl.errors import InpaintsslError
from inpaintssl.gan.inpainter import Inpainter, center_hole, context_window
from inpaintssl.gan.train import train


@pytest.fixture(scope="module")
def inpainter(smoke_run):
    return Inpainter.from_checkpoint(smoke_run)


def run_cli(*args):
    """Run the CLI in-process; returns the exit code."""
    try:
        main(list(map(str, args)))
    except SystemExit as e:
        return e.code
    return 0


# step_000002.pt of `inpaintssl train --preset smoke --steps 3 --set data.workers=0 --set train.ckpt_every=2`
# run with commit 893015b, the last before the split into sub-packages (weights only: 1 MB)
PRESPLIT_CHECKPOINT = Path(__file__).parent / "data" / "presplit_smoke_step2.pt"


def test_checkpoint_from_before_the_package_split_loads_and_inpaints():
    from inpaintssl.checkpoint import load_checkpoint
    from inpaintssl.config import config_from_dict
    from inpaintssl.transfer.train import Classifier, TransferConfig, load_encoder
    ckpt = load_checkpoint(PRESPLIT_CHECKPOINT)
    assert ckpt["step"] == 2 and ckpt["config"]["preset"] == "smoke"
    model = Inpainter.from_checkpoint(PRESPLIT_CHECKPOINT, device="cpu")
    rgb = synthetic_photo(np.random.default_rng(5), 60, 80)
    hole = center_hole(60, 80)
    out = model(rgb, hole)
    assert out.shape == rgb.shape and np.array_equal(out[~hole], rgb[~hole])
    assert not np.array_equal(out[hole], rgb[hole])
    classifier = Classifier(config_from_dict(ckpt["config"]).model, 20, TransferConfig())
    assert load_encoder(classifier, ckpt)                  # --init: missing keys exactly the head's


def test_center_hole_is_half_the_shorter_side():
    hole = center_hole(100, 60)
    ys, xs = np.nonzero(hole)
    assert hole.sum() == 30 * 30 and ys.min() == 35 and xs.min() == 15


def test_context_window_keeps_hole_in_central_half():
    hole = np.zeros((50, 80), bool)
    hole[10:20, 60:78] = True
    top, left, side = context_window(hole)
    assert side == 36
    assert top + side // 4 <= 10 and 20 <= top + 3 * side // 4
    assert left + side // 4 <= 60 and 78 <= left + 3 * side // 4


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(8, 90), w=st.integers(8, 90), seed=st.integers(0, 10_000))
def test_outside_hole_is_bit_identical_for_any_size_and_mask(inpainter, h, w, seed):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    hole = rng.random((h, w)) < rng.uniform(0.01, 0.5)
    hole[rng.integers(h), rng.integers(w)] = True
    out = inpainter(rgb, hole)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out[~hole], rgb[~hole])


def test_hole_is_filled_with_a_plausible_prediction(inpainter):
    rgb = synthetic_photo(np.random.default_rng(3), 120, 160)
    hole = center_hole(120, 160)
    corrupted = rgb.copy()
    corrupted[hole] = 0                       # the model must not depend on what was in the hole
    out = inpainter(corrupted, hole)
    assert np.array_equal(out[~hole], rgb[~hole])
    assert np.abs(out[hole].astype(int) - 0).mean() > 20   # not left black


def test_m3_patch_model_inpaints(tmp_path, tiny_photos):
    cfg = smoke_config(3)
    cfg.preset, cfg.model.skips, cfg.model.global_d, cfg.model.predict = "smoke-m3", False, False, "patch"
    train(cfg, tmp_path / "m3", [tiny_photos], progress=False, log=lambda *_: None)
    model = Inpainter.from_checkpoint(tmp_path / "m3")
    rgb = synthetic_photo(np.random.default_rng(0), 70, 50)
    hole = np.zeros((70, 50), bool)
    hole[5:15, 30:48] = True                  # off-centre, near the border
    out = model(rgb, hole)
    assert np.array_equal(out[~hole], rgb[~hole]) and not np.array_equal(out[hole], rgb[hole])


def test_cli_center_and_mask_file(tmp_path, smoke_run):
    rgb = synthetic_photo(np.random.default_rng(1), 90, 130)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    mask = np.zeros((90, 130), np.uint8)
    mask[20:50, 70:120] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    assert run_cli("inpaint", "--checkpoint", smoke_run, "--center", tmp_path / "photo.png", "--out", tmp_path / "c") == 0
    out = np.asarray(Image.open(tmp_path / "c" / "photo.png"))
    hole = center_hole(90, 130)
    assert out.shape == rgb.shape and np.array_equal(out[~hole], rgb[~hole])
    ckpt_file = smoke_run / "checkpoints" / "latest.pt"
    assert run_cli("inpaint", "--checkpoint", ckpt_file, "--mask", tmp_path / "mask.png",
                   tmp_path / "photo.png", "--out", tmp_path / "m") == 0
    out = np.asarray(Image.open(tmp_path / "m" / "photo.png"))
    assert np.array_equal(out[mask == 0], rgb[mask == 0]) and not np.array_equal(out[mask > 0], rgb[mask > 0])


def test_cli_mask_folder_and_input_folder(tmp_path, smoke_run):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "masks" / "sub").mkdir(parents=True)
    for name, (h, w) in {"a": (40, 60), "sub/b": (64, 48)}.items():
        Image.fromarray(synthetic_photo(np.random.default_rng(len(name)), h, w)).save(tmp_path / "in" / f"{name}.jpg")
        m = np.zeros((h, w), np.uint8)
        m[5:20, 5:25] = 255
        Image.fromarray(m).save(tmp_path / "masks" / f"{name}.png")
    assert run_cli("inpaint", "--checkpoint", smoke_run, "--mask", tmp_path / "masks", tmp_path / "in",
                   "--out", tmp_path / "out") == 0
    assert (tmp_path / "out" / "a.jpg").is_file() and (tmp_path / "out" / "sub" / "b.jpg").is_file()  # JPEG in, out
    # running again refuses to overwrite; --overwrite replaces
    assert run_cli("inpaint", "--checkpoint", smoke_run, "--mask", tmp_path / "masks", tmp_path / "in",
                   "--out", tmp_path / "out") == 1
    assert run_cli("inpaint", "--checkpoint", smoke_run, "--mask", tmp_path / "masks", tmp_path / "in",
                   "--out", tmp_path / "out", "--overwrite") == 0


def test_cli_never_overwrites_inputs(tmp_path, smoke_run):
    Image.fromarray(synthetic_photo(np.random.default_rng(1), 40, 40)).save(tmp_path / "p.png")
    before = (tmp_path / "p.png").read_bytes()
    assert run_cli("inpaint", "--checkpoint", smoke_run, "--center", tmp_path / "p.png", "--out", tmp_path,
                   "--overwrite") == 1
    assert (tmp_path / "p.png").read_bytes() == before


def test_inpainter_rejects_mismatched_mask(inpainter):
    with pytest.raises(InpaintsslError, match="mask is"):
        inpainter(np.zeros((10, 10, 3), np.uint8), np.ones((10, 11), bool))


@needs_coco
def test_end_to_end_on_real_photos(tmp_path):
    """Train smoke on real COCO photos, inpaint an unseen one with --center and with a mask file."""
    run = tmp_path / "run"
    assert run_cli("train", "--preset", "smoke", "--data", COCO_TRAIN, "--out", run, "--steps", "30",
                   "--no-progress") == 0
    photo = sorted(COCO_VAL.glob("*.jpg"))[0]
    rgb = np.asarray(ImageOps.exif_transpose(Image.open(photo)).convert("RGB"))
    h, w = rgb.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    mask[h // 5:h // 2, w // 3:w // 2] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    assert run_cli("inpaint", "--checkpoint", run, "--center", photo, "--out", tmp_path / "c", "--format", "png") == 0
    assert run_cli("inpaint", "--checkpoint", run, "--mask", tmp_path / "mask.png", photo, "--out", tmp_path / "m",
                   "--format", "png") == 0                   # lossless, so outside the hole stays bit-identical
    for folder, hole in ((tmp_path / "c", center_hole(h, w)), (tmp_path / "m", mask > 0)):
        out = np.asarray(Image.open(folder / f"{photo.stem}.png"))
        assert out.shape == rgb.shape
        assert np.array_equal(out[~hole], rgb[~hole])
        assert not np.array_equal(out[hole], rgb[hole])
    assert (run / "samples" / "step_000030.png").is_file()


def test_inference_precision_bf16_where_native_fp32_otherwise(smoke_run, monkeypatch):
    """bf16 autocast (channels_last) where the CPU has it, with fills within rounding of fp32; fp32 with
    amp=False or on a CPU without native bf16."""
    import torch
    import inpaintssl.gan.step as step
    rgb = synthetic_photo(np.random.default_rng(3), 90, 70)
    hole = center_hole(90, 70)
    fp32 = Inpainter.from_checkpoint(smoke_run, device="cpu", amp=False)
    assert fp32.precision == "fp32"
    x = torch.rand(2, 3, fp32.image_size, fp32.image_size) * 2 - 1
    m = torch.ones(2, 1, fp32.image_size, fp32.image_size)
    assert fp32.generate(x, m).dtype == torch.float32
    ref = fp32(rgb, hole)
    if step.cpu_has_native_bf16():
        fast = Inpainter.from_checkpoint(smoke_run, device="cpu")
        assert fast.precision == "bf16"
        conv = next(p for p in fast.generator.parameters() if p.dim() == 4)
        assert conv.is_contiguous(memory_format=torch.channels_last)
        pred = fast.generate(x, m)
        assert pred.dtype == torch.float32 and pred.is_contiguous()
        out = fast(rgb, hole)
        assert np.array_equal(out[~hole], rgb[~hole])
        diff = np.abs(out.astype(int) - ref.astype(int))[hole]
        assert 0 < diff.max() <= 3, diff.max()              # bf16 really ran, and only rounding differs
    monkeypatch.setattr(step, "cpu_has_native_bf16", lambda: False)
    fallback = Inpainter.from_checkpoint(smoke_run, device="cpu")
    assert fallback.precision == "fp32" and np.array_equal(fallback(rgb, hole), ref)
