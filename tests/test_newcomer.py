"""Issue 19, a newcomer's first hour: no tracebacks, nothing overwritten, masks as people make them, runs
that talk. Each test of a broken promise failed on the code before the fix (noted per test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import synthetic_photo, write_photos
from inpaintssl.cli import cli
from inpaintssl.data.images import load_mask, to_tensor
from inpaintssl.gan.inpainter import Inpainter, center_hole

README = Path(__file__).resolve().parents[1] / "README.md"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def error_lines(result) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if ln.strip()]


def one_line_error(result, code: int = 1) -> str:
    """The result is a handled error: ``code``, no traceback, a single ``Error:`` line on stderr."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception       # handled, no traceback
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def usage_error(result) -> str:
    """Exit 2 (click's usage error), the message on the last stderr line."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception
    return error_lines(result)[-1]


def save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=95)
    return path


def photo(h=48, w=64, seed=0):
    return synthetic_photo(np.random.default_rng(seed), h, w)


@pytest.fixture(scope="module")
def inpainter(smoke_run):
    return Inpainter.from_checkpoint(smoke_run, device="cpu")


# ---------------------------------------------------------------- broken promises: tracebacks

def test_inpaint_out_that_is_a_file_is_one_line_error(tmp_path, smoke_run):
    """Before: FileExistsError traceback."""
    src = save(tmp_path / "p.png", photo())
    (tmp_path / "fake.jpg").write_bytes(b"I am a file")
    line = one_line_error(invoke("inpaint", "--checkpoint", smoke_run, "--center", src, "--out", tmp_path / "fake.jpg"))
    assert "fake.jpg" in line and "is a file" in line
    assert (tmp_path / "fake.jpg").read_bytes() == b"I am a file"


def test_plot_losses_into_an_existing_folder(tmp_path, smoke_run):
    """Before: IsADirectoryError traceback (the temp file was renamed onto the folder)."""
    (tmp_path / "plots").mkdir()
    r = invoke("plot-losses", smoke_run, "--out", tmp_path / "plots")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "plots" / "loss_curves.png").stat().st_size > 0
    assert r.stdout.strip() == str(tmp_path / "plots" / "loss_curves.png")


def test_inpaint_device_gpu_is_a_usage_error_with_a_suggestion(tmp_path, smoke_run):
    """Before: RuntimeError traceback from torch (--device was free text)."""
    src = save(tmp_path / "p.png", photo())
    line = usage_error(invoke("inpaint", "--checkpoint", smoke_run, "--center", src, "--out", tmp_path / "o",
                              "--device", "gpu"))
    assert "--device" in line and "did you mean 'cuda'?" in line
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- broken promises: silent overwrites

def test_two_inputs_that_would_write_one_output_are_refused(tmp_path, smoke_run):
    """Before: x.png and x.webp (or x.jpg and x.png) both went to o/x.png, the second over the first, exit 0."""
    dup = tmp_path / "dup"
    save(dup / "x.png", photo(seed=1))
    save(dup / "x.webp", photo(seed=2))
    line = one_line_error(invoke("inpaint", "--checkpoint", smoke_run, "--center", dup, "--out", tmp_path / "o"))
    assert "x.png" in line and "x.webp" in line and "both" in line
    assert not (tmp_path / "o").exists()                                  # refused before any work
    jd = tmp_path / "jd"
    save(jd / "x.jpg", photo(seed=1))
    save(jd / "x.png", photo(seed=2))
    line = one_line_error(invoke("inpaint", "--checkpoint", smoke_run, "--center", jd, "--out", tmp_path / "o2",
                                 "--format", "png"))
    assert "x.jpg" in line and "x.png" in line
    r = invoke("inpaint", "--checkpoint", smoke_run, "--center", jd, "--out", tmp_path / "o3")   # default: no clash
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "o3").iterdir()) == ["x.jpg", "x.png"]


def test_plot_losses_does_not_replace_a_png_without_overwrite(tmp_path, smoke_run):
    """Before: an existing curves.png was replaced silently."""
    png = tmp_path / "curves.png"
    png.write_bytes(b"precious")
    line = one_line_error(invoke("plot-losses", smoke_run, "--out", png))
    assert "curves.png" in line and "--overwrite" in line
    assert png.read_bytes() == b"precious"
    assert invoke("plot-losses", smoke_run, "--out", png, "--overwrite").exit_code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_losses_out_with_a_trailing_slash_is_a_folder(tmp_path, smoke_run):
    """Before: --out plotsdir/ wrote a PNG file named 'plotsdir'."""
    r = invoke("plot-losses", smoke_run, "--out", f"{tmp_path / 'plotsdir'}/")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "plotsdir").is_dir() and (tmp_path / "plotsdir" / "loss_curves.png").is_file()


# ---------------------------------------------------------------- broken promises: exit codes

USAGE_MISTAKES = {
    "neither --mask nor --center": (["inpaint", "--checkpoint", "RUN", "P", "--out", "O"], "exactly one of"),
    "both --mask and --center": (["inpaint", "--checkpoint", "RUN", "--center", "--mask", "P", "P", "--out", "O"],
                                 "exactly one of"),
    "--steps and --epochs": (["train", "--preset", "smoke", "--out", "R", "--steps", "3", "--epochs", "1"],
                             "--steps or --epochs"),
    "--set without =": (["train", "--preset", "smoke", "--out", "R", "--steps", "3", "--set", "train.seed"],
                        "section.key=value"),
    "--set unknown key": (["train", "--preset", "smoke", "--out", "R", "--steps", "3", "--set", "train.sed=3"],
                          "unknown key"),
    "--set bad value": (["train", "--preset", "smoke", "--out", "R", "--steps", "3", "--set", "train.seed=x"],
                        "expected a value of type int"),
    "unknown --preset": (["train", "--preset", "smok", "--out", "R", "--steps", "3"], "did you mean 'smoke'?"),
    "--resume and --overwrite": (["train", "--preset", "smoke", "--out", "R", "--resume", "--overwrite"],
                                 "not both"),
    "unknown preset name": (["presets", "m1plus"], "did you mean 'm1-plus'?"),
}


@pytest.mark.parametrize("case", list(USAGE_MISTAKES))
def test_usage_mistakes_exit_2(tmp_path, smoke_run, case):
    """Before: exit 1 (they were raised as InpaintsslError)."""
    args, words = USAGE_MISTAKES[case]
    p = save(tmp_path / "p.png", photo())
    subst = {"RUN": smoke_run, "P": p, "O": tmp_path / "o", "R": tmp_path / "run"}
    line = usage_error(invoke(*(subst.get(a, a) for a in args)))
    assert words in line
    assert not (tmp_path / "run").exists() and not (tmp_path / "o").exists()


# every command that loads a model or trains: --device and --preset are choices with a "did you mean"
DEVICE_COMMANDS = [["inpaint"], ["train"], ["evaluate"], ["ablation"], ["serve"], ["demo"],
                   ["transfer", "train"], ["transfer", "compare"]]
PRESET_COMMANDS = [["train", "--preset"], ["demo", "--preset"], ["transfer", "train", "--preset"],
                   ["ablation", "--also"]]


@pytest.mark.parametrize("cmd", DEVICE_COMMANDS, ids=" ".join)
def test_device_is_a_choice_everywhere(cmd):
    """Before: free text everywhere (a typo failed deep inside torch, or was accepted silently)."""
    line = usage_error(invoke(*cmd, "--device", "cuda0x"))
    assert "'cuda0x'" in line and "auto, cpu, cuda or cuda:N" in line


@pytest.mark.parametrize("cmd", PRESET_COMMANDS, ids=" ".join)
def test_preset_is_a_choice_everywhere(cmd):
    """Before: train and transfer train took free text (exit 1 after loading), ablation --also too."""
    line = usage_error(invoke(*cmd, "m1-plus64"))
    assert "did you mean 'm1-plus-64'?" in line


def test_cuda_device_accepts_an_index_form(tmp_path):
    r = invoke("train", "--preset", "smoke", "--out", tmp_path / "r", "--device", "cuda:0", "--dry-run")
    if torch.cuda.is_available():
        assert r.exit_code == 0 and json.loads(r.stdout)["train"]["device"] == "cuda:0"
    else:
        assert "--device cpu" in one_line_error(r)


# ---------------------------------------------------------------- broken promises: train

def test_train_steps_zero_is_refused(tmp_path):
    """Before: --steps 0 wrote a run whose checkpoint had never been trained, exit 0."""
    line = usage_error(invoke("train", "--preset", "smoke", "--out", tmp_path / "run", "--steps", "0"))
    assert "--steps" in line
    assert not (tmp_path / "run").exists()
    assert usage_error(invoke("train", "--preset", "smoke", "--out", tmp_path / "run", "--epochs", "0"))
    assert not (tmp_path / "run").exists()


def test_failed_train_leaves_no_empty_run_folder(tmp_path):
    """Before: an empty --data folder failed, but left runs/new/ behind (empty)."""
    (tmp_path / "empty").mkdir()
    one_line_error(invoke("train", "--preset", "smoke", "--data", tmp_path / "empty", "--out",
                          tmp_path / "runs" / "new", "--steps", "2"))
    assert not (tmp_path / "runs").exists()


def test_resume_with_fewer_steps_than_done_says_so(tmp_path, tiny_photos):
    """Before: 'already at step 6 of 3' and exit 0, as if the run were complete at 3."""
    run = tmp_path / "run"
    base = ["train", "--preset", "smoke", "--data", tiny_photos, "--out", run, "--no-progress",
            "--set", "data.workers=0"]
    assert invoke(*base, "--steps", "6").exit_code == 0
    line = one_line_error(invoke(*base, "--steps", "3", "--resume"))
    assert "already at step 6" in line and "--steps 9" in line and "of 3" not in line
    r = invoke(*base, "--steps", "6", "--resume")                          # exactly done: fine, says so
    assert r.exit_code == 0 and "already at step 6 of 6" in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_inpaint_cuda_without_cuda_names_device_cpu(tmp_path, smoke_run, device):
    """Before: 'train.device='cuda' but CUDA is not available here; use train.device=cpu'."""
    src = save(tmp_path / "p.png", photo())
    line = one_line_error(invoke("inpaint", "--checkpoint", smoke_run, "--center", src, "--out", tmp_path / "o",
                                 "--device", device))
    assert f"--device {device}" in line and "use --device cpu" in line and "train.device" not in line


def test_folder_run_names_the_photo_whose_mask_failed(tmp_path, smoke_run):
    """Before: 'skipped: masks/b.png: mask is 20x20 ...' (which photo was it for?)."""
    save(tmp_path / "in" / "a.png", photo(seed=1))
    save(tmp_path / "in" / "b.png", photo(seed=2))
    m = np.zeros((48, 64), np.uint8)
    m[10:30, 10:30] = 255
    save(tmp_path / "masks" / "a.png", m)
    save(tmp_path / "masks" / "b.png", np.full((20, 20), 255, np.uint8))          # wrong size
    r = invoke("inpaint", "--checkpoint", smoke_run, "--mask", tmp_path / "masks", tmp_path / "in",
               "--out", tmp_path / "o")
    assert r.exit_code == 1
    skipped = [ln for ln in r.stderr.splitlines() if ln.startswith("skipped:")]
    assert len(skipped) == 1 and str(tmp_path / "in" / "b.png") in skipped[0] and "b.png: mask is" in skipped[0]
    assert (tmp_path / "o" / "a.png").is_file() and not (tmp_path / "o" / "b.png").exists()


# ---------------------------------------------------------------- broken promise: the hole bled into the input

@pytest.mark.parametrize("shape,box", [((300, 300), (86, 86, 128, 128)),     # window 256 px -> 32 px model
                                       ((60, 70), (25, 30, 10, 12)),         # window 24 px -> 32 px (enlarged)
                                       ((120, 90), (5, 60, 40, 25))])        # near the border
def test_output_does_not_depend_on_the_hole_pixels(inpainter, shape, box):
    """Before: the window was resized (bicubic) before the hole was blanked, so the removed object leaked into
    the context pixels around the hole and changed the fill."""
    rng = np.random.default_rng(0)
    rgb = synthetic_photo(rng, *shape)
    hole = np.zeros(shape, bool)
    t, l_, h, w = box
    hole[t:t + h, l_:l_ + w] = True
    other = rgb.copy()
    other[hole] = rng.integers(0, 256, size=(int(hole.sum()), 3), dtype=np.uint8)   # only the hole changes
    a, b = inpainter(rgb, hole), inpainter(other, hole)
    assert np.array_equal(a, np.where(hole[..., None], a, rgb))                # outside the hole untouched
    assert np.array_equal(a[hole], b[hole])


@pytest.mark.parametrize("s,S", [(256, 64), (40, 64), (24, 32), (100, 32), (257, 64), (33, 32)])
def test_low_res_mask_covers_every_pixel_the_hole_reaches(s, S):
    """The model's mask is dilated by the resize kernel's reach: no unmasked low-res pixel is computed from
    a hole pixel (checked by resizing two windows that differ only in the hole)."""
    from inpaintssl.gan.inpainter import _resize, low_res_hole
    rng = np.random.default_rng(s * 7 + S)
    for hole in (center_hole(s, s), rng.random((s, s)) < 0.01):
        w1 = rng.integers(0, 256, (s, s, 3), dtype=np.uint8)
        w2 = w1.copy()
        w2[hole] = 255 - w2[hole]
        reached = (_resize(to_tensor(w1)[None], S) - _resize(to_tensor(w2)[None], S)).abs().amax(1)[0] > 0
        mask = low_res_hole(hole, S)[0, 0] > 0
        assert not (reached & ~mask).any()
        assert (mask & ~reached).sum() <= 4 * S          # and it is not much larger than needed


# ---------------------------------------------------------------- habits: masks as people make them

def test_alpha_mask_white_stroke_on_transparent_layer(tmp_path, smoke_run):
    """A white stroke on a transparent layer (RGB white everywhere) was 'entirely white'."""
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[10:25, 20:40, 3] = 255                                            # the stroke: opaque
    Image.fromarray(rgba, "RGBA").save(tmp_path / "stroke.png")
    hole = load_mask(tmp_path / "stroke.png", (48, 64))
    expected = np.zeros((48, 64), bool)
    expected[10:25, 20:40] = True
    assert np.array_equal(hole, expected)
    src = save(tmp_path / "p.png", photo())
    r = invoke("inpaint", "--checkpoint", smoke_run, "--mask", tmp_path / "stroke.png", src, "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    out = np.asarray(Image.open(tmp_path / "o" / "p.png"))
    assert np.array_equal(out[~expected], photo()[~expected]) and not np.array_equal(out[expected], photo()[expected])


def test_opaque_alpha_falls_back_to_gray(tmp_path):
    m = np.zeros((20, 20, 4), np.uint8)
    m[..., 3] = 255
    m[5:10, 5:10, :3] = 255
    Image.fromarray(m, "RGBA").save(tmp_path / "m.png")
    assert load_mask(tmp_path / "m.png").sum() == 25


def test_dilate_grows_the_hole_by_n_pixels(tmp_path, smoke_run):
    from inpaintssl.data.images import dilate_hole
    hole = np.zeros((21, 21), bool)
    hole[10, 10] = True
    grown = dilate_hole(hole, 2)
    assert grown.sum() == 13 and grown[10, 8] and grown[9, 9] and not grown[8, 8]     # a disk of radius 2
    assert np.array_equal(dilate_hole(hole, 0), hole)
    rgb = photo()
    m = np.zeros((48, 64), np.uint8)
    m[20:30, 20:30] = 255
    save(tmp_path / "m.png", m)
    src = save(tmp_path / "p.png", rgb)
    r = invoke("inpaint", "--checkpoint", smoke_run, "--mask", tmp_path / "m.png", "--dilate", "3", src,
               "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    out = np.asarray(Image.open(tmp_path / "o" / "p.png"))
    changed = (out != rgb).any(-1)
    assert changed[17:33, 17:33].sum() > changed[20:30, 20:30].sum()          # the ring around it was filled too
    assert not changed[:16].any() and not changed[34:].any()
    assert usage_error(invoke("inpaint", "--checkpoint", smoke_run, "--mask", tmp_path / "m.png", "--dilate", "-1",
                              src, "--out", tmp_path / "o2"))


def test_a_photo_passed_as_its_own_mask_is_flagged(tmp_path, smoke_run):
    ramp = np.linspace(0, 255, 64)[None, :, None] * np.ones((48, 1, 3))      # a photo-like gray ramp
    rgb = np.clip(ramp + photo(seed=3) * 0.2 - 25, 0, 255).astype(np.uint8)
    src = save(tmp_path / "p.png", rgb)
    r = invoke("inpaint", "--checkpoint", smoke_run, "--mask", src, src, "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    assert "warning:" in r.stderr and "neither black nor white" in r.stderr
    m = np.zeros((48, 64), np.uint8)
    m[10:20, 10:20] = 255
    save(tmp_path / "m.png", m)
    r = invoke("inpaint", "--checkpoint", "bundled", "--mask", tmp_path / "m.png", src, "--out", tmp_path / "o2")
    assert r.exit_code == 0 and "warning" not in r.stderr          # (bundled: trained on mixed holes)


# ---------------------------------------------------------------- habits: inpaint options

def test_method_telea_needs_no_checkpoint(tmp_path):
    pytest.importorskip("cv2")
    rgb = photo()
    src = save(tmp_path / "p.png", rgb)
    for method in ("telea", "ns"):
        r = invoke("inpaint", "--method", method, "--center", src, "--out", tmp_path / method)
        assert r.exit_code == 0, r.output
        out = np.asarray(Image.open(tmp_path / method / "p.png"))
        hole = center_hole(48, 64)
        assert np.array_equal(out[~hole], rgb[~hole]) and not np.array_equal(out[hole], rgb[hole])
    r = invoke("inpaint", "--center", src, "--out", tmp_path / "m")      # --method model: the bundled model
    assert r.exit_code == 0 and (tmp_path / "m" / "p.png").is_file(), r.output
    assert "uses no checkpoint" in usage_error(invoke("inpaint", "--method", "ns", "--checkpoint", "bundled",
                                                      "--center", src, "--out", tmp_path / "n"))


def test_skip_existing_continues_a_folder_run(tmp_path, smoke_run):
    write_photos(tmp_path / "in", 2, seed=5)
    args = ["inpaint", "--checkpoint", smoke_run, "--center", tmp_path / "in", "--out", tmp_path / "o"]
    assert invoke(*args).exit_code == 0
    first = {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()}
    write_photos(tmp_path / "more", 3, seed=6)
    (tmp_path / "more" / "img_002.jpg").rename(tmp_path / "in" / "img_002.jpg")
    r = invoke(*args, "--skip-existing")
    assert r.exit_code == 0, r.output
    assert r.stdout.split() == [str(tmp_path / "o" / "img_002.jpg")] and "keeping 2 existing" in r.stderr
    assert all((tmp_path / "o" / n).read_bytes() == b for n, b in first.items())
    assert "not both" in usage_error(invoke(*args, "--skip-existing", "--overwrite"))


def test_output_format_follows_the_input_or_format(tmp_path, smoke_run):
    rgb = photo()
    save(tmp_path / "in" / "a.jpg", rgb)
    save(tmp_path / "in" / "b.png", rgb)
    assert invoke("inpaint", "--checkpoint", smoke_run, "--center", tmp_path / "in", "--out", tmp_path / "o").exit_code == 0
    assert Image.open(tmp_path / "o" / "a.jpg").format == "JPEG" and Image.open(tmp_path / "o" / "b.png").format == "PNG"
    r = invoke("inpaint", "--checkpoint", smoke_run, "--center", tmp_path / "in" / "b.png", "--out", tmp_path / "w",
               "--format", "webp")
    assert r.exit_code == 0, r.output
    out = np.asarray(Image.open(tmp_path / "w" / "b.webp").convert("RGB"))
    hole = center_hole(48, 64)
    assert np.array_equal(out[~hole], rgb[~hole])                          # WebP is written lossless
    assert "did you mean 'jpg'?" in usage_error(invoke("inpaint", "--checkpoint", smoke_run, "--center",
                                                       tmp_path / "in", "--out", tmp_path / "x", "--format", "jpgg"))


def test_folder_run_shows_a_progress_bar_unless_no_progress(tmp_path, smoke_run):
    write_photos(tmp_path / "in", 3, seed=7)
    r = invoke("inpaint", "--checkpoint", smoke_run, "--center", tmp_path / "in", "--out", tmp_path / "o")
    assert r.exit_code == 0 and "3/3" in r.stderr and "photo" in r.stderr
    assert len(r.stdout.split()) == 3                                       # stdout: only the written paths
    r = invoke("inpaint", "--checkpoint", smoke_run, "--center", tmp_path / "in", "--out", tmp_path / "o2",
               "--no-progress")
    assert r.exit_code == 0 and r.stderr == ""


# ---------------------------------------------------------------- habits: runs that talk

def test_train_prints_what_it_will_do_and_logs_without_a_bar(tmp_path, tiny_photos):
    r = invoke("train", "--preset", "smoke", "--data", tiny_photos, "--out", tmp_path / "run", "--steps", "10",
               "--mask", "mixed", "--no-progress", "--set", "data.workers=0")
    assert r.exit_code == 0, r.output
    err = r.stderr
    assert f"12 photos found in {tiny_photos}" in err
    assert "device cpu, precision" in err
    assert "32 px, batch 8, hole mixed" in err and "steps 0 -> 10" in err and "epochs" in err
    logged = [ln for ln in err.splitlines() if ln.startswith("step ")]
    assert [ln.split()[1] for ln in logged] == ["5/10", "10/10"]              # smoke logs every 5 steps
    assert "hole_mse" in logged[0] and "img/s" in logged[0]


def test_presets_list_tells_m1_and_m1_plus_apart():
    r = invoke("presets")
    assert r.exit_code == 0
    rows = {ln.split()[0]: ln for ln in r.stdout.splitlines()}
    for column in ("hole", "L2 norm", "lr", "crops", "steps"):
        assert column in rows["preset"]
    assert "tensor 0.9/0.1" in rows["m1"] and "constant" in rows["m1"] and "87.5-100%" in rows["m1"]
    assert "region 0.5/0.5" in rows["m1-plus"] and "cosine" in rows["m1-plus"] and "50-100%" in rows["m1-plus"]
    assert rows["m1"].split()[1:] != rows["m1-plus"].split()[1:]
    assert "10000" in rows["m1"].split() and "center" in rows["m1"].split()


def test_evaluate_accepts_mask_mixed_and_no_progress(tmp_path, smoke_run):
    write_photos(tmp_path / "val", 3, seed=8)
    args = ["evaluate", "--checkpoint", smoke_run, "--data", tmp_path / "val", "--baselines", "mean",
            "--mask", "mixed"]
    r = invoke(*args, "--out", tmp_path / "r1", "--no-progress")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "r1" / "metrics.json").read_text())["protocol"]["mask"] == "mixed"
    assert "scoring" not in r.stderr
    r = invoke(*args, "--out", tmp_path / "r2")
    assert r.exit_code == 0 and "scoring" in r.stderr and "6/6" in r.stderr    # 2 methods x 3 photos


def test_readme_main_job_trains_with_mixed_holes():
    text = README.read_text()
    main_job = text.split("## The main job", 1)[1].split("##", 1)[0]
    first_train = next(ln for ln in main_job.splitlines() if ln.startswith("inpaintssl train"))
    assert "--preset m1" in first_train and "--mask mixed" in first_train
