"""The model shipped inside the package (``bundled``): export, integrity checks, loading, quality."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inpaintssl import bundled
from inpaintssl.checkpoint import generator_weights, load_checkpoint
from inpaintssl.config import config_to_dict, get_preset
from inpaintssl.data.images import load_rgb
from inpaintssl.errors import InpaintsslError
from inpaintssl.gan.inpainter import Inpainter, center_hole
from inpaintssl.gan.models import Generator

from conftest import SHARED_DATA, VOC2007

SHIPPED = bundled.weights_dir() / bundled.WEIGHTS_FILE


def exported(tmp_path):
    cfg = get_preset("smoke")
    torch.manual_seed(0)
    G = Generator(cfg.model)
    info = bundled.export_bundled(G.state_dict(), config_to_dict(cfg), 7, {"command": "test"}, tmp_path)
    return G, info


def test_export_and_load_round_trip(tmp_path):
    G, info = exported(tmp_path)
    assert info["sha256"] == bundled.sha256_file(tmp_path / bundled.WEIGHTS_FILE)
    ckpt = bundled.load_bundled(tmp_path)
    assert ckpt["step"] == 7 and ckpt["config"]["preset"] == "smoke" and ckpt["bundled"]
    for k, v in G.state_dict().items():
        got = ckpt["generator"][k]
        if v.is_floating_point():                      # stored as fp16, loaded as fp32
            assert got.dtype == torch.float32
            torch.testing.assert_close(got, v.half().float(), rtol=0, atol=0)
        else:
            assert torch.equal(got, v)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "record"])
def test_damaged_files_are_one_line_errors_that_say_reinstall(tmp_path, damage):
    exported(tmp_path)
    weights = tmp_path / bundled.WEIGHTS_FILE
    if damage == "flip":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "delete":
        weights.unlink()
    else:
        (tmp_path / bundled.INFO_FILE).write_text("{not json")
    with pytest.raises(InpaintsslError, match="reinstall") as e:
        bundled.load_bundled(tmp_path)
    assert "\n" not in str(e.value)


def test_the_name_bundled_selects_the_shipped_model():
    assert SHIPPED.is_file(), f"{SHIPPED} is not in the package: the bundled model must ship with it"
    ckpt = load_checkpoint("bundled")
    assert ckpt["bundled"] and ckpt["config"]["mask"]["kind"] == "mixed"
    G = Generator(get_preset(ckpt["config"]["preset"]).model)
    G.load_state_dict(generator_weights(ckpt))
    assert SHIPPED.stat().st_size <= 15_000_000


@pytest.mark.skipif(not VOC2007.is_dir(), reason=f"VOC2007 test photos not found at {VOC2007}")
def test_bundled_model_inpaints_a_real_photo_and_keeps_the_rest():
    model = Inpainter.from_checkpoint("bundled", device="cpu")
    photo = VOC2007 / "JPEGImages" / "000002.jpg"           # a test photo: never trained on
    rgb = load_rgb(photo)
    hole = center_hole(*rgb.shape[:2])
    out = model(rgb, hole)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out[~hole], rgb[~hole])
    assert (out[hole] != rgb[hole]).any(axis=-1).mean() > 0.9


@pytest.mark.skipif(not VOC2007.is_dir(), reason=f"VOC2007 test photos not found at {VOC2007}")
def test_bundled_model_beats_telea_on_100_unseen_voc_test_photos():
    """Issue 13: on the first 100 VOC2007 test photos (never trained on) with seeded centre holes at the
    model's 64 px, the bundled model's mean hole PSNR and SSIM are above Telea's (966 photos: +1.28 dB)."""
    from inpaintssl.evaluation.evaluate import run_evaluation
    ids = (VOC2007 / "ImageSets" / "Main" / "test.txt").read_text().split()[:100]
    photos = [VOC2007 / "JPEGImages" / f"{i}.jpg" for i in ids]
    result = run_evaluation([bundled.BUNDLED], photos, baselines=("telea",), mask="center",
                            device="cpu", log=lambda *_: None)
    assert result.protocol["images"] == 100 and result.protocol["eval_size"] == 64
    model, telea = result.scores["bundled"], result.scores["telea"]
    gain = model["psnr_hole"] - telea["psnr_hole"]
    assert gain.mean() > 0.5, f"bundled - Telea = {gain.mean():+.2f} dB on centre holes"
    assert model["ssim_hole"].mean() > telea["ssim_hole"].mean()


def test_centre_trained_checkpoints_warn_for_other_hole_shapes(smoke_run):
    centre = Inpainter.from_checkpoint(smoke_run)
    assert centre.cfg.mask.kind == "center"
    for shape in ("painted", "freeform", "rect", "mixed"):
        msg = centre.hole_shape_warning(shape)
        assert msg.startswith("warning:") and "centre holes only" in msg and "\n" not in msg
    assert centre.hole_shape_warning("center") is None
    assert Inpainter.from_checkpoint("bundled").hole_shape_warning("painted") is None


def test_inpaint_needs_no_checkpoint_and_warns_for_centre_models(tmp_path, smoke_run):
    from click.testing import CliRunner

    from conftest import write_photos
    from inpaintssl.cli import cli
    photo = write_photos(tmp_path / "in", 1, h=96, w=128)[0]
    r = CliRunner().invoke(cli, ["inpaint", "--center", str(photo), "--out", str(tmp_path / "o"), "--no-progress"])
    assert r.exit_code == 0, r.output
    out = list((tmp_path / "o").iterdir())
    assert len(out) == 1 and "warning" not in r.output
    mask = tmp_path / "m.png"
    hole = np.zeros((96, 128), np.uint8)
    hole[10:30, 20:60] = 255
    from PIL import Image
    Image.fromarray(hole).save(mask)
    r = CliRunner().invoke(cli, ["inpaint", "--checkpoint", str(smoke_run), "--mask", str(mask), str(photo),
                                 "--out", str(tmp_path / "o2"), "--no-progress"])
    assert r.exit_code == 0 and "trained on centre holes only" in r.output


def test_serve_answers_a_burst_of_64_at_its_default_settings():
    pytest.importorskip("starlette", reason="the web demo needs the [demo] extra")
    httpx = pytest.importorskip("httpx", reason="the burst test uses httpx")
    import io
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from inpaintssl.app.serve import DEFAULT_MAX_QUEUE, ServerThread, create_app
    rgb = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    hole = np.zeros((96, 128), np.uint8)
    hole[30:60, 40:90] = 255

    def png(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        return buf.getvalue()

    files = {"image": ("p.png", png(rgb)), "mask": ("m.png", png(hole))}
    app = create_app(Inpainter.from_checkpoint("bundled", device="cpu"))      # the defaults of `serve`
    assert DEFAULT_MAX_QUEUE >= 63
    with ServerThread(app) as url, ThreadPoolExecutor(64) as pool:
        futures = [pool.submit(httpx.post, url + "api/inpaint", files=files, timeout=300) for _ in range(64)]
        codes = [f.result().status_code for f in futures]
    assert codes.count(200) == 64, {c: codes.count(c) for c in set(codes)}
