"""Bad input: one clear line, non-zero exit, no traceback; unusual but valid files just work."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import smoke_config, synthetic_photo
from inpaintssl.checkpoint import load_checkpoint, save_checkpoint
from inpaintssl.cli import cli
from inpaintssl.config import config_to_dict
from inpaintssl.presets import get_preset
from inpaintssl.errors import InpaintsslError
from inpaintssl.data.images import load_mask, load_rgb
from inpaintssl.gan.train import train


def png_bomb(path, side=40000):
    """A tiny PNG whose header claims side x side pixels (nothing is ever decoded)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def photo(h=48, w=64, seed=0):
    return synthetic_photo(np.random.default_rng(seed), h, w)


def jpeg_bytes(rgb):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _one_pixel(d):
    Image.new("RGB", (1, 1)).save(d / "one.png")
    return d / "one.png"


def _bomb(d):
    png_bomb(d / "bomb.png")
    return d / "bomb.png"


def _empty_folder(d):
    (d / "empty").mkdir()
    return d / "empty"


BAD_INPUTS = {
    "missing path": lambda d: d / "nope.jpg",
    "empty folder": _empty_folder,
    "folder of non-images": lambda d: _write(d / "docs" / "a.txt", "x").parent,
    "zero-byte file": lambda d: _write(d / "zero.jpg", b""),
    "truncated JPEG": lambda d: _write(d / "trunc.jpg", jpeg_bytes(photo())[:300]),
    "text named .jpg": lambda d: _write(d / "text.jpg", "hello, I am text"),
    "1x1 image": _one_pixel,
    "decompression bomb": _bomb,
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_image_gives_one_line_and_nonzero_exit(tmp_path, smoke_run, case):
    target = BAD_INPUTS[case](tmp_path)
    result = CliRunner().invoke(cli, ["inpaint", "--checkpoint", str(smoke_run), "--center", str(target),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)           # handled, no traceback
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert str(target.name) in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _mask_file(d, arr):
    Image.fromarray(arr).save(d / "mask.png")
    return d / "mask.png"


BAD_MASKS = {
    "wrong size": lambda d: _mask_file(d, np.full((20, 20), 255, np.uint8)),
    "all black": lambda d: _mask_file(d, np.zeros((48, 64), np.uint8)),
    "all white": lambda d: _mask_file(d, np.full((48, 64), 255, np.uint8)),
    "not an image": lambda d: _write(d / "mask.png", "nope"),
}


@pytest.mark.parametrize("case", list(BAD_MASKS))
def test_bad_mask_gives_one_line(tmp_path, smoke_run, case):
    Image.fromarray(photo()).save(tmp_path / "p.png")
    mask = BAD_MASKS[case](tmp_path)
    result = CliRunner().invoke(cli, ["inpaint", "--checkpoint", str(smoke_run), "--mask", str(mask),
                                      str(tmp_path / "p.png"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    # the centre-trained smoke model also gets its one "warning: ... centre holes only" line first
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1 and "mask" in lines[0], result.stderr


def test_unusual_but_valid_images_are_converted(tmp_path):
    rgb = photo()
    # 16-bit grayscale PNG: scaled to 8 bit, not clipped
    g16 = (rgb[..., 0].astype(np.uint16) * 257)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out = load_rgb(tmp_path / "g16.png")
    assert out.shape == (48, 64, 3) and np.abs(out[..., 0].astype(int) - rgb[..., 0]).max() <= 1
    # palette PNG with transparency
    pal = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pal.png", transparency=0)
    assert load_rgb(tmp_path / "pal.png").shape == (48, 64, 3)
    # CMYK JPEG
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    cmyk = load_rgb(tmp_path / "cmyk.jpg")
    assert cmyk.shape == (48, 64, 3) and np.abs(cmyk.astype(int) - rgb).mean() < 12
    # RGBA and grayscale
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(load_rgb(tmp_path / "rgba.png"), rgb)
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.png")
    assert load_rgb(tmp_path / "gray.png").shape == (48, 64, 3)
    # EXIF orientation 6 (rotate 90 clockwise to display): 48x64 stored -> 64x48 displayed
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    assert load_rgb(tmp_path / "rot.jpg").shape == (64, 48, 3)


def test_exif_rotated_and_cmyk_inputs_inpaint(tmp_path, smoke_run):
    rgb = photo()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    result = CliRunner().invoke(cli, ["inpaint", "--checkpoint", str(smoke_run), "--center", str(tmp_path / "rot.jpg"),
                                      str(tmp_path / "cmyk.jpg"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "rot.jpg").size == (48, 64)      # displayed orientation kept
    assert Image.open(tmp_path / "out" / "cmyk.jpg").size == (64, 48)


def test_folder_with_some_bad_files_reports_and_continues(tmp_path, smoke_run):
    (tmp_path / "in").mkdir()
    Image.fromarray(photo()).save(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "bad.jpg").write_text("not a jpeg")
    result = CliRunner().invoke(cli, ["inpaint", "--checkpoint", str(smoke_run), "--center", str(tmp_path / "in"),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert (tmp_path / "out" / "good.png").is_file() and not (tmp_path / "out" / "bad.png").exists()
    assert "bad.jpg" in result.stderr and "1 of 2 inputs failed" in result.stderr


def test_subprocess_error_has_no_traceback(tmp_path, smoke_run):
    (tmp_path / "x.jpg").write_text("text")
    res = subprocess.run([sys.executable, "-m", "inpaintssl", "inpaint", "--checkpoint", str(smoke_run), "--center",
                          str(tmp_path / "x.jpg"), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0 and "x.jpg" in res.stderr


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_poisoned_pickle_is_refused_and_runs_nothing(tmp_path, smoke_run):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"generator": _Evil(marker), "config": {}}, evil)
    with pytest.raises(InpaintsslError, match="refused"):
        load_checkpoint(evil)
    result = CliRunner().invoke(cli, ["inpaint", "--checkpoint", str(evil), "--center", str(evil),
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "refused" in result.stderr
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(InpaintsslError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
    (tmp_path / "text.pt").write_text("hi\n")                 # the unpickler fails with a KeyError here
    with pytest.raises(InpaintsslError, match="not a readable"):
        load_checkpoint(tmp_path / "text.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InpaintsslError, match="not an inpaintssl checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(InpaintsslError, match="no checkpoints/latest.pt"):
        load_checkpoint(tmp_path)


def test_checkpoint_of_another_preset_names_both(tmp_path, tiny_photos):
    run = tmp_path / "run"
    train(smoke_config(2), run, [tiny_photos], progress=False, log=lambda *_: None)
    other = get_preset("m1-64")
    with pytest.raises(InpaintsslError, match=r"'smoke' \(32 px\).*'m1-64', 64 px"):
        train(other, run, [tiny_photos], resume=True, progress=False, log=lambda *_: None)
    result = CliRunner().invoke(cli, ["train", "--preset", "m1", "--out", str(run), "--resume"])
    assert result.exit_code == 1 and "'smoke' run" in result.stderr


def test_atomic_save_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "latest.pt"
    save_checkpoint(target, {"generator": {}, "config": config_to_dict(get_preset("smoke")), "step": 1})
    before = target.read_bytes()

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        save_checkpoint(target, {"generator": Boom(), "config": {}, "step": 2})
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]          # no temp files left


def test_atomic_writes_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    import os
    from inpaintssl.data.images import save_png
    save_png(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.png")
    save_checkpoint(tmp_path / "b.pt", {"generator": {}, "config": {}, "step": 0})
    (tmp_path / "c.txt").write_text("plain open()")
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes["a.png"] == modes["b.pt"] == modes["c.txt"], modes          # as any file the user's umask allows
    umask = os.umask(0)
    os.umask(umask)
    assert modes["a.png"] == 0o666 & ~umask


@settings(max_examples=40, deadline=None)
@given(h=st.integers(2, 40), w=st.integers(2, 40), data=st.data())
def test_mask_loading_threshold_property(tmp_path_factory, h, w, data):
    """Any gray mask: hole = value >= 128; errors only when no hole or all hole."""
    values = data.draw(st.lists(st.integers(0, 255), min_size=h * w, max_size=h * w))
    arr = np.array(values, np.uint8).reshape(h, w)
    path = tmp_path_factory.mktemp("m") / "m.png"
    Image.fromarray(arr).save(path)
    expected = arr >= 128
    if expected.all() or not expected.any():
        with pytest.raises(InpaintsslError):
            load_mask(path, (h, w))
    else:
        assert np.array_equal(load_mask(path, (h, w)), expected)


def test_training_folder_with_every_kind_of_bad_file(tmp_path):
    """Unreadable files are skipped and counted; unusual but valid ones are used; the run finishes."""
    folder = tmp_path / "photos"
    from conftest import write_photos
    write_photos(folder, 4, seed=2)
    for make in BAD_INPUTS.values():
        make(folder)                                    # zero-byte, truncated, text, 1x1, bomb, ... (+ folders)
    rgb = photo()
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(folder / "g16.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(folder / "pal.png", transparency=0)
    result = CliRunner().invoke(cli, ["train", "--preset", "smoke", "--data", str(folder), "--out",
                                      str(tmp_path / "run"), "--steps", "8", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "skipped 5 unreadable file(s) of 12" in result.stderr
    skipped = (tmp_path / "run" / "skipped_files.txt").read_text().split()
    assert sorted(os.path.basename(p) for p in skipped) == ["bomb.png", "one.png", "text.jpg", "trunc.jpg", "zero.jpg"]


@pytest.mark.parametrize("case", ["missing path", "empty folder", "folder of non-images"])
def test_train_bad_data_argument(tmp_path, case):
    target = BAD_INPUTS[case](tmp_path)
    result = CliRunner().invoke(cli, ["train", "--preset", "smoke", "--data", str(target), "--out",
                                      str(tmp_path / "run"), "--steps", "2"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and target.name in lines[0]


def test_unreadable_training_data_leaves_no_run_behind(tmp_path):
    """A run that fails on its data writes no config.json, so the same --out can be used again at once."""
    _write(tmp_path / "only.jpg", "not a photo")
    args = ["train", "--preset", "smoke", "--data", str(tmp_path / "only.jpg"), "--out", str(tmp_path / "run"),
            "--steps", "2"]
    for _ in range(2):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1 and "could be read" in result.stderr and "already holds" not in result.stderr
    assert not (tmp_path / "run" / "config.json").exists()


def test_ablation_checks_its_data_before_training(tmp_path):
    result = CliRunner().invoke(cli, ["ablation", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "abl")])
    assert result.exit_code == 1 and "nope" in result.stderr
    assert not (tmp_path / "abl" / "runs").exists()
