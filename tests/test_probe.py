"""Linear probes at every encoder depth (issue 14): label subsets, the multi-init comparison, its report, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import synthetic_photo
from inpaintssl.cli import cli
from inpaintssl.errors import InpaintsslError
from inpaintssl.gan.step import generator_input
from inpaintssl.transfer.probe import (ProbeConfig, build_encoder, compare_probes, encoder_features, fit_linear,
                                      recompute_batch_norm, resolve_inits)
from inpaintssl.transfer.probe_report import over_seeds, summarise, write_probe_report
from inpaintssl.transfer.voc import balanced_subset, load_class_folders

SMOKE_LAYERS = ["layer1", "layer2", "layer3", "bottleneck"]      # the 32 px smoke encoder


def _one_hot(keys: np.ndarray, classes: int) -> np.ndarray:
    return np.where(np.arange(classes)[None] == keys[:, None], 1, -1).astype(np.int8)


def test_balanced_subset_is_seeded_and_class_balanced():
    labels = _one_hot(np.repeat(np.arange(5), [40, 20, 20, 10, 3]), 5)
    a, b, c = (balanced_subset(labels, 0.1, s) for s in (0, 0, 1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    counts = np.bincount(np.argmax(labels[a] == 1, axis=1), minlength=5)
    assert counts.tolist() == [4, 2, 2, 1, 1]            # round(0.1 n), at least one image of every class
    assert np.array_equal(balanced_subset(labels, 1.0, 3), np.arange(len(labels)))
    for bad in (0.0, 1.5):
        with pytest.raises(InpaintsslError, match="label-fraction"):
            balanced_subset(labels, bad, 0)


def _bright_dark(root: Path, n: int) -> Path:
    """ROOT/{train,dev}/{bright,dark}/: photo-like images whose class is their overall brightness."""
    rng = np.random.default_rng(0)
    for split in ("train", "dev"):
        for cls, gain in (("bright", 1.0), ("dark", 0.35)):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                img = synthetic_photo(rng, 40, 40).astype(np.float32) * gain
                Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / split / cls / f"{i}.png")
    return root


def test_probes_compare_inits_layer_by_layer_and_pair_with_random(tmp_path, smoke_run):
    data = _bright_dark(tmp_path / "data", 12)
    train, test = load_class_folders(data, "train"), load_class_folders(data, "dev")
    inits = resolve_inits([str(smoke_run), "random"])
    assert list(inits) == ["smoke", "random"] and inits["random"][1] is None
    assert inits["random"][0] == inits["smoke"][0]             # random takes the checkpoint's architecture
    cfg = ProbeConfig(weight_decays=(1e-3, 1e-1), max_iter=100)
    result = compare_probes(inits, train, test, cfg, seeds=(0, 1), fractions=(0.5, 1.0),
                            cache_dir=tmp_path / "features", log=lambda *_: None)
    assert result["layers"] == SMOKE_LAYERS and result["metric"] == "top1"
    assert len(result["rows"]) == 2 * 2 * 2 * len(SMOKE_LAYERS)
    half = [r for r in result["rows"] if r["fraction"] == 0.5]
    assert {r["train_images"] for r in half} == {12}           # 6 of the 12 images of each class
    summary = summarise(result)
    layer1 = summary["cells"]["random"][1.0]["layer1"]
    assert layer1["test"] > 90                                 # brightness is linearly readable from layer 1
    c = summary["cells"]["smoke"][1.0]["layer2"]
    score = {(r["init"], r["seed"]): r["test"] for r in result["rows"] if r["fraction"] == 1.0 and r["layer"] == "layer2"}
    diffs = [100 * (score["smoke", s] - score["random", s]) for s in (0, 1)]
    assert c["vs_random"] == pytest.approx(np.mean(diffs))
    assert "vs_random" not in summary["cells"]["random"][1.0]["layer1"]

    text = write_probe_report(result, tmp_path / "report")
    for layer in SMOKE_LAYERS:
        assert f"| {layer} |" in text
    assert "**50% of the training labels**" in text and "Best layer per init (by validation)" in text
    for name in ("probe_layers.png", "probe_fractions.png", "probes.json", "report.md"):
        assert (tmp_path / "report" / name).stat().st_size > 100
    saved = json.loads((tmp_path / "report" / "probes.json").read_text())
    assert len(saved["rows"]) == len(result["rows"]) and "1.0" in saved["summary"]["cells"]["smoke"]

    # the features were cached (checkpoint: one file per split; random: one per seed and split) and are reused
    cached = sorted((tmp_path / "features").glob("*.npz"))
    assert len(cached) == 2 + 2 * 2
    model_cfg, ckpt = inits["smoke"]
    fresh = encoder_features(model_cfg, ckpt, test, cfg)
    stamp = [p.stat().st_mtime_ns for p in cached]
    again = encoder_features(model_cfg, ckpt, test, cfg, cache_dir=tmp_path / "features")
    assert [p.stat().st_mtime_ns for p in cached] == stamp
    assert all(np.array_equal(fresh[k], again[k]) for k in fresh)

    # every fit was kept too: the same comparison again fits nothing and gives the same rows
    fits = sorted((tmp_path / "features" / "fits").glob("*.json"))
    assert len(fits) == 2 * 2 * 2 * len(SMOKE_LAYERS)
    before = [p.stat().st_mtime_ns for p in fits]
    rerun = compare_probes(inits, train, test, cfg, seeds=(0, 1), fractions=(0.5, 1.0),
                           cache_dir=tmp_path / "features", log=lambda *_: None)
    assert rerun["rows"] == result["rows"] and [p.stat().st_mtime_ns for p in fits] == before
    assert rerun["inits"]["smoke"]["fits_reused"] == 2 * 2 * len(SMOKE_LAYERS) and "fits_reused" not in str(result["rows"])
    assert result["inits"]["smoke"]["fits_reused"] == 0


def test_cli_probe_writes_a_report_and_keeps_it_without_overwrite(tmp_path, smoke_run):
    data = _bright_dark(tmp_path / "data", 6)
    args = ["transfer", "probe", "--init", str(smoke_run), "--init", "random", "--data", str(data),
            "--train-split", "train", "--test-split", "dev", "--seeds", "2", "--out", str(tmp_path / "p")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "| bottleneck |" in res.output and (tmp_path / "p" / "probe_layers.png").is_file()
    before = (tmp_path / "p" / "report.md").read_bytes()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert (tmp_path / "p" / "report.md").read_bytes() == before
    bad = CliRunner().invoke(cli, args[:2] + ["--label-fraction", "0"] + args[2:])
    assert bad.exit_code == 2 and "label-fraction" in bad.output


def test_cli_transfer_train_label_fraction_trains_on_the_subset(tmp_path):
    data = _bright_dark(tmp_path / "data", 10)
    res = CliRunner().invoke(cli, ["transfer", "train", "--data", str(data), "--init", "random", "--preset", "smoke",
                                   "--train-split", "train", "--test-split", "dev", "--epochs", "1", "--batch", "4",
                                   "--workers", "0", "--label-fraction", "0.2", "--out", str(tmp_path / "run"),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train"]["images"] == 4 and metrics["test"]["images"] == 20


def test_cli_compare_several_inits_and_seeds_pairs_them_with_random(tmp_path, smoke_run):
    """transfer compare --init A --seeds 2: random added as the reference, every init x seed run alike
    (same label subset per seed), the paired difference is the mean of the per-seed differences."""
    data = _bright_dark(tmp_path / "data", 10)
    out = tmp_path / "cmp"
    args = ["transfer", "compare", "--init", str(smoke_run), "--data", str(data), "--train-split", "train",
            "--test-split", "dev", "--epochs", "1", "--batch", "4", "--workers", "0", "--seeds", "2",
            "--label-fraction", "0.5", "--out", str(out), "--no-progress"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "metrics.json").read_text())
    assert [(r["init"], r["seed"]) for r in saved["runs"]] == [("smoke", 0), ("random", 0), ("smoke", 1), ("random", 1)]
    assert {r["train_images"] for r in saved["runs"]} == {10}
    for seed in (0, 1):        # both inits of a seed trained on the same subset of the labels
        files = [json.loads((out / n / f"seed{seed}" / "config.json").read_text())["train_labels"] for n in ("smoke", "random")]
        assert files[0] == files[1] and f"seed {seed}" in files[0]
    top1 = {(r["init"], r["seed"]): 100 * r["test"]["top1"] for r in saved["runs"]}
    diff = saved["summary"]["smoke"]["vs_random_top1"]
    assert diff[0] == pytest.approx(np.mean([top1["smoke", s] - top1["random", s] for s in (0, 1)]))
    assert "| smoke |" in res.output and "| random |" in res.output and (out / "curves.png").stat().st_size > 100
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_batch_norm_is_recomputed_on_hole_free_photos_of_the_training_split(tmp_path, smoke_run):
    import torch

    from inpaintssl.gan.step import generator_input
    from inpaintssl.transfer.voc import ClassificationDataset
    data = load_class_folders(_bright_dark(tmp_path / "data", 6), "train")
    model_cfg, ckpt = resolve_inits([str(smoke_run)])["smoke"]
    G = build_encoder(model_cfg, ckpt)
    norm = G.encoder[1][1]                                      # the first batch norm (after encoder conv 2)
    before = norm.running_mean.clone()
    recompute_batch_norm(G, data, photos=len(data.files), batch_size=4)   # 3 equal batches
    assert not G.training and norm.momentum == 0.1              # eval mode, momentum restored
    x = torch.stack([ClassificationDataset(data, model_cfg.image_size, train=False)[i][0] for i in range(len(data.files))])
    with torch.no_grad():
        pre = G.encoder[1][0](G.encoder[0](generator_input(x, torch.zeros_like(x[:, :1]), model_cfg.mask_channel)))
    assert torch.allclose(norm.running_mean, pre.mean((0, 2, 3)), atol=1e-5)   # every photo, no hole
    assert not torch.allclose(norm.running_mean, before, atol=1e-3)


def test_fit_reports_the_final_gradient():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = _one_hot((x[:, 0] > 0).astype(int), 2)
    done = fit_linear(x, y, False, 1e-2, ProbeConfig(max_iter=200, tol=1e-6))
    cut = fit_linear(x, y, False, 1e-2, ProbeConfig(max_iter=1, tol=1e-6))
    assert done["grad_max"] < 1e-5 and cut["grad_norm"] > 100 * done["grad_norm"]


def test_cli_compare_chooses_lr_and_epochs_on_validation_and_heads_from_pooled_layer(tmp_path, smoke_run):
    data = _bright_dark(tmp_path / "data", 10)
    out = tmp_path / "cmp"
    args = ["transfer", "compare", "--init", str(smoke_run), "--init", "random", "--data", str(data), "--train-split",
            "train", "--test-split", "dev", "--epochs", "2", "--batch", "4", "--workers", "0", "--lr-grid", "0.001",
            "--lr-grid", "0.05", "--head-from", "pooled", "--out", str(out), "--no-progress"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "metrics.json").read_text())
    for r in saved["runs"]:
        c = r["choice"]
        assert set(c["val"]) == {"0.001", "0.05"} and c["val_images"] == 4      # 20% of each class held out
        best = max((v, -float(lr), -e) for lr, vals in c["val"].items() for e, v in enumerate(vals, 1))
        assert (c["lr"], c["epochs"]) == (-best[1], -best[2])                     # the validation argmax
        assert len(r["history"]) == c["epochs"]                                   # the scored run used it
        run_cfg = json.loads((out / r["init"] / "seed0" / "config.json").read_text())["transfer"]
        assert run_cfg["lr"] == c["lr"] and run_cfg["head_from"] == "pooled"
    assert "chosen per run on a 20% validation part" in res.output
    bad = CliRunner().invoke(cli, args[:-4] + ["--lr-grid=-1", "--out", str(tmp_path / "x"), "--no-progress"])
    assert bad.exit_code != 0 and "--lr-grid" in bad.output


def test_reports_name_the_seeds_their_spread_is_over():
    assert over_seeds([0, 1, 2]) == "mean ± std over seeds 0, 1, 2"
    assert over_seeds([1]) == "seed 1 (one run: ± 0.0)"


def test_an_lr_that_diverges_is_reported_and_not_chosen(tmp_path, smoke_run):
    data = _bright_dark(tmp_path / "data", 10)
    args = ["transfer", "train", "--init", str(smoke_run), "--data", str(data), "--train-split", "train",
            "--test-split", "dev", "--epochs", "2", "--batch", "4", "--workers", "0", "--lr-grid", "0.01",
            "--lr-grid", "1e12", "--no-progress"]
    res = CliRunner().invoke(cli, args + ["--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    c = json.loads((tmp_path / "run" / "metrics.json").read_text())["choice"]
    assert c["diverged"] == ["1e+12"] and c["val"]["1e+12"] == [] and c["lr"] == 0.01
    assert "lr 1e+12 diverged" in res.output
    res = CliRunner().invoke(cli, args[:-5] + ["--lr-grid", "1e12", "--no-progress", "--out", str(tmp_path / "all")])
    assert res.exit_code != 0 and "every --lr-grid value diverged" in res.output


def test_a_layer_smaller_than_the_grid_is_kept_at_its_own_size(tmp_path, smoke_run):
    data = load_class_folders(_bright_dark(tmp_path / "data", 2), "train")
    model_cfg, ckpt = resolve_inits([str(smoke_run)])["smoke"]
    feats = encoder_features(model_cfg, ckpt, data, ProbeConfig(grid=8, bn_photos=0))
    with torch.no_grad():
        x = torch.zeros(1, 3, 32, 32)
        z, skips = build_encoder(model_cfg, ckpt).encode(generator_input(x, x[:, :1], model_cfg.mask_channel))
    sizes = [h.shape[1:] for h in skips]                         # 32 px: (C, 16, 16), (C, 8, 8), (C, 4, 4)
    assert [s[-1] for s in sizes] == [16, 8, 4]
    assert [feats[f"layer{i}"].shape[1] for i in (1, 2, 3)] == [c * 64 for c, _, _ in sizes[:2]] + [sizes[2][0] * 16]
    assert feats["bottleneck"].shape[1] == z[0].numel()
