import json

import pytest

from inpaintssl.config import apply_overrides, config_from_dict, config_to_dict, save_config, load_config

from inpaintssl.presets import get_preset
from inpaintssl.errors import InpaintsslError


def test_presets_follow_the_paper():
    m1, m2, m3 = get_preset("m1"), get_preset("m2"), get_preset("m3")
    assert (m1.loss.w1, m1.loss.w2, m1.loss.w3, m1.loss.w4) == (0.9, 0.1, 1e-5, 1e-5)
    assert (m1.optim.lr_g, m1.optim.lr_d) == (2e-3, 1e-3)
    assert m1.model.global_d and m1.model.local_d and m1.model.skips and m1.model.predict == "image"
    assert not m2.model.global_d and m2.model.local_d and m2.model.skips
    assert not m3.model.global_d and not m3.model.skips and m3.model.predict == "patch"
    assert get_preset("smoke").model.image_size <= 64


def test_overrides_typed_and_strict():
    cfg = apply_overrides(get_preset("m1"), ["train.seed=7", "loss.w3=1e-4", "model.skips=false", "mask.kind=rect"])
    assert cfg.train.seed == 7 and cfg.loss.w3 == 1e-4 and cfg.model.skips is False and cfg.mask.kind == "rect"
    for bad in ["train.sed=1", "nosuch.key=1", "train.seed", "train.seed=abc", "model.skips=maybe", "seed=1"]:
        with pytest.raises(InpaintsslError):
            apply_overrides(get_preset("m1"), [bad])


def test_validate_rejects_inconsistent_configs():
    with pytest.raises(InpaintsslError, match="patch"):
        apply_overrides(get_preset("m3"), ["mask.kind=freeform"]).validate()
    with pytest.raises(InpaintsslError, match="power of two"):
        apply_overrides(get_preset("m1"), ["model.image_size=100"]).validate()
    with pytest.raises(InpaintsslError):
        get_preset("m9")
    for bad, match in (("model.skip_dropout=1", "skip_dropout"), ("model.skip_drop=-1", "skip_drop"),
                       ("mask.patch_size=0.6", "patch_size"), ("mask.patch_ratio_min=0.8", "patch_ratio")):
        with pytest.raises(InpaintsslError, match=match):
            apply_overrides(get_preset("m1"), [bad]).validate()


def test_roundtrip(tmp_path):
    cfg = apply_overrides(get_preset("m2"), ["train.seed=3"])
    assert config_from_dict(json.loads(json.dumps(config_to_dict(cfg)))) == cfg
    save_config(cfg, tmp_path / "config.json")
    assert load_config(tmp_path / "config.json") == cfg
    with pytest.raises(InpaintsslError, match="unknown key"):
        config_from_dict({"model": {"nope": 1}})


def test_m1_plus_changes_only_the_loss_weighting_schedule_and_crops():
    m1, plus = config_to_dict(get_preset("m1")), config_to_dict(get_preset("m1-plus"))
    assert plus["loss"] == dict(m1["loss"], mse_norm="region", w1=0.5, w2=0.5)
    assert plus["optim"] == dict(m1["optim"], schedule="cosine")
    assert plus["data"] == dict(m1["data"], crop_min=0.5)
    assert {k: v for k, v in plus.items() if k not in ("loss", "optim", "data", "preset")} == \
        {k: v for k, v in m1.items() if k not in ("loss", "optim", "data", "preset")}
    small = config_to_dict(get_preset("m1-plus-64"))
    assert small["loss"] == plus["loss"] and small["model"] == config_to_dict(get_preset("m1-64"))["model"]
