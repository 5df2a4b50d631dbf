"""`inpaintssl prepare` and training from the prepared cache (no decoding per step)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import smoke_config, write_photos
from inpaintssl.data.cache import CachedBatches, CachedImages, crop_flip, hash_uniforms, open_cache
from inpaintssl.data.sources import INDEX_NAME
from inpaintssl.checkpoint import load_checkpoint
from inpaintssl.cli import cli
from inpaintssl.config import DataConfig
from inpaintssl.errors import InpaintsslError
from inpaintssl.data.images import open_image, to_tensor
from inpaintssl.data.prepare import centre_square, prepare_cache
from inpaintssl.gan.train import train

QUIET = {"progress": False, "log": lambda *_: None}




@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """8 good photos (JPEG + PNG, landscape and one portrait) and 3 bad files."""
    folder = tmp_path_factory.mktemp("prep_photos")
    write_photos(folder, 7, seed=3)
    write_photos(folder / "tall", 1, seed=4, h=70, w=40)
    (folder / "zz_empty.jpg").write_bytes(b"")
    (folder / "zz_text.png").write_text("not an image at all")
    good = (folder / "img_000.jpg").read_bytes()
    (folder / "zz_truncated.jpg").write_bytes(good[: len(good) // 3])
    return folder


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, photo_dir):
    out = tmp_path_factory.mktemp("cache") / "c32"
    prepare_cache([photo_dir], out, size=32, margin=1.125, workers=0, **QUIET)
    return out


def test_prepare_writes_array_and_index_and_counts_bad_files(cache_dir, photo_dir):
    index, images = open_cache(cache_dir)
    side = round(32 * 1.125)
    assert index["side"] == side == 36
    assert images.shape == (8, side, side, 3) and images.dtype == np.uint8
    assert index["count"] == 8 and len(index["files"]) == 8
    skipped = {s["path"].rsplit("/", 1)[-1] for s in index["skipped"]}
    assert skipped == {"zz_empty.jpg", "zz_text.png", "zz_truncated.jpg"}
    assert all(s["reason"] for s in index["skipped"])
    # the .npy was cut to the readable rows in place: file size is header + 8 rows, no tail
    npy = cache_dir / index["images"]
    assert npy.stat().st_size == images.offset + 8 * side * side * 3
    assert [p.name for p in cache_dir.iterdir() if p.name.startswith(".")] == []      # no temp files left
    # row i is files[i]: its centre square, decoded the same way
    for i in (0, 7):
        expected = centre_square(open_image(index["files"][i], draft=side), side)
        assert np.array_equal(images[i], expected)
    assert images[7].std() > 1.0                          # the portrait photo is real content, not zeros


def test_prepare_never_loads_torch(tmp_path, photo_dir):
    """Importing prepare and running the `prepare` command need Pillow and numpy only (no PyTorch)."""
    import subprocess
    import sys
    code = ("import sys\n"
            "import inpaintssl.data.prepare\n"
            "assert 'torch' not in sys.modules, 'import inpaintssl.data.prepare loaded torch'\n"
            "from inpaintssl.cli import main\n"
            "try:\n"
            f"    main(['prepare', '--data', {str(photo_dir)!r}, '--out', {str(tmp_path / 'c')!r}, '--size', '32',\n"
            "          '--workers', '0', '--no-progress'])\n"
            "except SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'the prepare command loaded torch'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "c" / INDEX_NAME).is_file()


def test_workers_give_the_same_cache(tmp_path, photo_dir, cache_dir):
    out = tmp_path / "par"
    summary = prepare_cache([photo_dir], out, size=32, margin=1.125, workers=2, **QUIET)
    assert summary["count"] == 8 and summary["skipped"] == 3 and summary["workers"] == 2
    (_, a), (_, b) = open_cache(cache_dir), open_cache(out)
    assert np.array_equal(a, b)


def test_existing_cache_needs_overwrite_and_old_array_is_removed(tmp_path, photo_dir):
    out = tmp_path / "c"
    prepare_cache([photo_dir], out, size=32, margin=1.0, workers=0, **QUIET)
    first = json.loads((out / INDEX_NAME).read_text())["images"]
    with pytest.raises(InpaintsslError, match="--overwrite"):
        prepare_cache([photo_dir], out, size=32, workers=0, **QUIET)
    prepare_cache([photo_dir], out, size=32, margin=1.5, workers=0, overwrite=True, **QUIET)
    index = json.loads((out / INDEX_NAME).read_text())
    assert index["side"] == 48 and index["images"] != first and not (out / first).exists()


def test_identity_crop_returns_the_stored_pixels_and_flip_mirrors():
    rows = torch.randint(0, 256, (3, 16, 16, 3), dtype=torch.uint8)
    params = torch.tensor([[0.3, 0.5, 0.5, 0.9], [0.0, 0.1, 0.7, 0.9], [0.9, 0.9, 0.2, 0.1]])
    cfg = DataConfig(crop_min=1.0, crop_max=1.0, flip=True)
    out = crop_flip(rows, params, 16, cfg)
    expected = torch.stack([to_tensor(r.numpy()) for r in rows])
    assert out.shape == (3, 3, 16, 16)
    torch.testing.assert_close(out[:2], expected[:2], atol=1e-5, rtol=0)          # flip param >= 0.5: as stored
    torch.testing.assert_close(out[2], expected[2].flip(-1), atol=1e-5, rtol=0)   # < 0.5: mirrored


def test_crop_is_a_window_of_the_stored_square():
    """side 16 -> crop fraction 0.5 at the top-left corner, output 8 px: pixels of rows[:8, :8]."""
    rows = torch.randint(0, 256, (1, 16, 16, 3), dtype=torch.uint8)
    cfg = DataConfig(crop_min=0.5, crop_max=0.5, flip=False)
    out = crop_flip(rows, torch.tensor([[0.0, 0.0, 0.0, 0.0]]), 8, cfg)
    torch.testing.assert_close(out[0], to_tensor(rows[0, :8, :8].numpy()), atol=1e-5, rtol=0)
    out = crop_flip(rows, torch.tensor([[0.0, 1.0, 1.0, 0.0]]), 8, cfg)     # bottom-right corner
    torch.testing.assert_close(out[0], to_tensor(rows[0, 8:, 8:].numpy()), atol=1e-5, rtol=0)


def test_hash_uniforms_are_stateless_and_spread():
    pos = np.arange(1000)
    u = hash_uniforms(7, pos, 4)
    assert u.shape == (1000, 4) and (u >= 0).all() and (u < 1).all()
    assert np.array_equal(u[500:510], hash_uniforms(7, pos[500:510], 4))    # any slice, same values
    assert not np.array_equal(u, hash_uniforms(8, pos, 4))
    assert abs(u.mean() - 0.5) < 0.03 and len(np.unique(u)) == u.size


def test_cached_batches_shard_is_the_single_process_batch(cache_dir):
    ds = CachedImages(cache_dir, 32, DataConfig(), seed=5)
    whole = next(iter(CachedBatches(ds, 6, 3, 4)))[0]
    halves = [next(iter(CachedBatches(ds, 6, 3, 4, part=slice(r * 3, r * 3 + 3))))[0] for r in (0, 1)]
    assert whole.shape == (6, 3, 32, 32) and whole.min() >= -1 and whole.max() <= 1
    assert torch.equal(torch.cat(halves), whole)
    assert torch.equal(ds[3 * 6][0], whole[0])                      # step 3 starts at stream position 18
    # every image of an epoch is used exactly once: stream positions 0..7 cover rows 0..7
    assert sorted(ds.indices(np.arange(8)).tolist()) == list(range(8))


def test_training_from_cache_runs_and_resume_is_exact(tmp_path, cache_dir):
    full, half = tmp_path / "full", tmp_path / "half"
    summary = train(smoke_config(6, "train.log_every=1"), full, [cache_dir], **QUIET)
    assert summary["step"] == 6 and summary["images"] == 8 and summary["skipped_files"] == []
    rows = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 7)) and all(np.isfinite(r["g_total"]) for r in rows)
    train(smoke_config(3), half, [cache_dir], **QUIET)
    train(smoke_config(6), half, None, resume=True, **QUIET)      # sources come back from the checkpoint
    a, b = load_checkpoint(full), load_checkpoint(half)
    assert b["sources"] == [str(cache_dir)]
    for name in ("generator", "d_global", "d_local"):
        for k, v in a[name].items():
            assert torch.equal(v, b[name][k]), f"{name}.{k}"


def test_cache_smaller_than_the_model_is_refused(tmp_path, cache_dir):
    cfg = smoke_config(2, "model.image_size=64")
    with pytest.raises(InpaintsslError, match="prepare --size 64"):
        train(cfg, tmp_path / "run", [cache_dir], **QUIET)


def test_cli_prepare_and_train_epochs(tmp_path, photo_dir):
    out = tmp_path / "cache"
    runner = CliRunner()
    res = runner.invoke(cli, ["prepare", "--data", str(photo_dir), "--out", str(out), "--size", "32",
                              "--workers", "0", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "cached 8 of 11 images (3 skipped)" in res.output
    res = runner.invoke(cli, ["prepare", "--data", str(photo_dir), "--out", str(out), "--size", "32"])
    assert res.exit_code == 1 and "--overwrite" in res.output
    res = runner.invoke(cli, ["train", "--preset", "smoke", "--data", str(out), "--out", str(tmp_path / "run"),
                              "--epochs", "2", "--dry-run"])
    assert res.exit_code == 0 and json.loads(res.output)["train"]["steps"] == 2     # 2 epochs of 8 at batch 8
    res = runner.invoke(cli, ["train", "--preset", "smoke", "--data", str(out), "--data", str(photo_dir),
                              "--out", str(tmp_path / "run2"), "--steps", "1", "--no-progress"])
    assert res.exit_code == 1 and "only --data" in res.output


def test_prepare_reports_unusable_input(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "one.png")
    with pytest.raises(InpaintsslError, match="--margin"):
        prepare_cache([tmp_path], tmp_path / "c", size=32, margin=0.5, **QUIET)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(InpaintsslError, match="none of the 1 files"):
        prepare_cache([tmp_path / "bad"], tmp_path / "c2", size=32, workers=0, **QUIET)
    assert not any((tmp_path / "c2").glob("*.npy*")) and not any((tmp_path / "c2").glob(".*"))
