"""The photo-resolution path: the fully convolutional generator, holes at the photo's scale, the fill
paths' guarantees, and the native protocol of ``evaluate --resolution native``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import synthetic_photo, write_photos
from inpaintssl.presets import get_preset
from inpaintssl.errors import InpaintsslError
from inpaintssl.gan.fcn import ConvGenerator
from inpaintssl.gan.inpainter import FILL_PATHS, FillPath, Inpainter, hole_regions, thickness
from inpaintssl.gan.masks import make_masks, photo_hole, step_generator
from inpaintssl.gan.prefill import telea_fill, telea_prefill
from inpaintssl.gan.step import generator_input


@pytest.fixture(scope="module")
def fcn_model():
    cfg = get_preset("fcn")
    cfg.model.width, cfg.model.fcn_blocks = 8, 2
    torch.manual_seed(0)
    G = ConvGenerator(cfg.model)
    for p in G.parameters():                       # a random generator whose output depends on its input
        p.data.normal_(0, 0.2)
    return Inpainter(G, cfg, torch.device("cpu"), "tiny-fcn")


def test_fcn_generator_runs_at_any_multiple_of_8_and_refuses_others():
    cfg = get_preset("fcn")
    cfg.model.width, cfg.model.fcn_blocks = 8, 2
    G = ConvGenerator(cfg.model)
    for h, w in ((128, 128), (40, 96), (376, 504)):
        assert G(torch.zeros(1, 4, h, w)).shape == (1, 3, h, w)
    with pytest.raises(ValueError, match="multiples of 8"):
        G(torch.zeros(1, 4, 30, 40))


def test_fcn_preset_reads_the_mask_and_the_config_refuses_it_without():
    cfg = get_preset("fcn").validate()
    assert cfg.model.mask_channel and cfg.model.hole_fill == "telea"
    cfg.model.mask_channel = False
    with pytest.raises(InpaintsslError, match="mask_channel=true"):
        cfg.validate()


def test_photo_holes_scale_with_the_photo_and_repeat_for_a_seed():
    for kind in ("center", "rect", "strokes"):
        a = photo_hole(kind, 375, 500, step_generator(0, 3, 7))
        b = photo_hole(kind, 375, 500, step_generator(0, 3, 7))
        assert a.shape == (375, 500) and torch.equal(a, b) and a.any()
    c = photo_hole("center", 375, 500, None)
    assert c.sum() == 187 * 187
    # stroke widths are 2-8% of the shorter side (7.5-30 px at 500x375); where strokes cross or turn the
    # hole is thicker than one stroke
    widths = [thickness(photo_hole("strokes", 375, 500, step_generator(1, i, 7)).numpy()) for i in range(20)]
    assert 6 <= min(widths) and 10 <= np.median(widths) <= 36 and max(widths) <= 60
    small = [thickness(photo_hole("strokes", 94, 125, step_generator(1, i, 7)).numpy()) for i in range(20)]
    assert np.median(small) < np.median(widths) / 2.5


def test_square_training_strokes_are_unchanged_by_the_rectangular_painter():
    """make_masks on squares still paints what the one-distance-map-per-segment code painted (pinned sums)."""
    m = make_masks("freeform", 4, 64, torch.Generator().manual_seed(0))
    again = make_masks("freeform", 4, 64, torch.Generator().manual_seed(0))
    assert torch.equal(m, again) and 0 < m.mean() < 0.6


def test_hole_regions_split_separate_holes_and_merge_touching_ones():
    hole = np.zeros((100, 200), bool)
    hole[10:30, 10:30] = True
    hole[60:90, 150:190] = True
    hole[10:30, 31:40] = True                      # 1 px from the first: the same region
    regions = hole_regions(hole)
    assert len(regions) == 2 and np.array_equal(np.logical_or.reduce(regions), hole)


def test_telea_fill_reads_only_the_context():
    rng = np.random.default_rng(0)
    rgb = synthetic_photo(rng, 64, 64)
    hole = np.zeros((64, 64), bool)
    hole[20:40, 10:50] = True
    other = rgb.copy()
    other[hole] = rng.integers(0, 256, size=(hole.sum(), 3))
    assert np.array_equal(telea_prefill(rgb, hole), telea_prefill(other, hole))
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1
    m = torch.from_numpy(hole)[None, None].float()
    filled = telea_fill(x, m)
    assert torch.equal(filled * (1 - m), x * (1 - m)) and (filled * m).abs().sum() > 0
    assert generator_input(x, m, True, "telea").shape == (1, 4, 64, 64)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(8, 120), w=st.integers(8, 120), seed=st.integers(0, 10_000),
       path=st.sampled_from(sorted(FILL_PATHS)))
def test_every_fill_path_keeps_the_outside_and_ignores_the_hole(fcn_model, h, w, seed, path):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    hole = rng.random((h, w)) < rng.uniform(0.01, 0.4)
    hole[rng.integers(h), rng.integers(w)] = True
    model = fcn_model.with_path(path)
    out = model(rgb, hole)
    assert out.shape == rgb.shape and np.array_equal(out[~hole], rgb[~hole])
    other = rgb.copy()
    other[hole] = 255 - other[hole]
    assert np.array_equal(model(other, hole), out)


def test_large_holes_run_at_a_reduced_scale_and_thin_ones_at_the_photos(fcn_model, monkeypatch):
    seen = []
    real = fcn_model.generate
    monkeypatch.setattr(fcn_model, "generate", lambda x, m: seen.append(tuple(x.shape[-2:])) or real(x, m))
    rgb = synthetic_photo(np.random.default_rng(1), 240, 320)
    big = photo_hole("center", 240, 320, None).numpy()          # 120 px thick: shrunk to 64
    fcn_model(rgb, big)
    thin = np.zeros((240, 320), bool)
    thin[100:108, 20:300] = True        # 8 px thick: the photo's own scale, its box + 64 px of context
    fcn_model(rgb, thin)
    assert seen[0][0] <= 136 and seen[1] == (136, 320)


def test_fill_path_choices_are_checked():
    with pytest.raises(InpaintsslError, match="prefill"):
        FillPath(prefill="blur")
    with pytest.raises(InpaintsslError, match="unknown fill path"):
        Inpainter.with_path(object.__new__(Inpainter), "fastest")


def test_native_protocol_scores_methods_on_the_same_holes(tmp_path, fcn_model, monkeypatch):
    from inpaintssl.evaluation import native
    photos = write_photos(tmp_path / "p", 3, h=90, w=120)
    monkeypatch.setattr(native, "load_inpainter", lambda path, device: (fcn_model, {"kind": "checkpoint"}))
    r = native.run_native(["x"], [tmp_path / "p"], baselines=("telea", "mean"), kinds=("center", "strokes"),
                          fill_paths=("default", "v1"), log=lambda *_: None, grid_rows=2)
    assert r.protocol["images"] == 3 and set(r.scores) == {"center", "strokes"}
    assert list(r.scores["center"]) == ["tiny-fcn", "tiny-fcn@v1", "telea", "mean"]
    for kind in r.scores:
        for m, s in r.scores[kind].items():
            assert s["psnr_hole"].shape == (3,) and np.isfinite(r.swd[kind][m]).all()
    paths = native.write_native_report(r, tmp_path / "rep")
    text = paths["report.md"].read_text()
    assert "| telea |" in text and "PSNR - telea" in text and "of 3" in text
    assert paths["grid_center.png"].is_file()
    with pytest.raises(InpaintsslError, match="already holds"):
        native.write_native_report(r, tmp_path / "rep")
    assert len(photos) == 3


def test_swd_is_zero_for_the_same_patches_and_grows_with_a_flat_fill():
    from inpaintssl.evaluation.native import hole_patches, swd_hole
    rng = np.random.default_rng(0)
    img = synthetic_photo(rng, 96, 96)
    hole = np.zeros((96, 96), bool)
    hole[24:72, 24:72] = True
    flat = img.copy()
    flat[hole] = img[~hole].mean(0).astype(np.uint8)
    same = swd_hole([hole_patches(img, img, hole, np.random.default_rng(1))])
    gray = swd_hole([hole_patches(flat, img, hole, np.random.default_rng(1))])
    assert max(same) < 1e-6 and min(gray) > 10


def test_hole_metrics_on_the_crop_equal_those_on_the_whole_photo():
    from inpaintssl.evaluation.metrics import image_metrics, uint8_to_unit
    from inpaintssl.evaluation.native import SCORE_KEYS, hole_metrics
    rng = np.random.default_rng(4)
    img = synthetic_photo(rng, 120, 160)
    for hole in (photo_hole("strokes", 120, 160, step_generator(0, 1, 7)).numpy(),
                 photo_hole("center", 120, 160, None).numpy()):
        comp = img.copy()
        comp[hole] = rng.integers(0, 256, size=(hole.sum(), 3))
        full = image_metrics(uint8_to_unit(comp[None]), uint8_to_unit(img[None]), torch.from_numpy(hole)[None, None])
        crop = hole_metrics(comp, img, hole)
        for k in SCORE_KEYS:
            torch.testing.assert_close(crop[k], full[k], rtol=1e-12, atol=1e-12)
