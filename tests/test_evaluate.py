"""Evaluation: metrics on known cases (checked against scikit-image), seeded masks, baselines, reports,
the `evaluate` / `ablation` / `plot-losses` commands end to end on tiny synthetic photos."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from conftest import smoke_config, synthetic_photo, write_photos
from inpaintssl.evaluation.ablation import ablation_configs
from inpaintssl.checkpoint import save_checkpoint
from inpaintssl.cli import cli
from inpaintssl.config import config_to_dict
from inpaintssl.presets import get_preset
from inpaintssl.errors import InpaintsslError
from inpaintssl.evaluation.evaluate import (BASELINES, corrupt, eval_masks, load_eval_set, parse_baselines,
                                 run_evaluation)
from inpaintssl.evaluation.metrics import METRIC_KEYS, PSNR_CAP_DB, image_metrics, ssim_map, uint8_to_unit
from inpaintssl.gan.models import build_models
from inpaintssl.evaluation.plots import read_metrics
from inpaintssl.gan.train import train




@pytest.fixture(scope="module")
def smoke_run(tiny_photos, tmp_path_factory):
    """A smoke-preset run trained here for 10 steps (its folder name, 'smoke', names the method)."""
    run = tmp_path_factory.mktemp("eval_runs") / "smoke"
    train(smoke_config(10), run, [tiny_photos], progress=False, log=lambda *_: None)
    return run


def _photos(n: int, seed: int = 0, size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([synthetic_photo(rng, size, size) for _ in range(n)])


def _hole(n: int, size: int, top: int, left: int, side: int) -> torch.Tensor:
    h = torch.zeros(n, 1, size, size)
    h[:, :, top:top + side, left:left + side] = 1
    return h


# ---------------------------------------------------------------- metrics

def test_identical_images_score_perfectly():
    x = uint8_to_unit(_photos(3))
    m = image_metrics(x, x.clone(), _hole(3, 40, 10, 10, 20))
    assert set(m) == set(METRIC_KEYS)
    for region in ("hole", "image"):
        assert torch.all(m[f"l1_{region}"] == 0) and torch.all(m[f"l2_{region}"] == 0)
        assert torch.all(m[f"psnr_{region}"] == PSNR_CAP_DB)               # capped, not infinite
        assert torch.allclose(m[f"ssim_{region}"], torch.ones(3, dtype=torch.float64), atol=1e-12)


def test_constant_shift_has_known_psnr():
    target = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.6 + 0.2
    m = image_metrics(target + 0.1, target, _hole(2, 32, 8, 8, 16))        # everywhere off by 0.1
    for region in ("hole", "image"):
        assert torch.allclose(m[f"l1_{region}"], torch.full((2,), 0.1, dtype=torch.float64))
        assert torch.allclose(m[f"l2_{region}"], torch.full((2,), 0.01, dtype=torch.float64))
        assert torch.allclose(m[f"psnr_{region}"], torch.full((2,), 20.0, dtype=torch.float64))
    t, p = target[0].permute(1, 2, 0).numpy(), (target[0] + 0.1).permute(1, 2, 0).numpy()
    assert math.isclose(peak_signal_noise_ratio(t, p, data_range=1.0), 20.0, rel_tol=1e-9)

    hole = _hole(1, 32, 8, 8, 16)                                            # shift only inside the hole
    pred = target[:1] + 0.2 * hole.double()
    m = image_metrics(pred, target[:1], hole)
    assert math.isclose(m["psnr_hole"].item(), 10 * math.log10(1 / 0.04), rel_tol=1e-9)
    assert math.isclose(m["l2_image"].item(), 0.04 * 0.25, rel_tol=1e-9)     # hole = 1/4 of the pixels
    assert math.isclose(m["l2_image"].item(), mean_squared_error(target[0].numpy(), pred[0].numpy()), rel_tol=1e-9)


def test_separable_ssim_equals_torchmetrics_map():
    tm = pytest.importorskip("torchmetrics.functional.image", reason="torchmetrics not installed (test extra)")
    g = torch.Generator().manual_seed(0)
    target = torch.rand(4, 3, 40, 33, generator=g, dtype=torch.float64)
    pred = (target + 0.2 * torch.randn(4, 3, 40, 33, generator=g, dtype=torch.float64)).clamp(0, 1)
    _, ref = tm.structural_similarity_index_measure(pred, target, gaussian_kernel=True, sigma=1.5,
                                                    data_range=1.0, return_full_image=True)
    ours = ssim_map(pred, target)
    assert ours.shape == ref.shape and torch.allclose(ours, ref, rtol=0, atol=1e-12)
    assert ours.std() > 0.05                                  # a real map, not a constant


def test_ssim_agrees_with_scikit_image():
    clean = _photos(2, seed=3)
    noise = np.random.default_rng(0).integers(-30, 31, clean.shape)
    noisy = np.clip(clean.astype(int) + noise, 0, 255).astype(np.uint8)
    pred, target = uint8_to_unit(noisy), uint8_to_unit(clean)
    hole = _hole(2, 40, 12, 10, 16)                                          # >= 5 px from the border
    smap, m = ssim_map(pred, target), image_metrics(pred, target, hole)
    for i in range(2):
        mean, full = structural_similarity(clean[i] / 255.0, noisy[i] / 255.0, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, data_range=1.0, channel_axis=-1, full=True)
        ours = smap[i].permute(1, 2, 0).numpy()
        assert np.allclose(ours[5:-5, 5:-5], full[5:-5, 5:-5], atol=1e-10)  # same map away from the border
        assert math.isclose(ours[5:-5, 5:-5].mean(), mean, rel_tol=1e-9)    # skimage's mean drops 5 px
        assert math.isclose(m["ssim_hole"][i].item(), full[12:28, 10:26].mean(), rel_tol=1e-9)
        assert 0 < m["ssim_image"][i].item() < 1


# ---------------------------------------------------------------- masks and baselines

@pytest.mark.parametrize("kind", ["center", "rect", "freeform"])
def test_eval_masks_are_fixed_by_seed_and_index(kind):
    a, b = eval_masks(kind, 6, 32, seed=3), eval_masks(kind, 6, 32, seed=3)
    assert a.shape == (6, 32, 32) and a.dtype == bool and np.array_equal(a, b)
    assert np.array_equal(eval_masks(kind, 3, 32, seed=3), a[:3])            # mask i depends only on (seed, i)
    assert all(m.any() and not m.all() for m in a)
    if kind != "center":
        assert not np.array_equal(a, eval_masks(kind, 6, 32, seed=4))
        assert len({m.tobytes() for m in a}) > 1


@pytest.mark.parametrize("name", list(BASELINES))
def test_baselines_fill_only_the_hole(name):
    images = _photos(4, seed=5, size=32)
    holes = eval_masks("freeform", 4, 32, seed=1)
    method = BASELINES[name]()
    out = method(corrupt(images, holes), holes)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert np.array_equal(out[~holes], images[~holes])                       # context untouched
    assert not np.array_equal(out[holes], corrupt(images, holes)[holes])     # the hole was filled
    other = images.copy()
    other[holes] = 7                                                         # hole content barely matters:
    diff = np.abs(method(other, holes).astype(int) - out)                   # OpenCV reads a few hole pixels
    assert diff.max() <= 4 and (diff[holes] == 0).mean() > 0.9               # at the image border
    if name == "mean":
        for img, hole, o in zip(images, holes, out):
            assert np.array_equal(o[hole][0], np.round(img[~hole].mean(0)).astype(np.uint8))


def test_parse_baselines():
    assert parse_baselines("telea, NS,mean,ns") == ["telea", "ns", "mean"]
    assert parse_baselines("none") == [] and parse_baselines("") == []
    with pytest.raises(InpaintsslError, match="unknown baseline"):
        parse_baselines("telea,blur")


def test_load_eval_set_skips_and_counts_bad_files(tmp_path):
    write_photos(tmp_path / "sub", 3, seed=2, h=30, w=50)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    names, images, skipped = load_eval_set([tmp_path], 24, log=lambda *_: None)
    assert images.shape == (3, 24, 24, 3) and len(skipped) == 1 and "broken.jpg" in skipped[0]
    assert names == ["sub/img_000.jpg", "sub/img_001.png", "sub/img_002.jpg"]
    names, images, _ = load_eval_set([tmp_path], 24, limit=2, log=lambda *_: None)
    assert len(names) == len(images) == 2


# ---------------------------------------------------------------- end to end

def test_eval_images_are_the_training_resize_of_the_full_decode(tmp_path):
    """No JPEG draft decoding: the eval square is data.images.center_square of the full-resolution photo."""
    from inpaintssl.data.images import center_square, open_image
    from inpaintssl.evaluation.evaluate import load_eval_image
    path = tmp_path / "big.jpg"
    Image.fromarray(synthetic_photo(np.random.default_rng(2), 300, 400)).save(path, quality=95)
    got = load_eval_image(path, 64)
    assert got.shape == (64, 64, 3) and got.dtype == np.uint8
    assert np.array_equal(got, np.asarray(center_square(open_image(path), 64)))


def test_evaluate_api_keeps_context_and_handles_other_sizes(smoke_run, tmp_path):
    write_photos(tmp_path / "val", 4, seed=9)
    res = run_evaluation([smoke_run], [tmp_path / "val"], ["mean"], mask="rect", seed=2, size=48,
                         log=lambda *_: None)                                # 32 px model at 48 px: Inpainter
    assert list(res.scores) == ["smoke", "mean"] and res.info["smoke"]["resized"]
    frac = eval_masks("rect", 4, 48, seed=2).reshape(4, -1).mean(1)
    for name, sc in res.scores.items():                                      # outside the hole = original
        assert np.allclose(sc["l1_image"], sc["l1_hole"] * frac) and np.allclose(sc["l2_image"], sc["l2_hole"] * frac)
        assert np.all(sc["psnr_hole"] < PSNR_CAP_DB)
    assert len(res.grid_rows) == 4 and all(len(r) == 4 and r[0].shape == (48, 48, 3) for r in res.grid_rows)


def test_evaluate_cli_writes_every_output(smoke_run, tmp_path):
    data = tmp_path / "val"
    write_photos(data, 5, seed=4)
    (data / "zero.png").write_bytes(b"")
    out = tmp_path / "report"
    args = ["evaluate", "--checkpoint", str(smoke_run), str(smoke_run / "checkpoints" / "latest.pt"),
            "--data", str(data), "--out", str(out), "--mask", "rect", "--seed", "1", "--grid-rows", "3"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "metrics.json").read_text())
    methods = ["smoke", "smoke-2", "telea", "ns", "mean"]
    assert list(doc["methods"]) == methods and doc["protocol"]["images"] == 5 and len(doc["skipped"]) == 1
    for name in methods:
        assert set(doc["methods"][name]) == set(METRIC_KEYS)
        assert all(math.isfinite(v["mean"]) and v["std"] >= 0 for v in doc["methods"][name].values())
    assert doc["methods"]["smoke"] == doc["methods"]["smoke-2"]             # same weights, same masks
    md = (out / "report.md").read_text()
    assert all(f"| {n} |" in md for n in methods) and "zero.png" in md and "loss_curves.png" in md
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 * len(methods) and {r["method"] for r in rows} == set(methods)
    mean_psnr = np.mean([float(r["psnr_hole"]) for r in rows if r["method"] == "telea"])
    assert math.isclose(mean_psnr, doc["methods"]["telea"]["psnr_hole"]["mean"], rel_tol=1e-5)
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (3 * 98 + 2 + 16, (2 + len(methods)) * 98 + 2, 3)  # 32 px tiles shown at 96 px
    assert (out / "loss_curves.png").stat().st_size > 0

    again = CliRunner().invoke(cli, args)                                    # refuses to clobber
    assert again.exit_code == 1 and "--overwrite" in again.output
    bad = CliRunner().invoke(cli, ["evaluate", "--checkpoint", str(tmp_path / "nope"), "--data", str(data),
                                   "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 1 and "nope" in bad.output and "Traceback" not in bad.output


def test_patch_model_needs_center_masks(tmp_path):
    cfg = get_preset("smoke")
    cfg.model.skips, cfg.model.global_d, cfg.model.predict = False, False, "patch"
    ckpt = tmp_path / "m3" / "checkpoints" / "latest.pt"
    save_checkpoint(ckpt, {"generator": build_models(cfg.model)["generator"].state_dict(), "step": 0,
                           "config": config_to_dict(cfg)})
    write_photos(tmp_path / "val", 2)
    with pytest.raises(InpaintsslError, match="--mask center"):
        run_evaluation([tmp_path / "m3"], [tmp_path / "val"], [], mask="rect", log=lambda *_: None)
    res = run_evaluation([tmp_path / "m3"], [tmp_path / "val"], [], mask="center", log=lambda *_: None)
    assert list(res.scores) == ["m3"]


def test_ablation_configs_differ_only_in_the_ablated_switches():
    cfgs = ablation_configs(32, steps=7, seed=3, batch=4, overrides=["optim.lr_g=0.001"])
    m1, m2, m3 = (cfgs[k].model for k in ("m1", "m2", "m3"))
    assert (m1.skips, m1.global_d, m1.predict) == (True, True, "image")
    assert (m2.skips, m2.global_d, m2.predict) == (True, False, "image")
    assert (m3.skips, m3.global_d, m3.predict) == (False, False, "patch")
    for c in cfgs.values():
        assert (c.train.steps, c.train.seed, c.train.batch_size, c.optim.lr_g) == (7, 3, 4, 1e-3)
        assert c.model.image_size == 32 and c.mask.kind == "center"
    assert ablation_configs(64, 1)["m3"].preset == "m3-64"
    with pytest.raises(InpaintsslError, match="--size"):
        ablation_configs(48, 1)
    with pytest.raises(InpaintsslError, match="central square"):
        ablation_configs(32, 1, overrides=["mask.kind=rect"])
    plus = ablation_configs(64, steps=5, seed=2, also=["m1-plus-64"])      # an improved recipe, trained alike
    assert list(plus) == ["m1", "m2", "m3", "m1-plus-64"]
    assert (plus["m1-plus-64"].train.steps, plus["m1-plus-64"].train.seed) == (5, 2)
    assert plus["m1-plus-64"].loss.mse_norm == "region" and plus["m1"].loss.mse_norm == "tensor"
    with pytest.raises(InpaintsslError, match="64 px preset in a 32 px"):
        ablation_configs(32, 1, also=["m1-plus-64"])
    with pytest.raises(InpaintsslError, match="clashes"):
        ablation_configs(64, 1, also=["m1-plus-64", "m1-plus-64"])


@pytest.mark.slow
def test_ablation_cli_tiny_run(tiny_photos, tmp_path):
    write_photos(tmp_path / "val", 3, seed=11)
    out = tmp_path / "abl"
    args = ["ablation", "--data", str(tiny_photos), "--eval-data", str(tmp_path / "val"), "--out", str(out),
            "--steps", "3", "--batch", "2", "--baselines", "mean", "--no-progress", "--also", "smoke"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "metrics.json").read_text())
    assert list(doc["methods"]) == ["m1", "m2", "m3", "smoke", "mean"] and doc["protocol"]["images"] == 3
    assert read_metrics(out / "runs" / "smoke")[-1]["step"] == 3
    for name in ("m1", "m2", "m3"):
        assert read_metrics(out / "runs" / name)[-1]["step"] == 3
        assert doc["method_info"][name]["preset"] == f"{name}-32"
    md = (out / "report.md").read_text()
    assert "## Training" in md and "| m3 | m3-32 | no | no | yes | patch | 3 |" in md and "(photos not used" in md
    assert (out / "grid.png").is_file() and (out / "loss_curves.png").stat().st_size > 0
    assert CliRunner().invoke(cli, args).exit_code == 1                    # exists: needs --resume/--overwrite
    kept = CliRunner().invoke(cli, args + ["--resume"])
    assert kept.exit_code == 0, kept.output
    assert "| m1 | m1-32 | yes | yes | yes | image | 3 | kept |" in (out / "report.md").read_text()

    png = tmp_path / "curves.png"
    r = CliRunner().invoke(cli, ["plot-losses", str(out / "runs" / "m1"), str(out / "runs" / "m2"), "--out", str(png)])
    assert r.exit_code == 0 and png.stat().st_size > 0


def test_read_metrics_ignores_a_truncated_last_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 5, "hole_mse": 0.5}\n{"step": 10, "hole_')
    assert read_metrics(tmp_path) == [{"step": 5, "hole_mse": 0.5}]
    (tmp_path / "metrics.jsonl").write_text('{"step": 5\n{"step": 10, "hole_mse": 0.4}\n')
    with pytest.raises(InpaintsslError, match="line 1"):
        read_metrics(tmp_path)
