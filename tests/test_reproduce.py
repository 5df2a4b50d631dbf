"""``inpaintssl reproduce``: the scale table, the equivalent commands, the HTML page, bad input refused before
any training, and (on the shared photos) the tiny scale end to end, a rerun that keeps every stage, and a
failed stage that names itself and leaves the finished ones intact."""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest
from click.testing import CliRunner

from conftest import COCO_TRAIN, COCO_VAL, VOC2007, needs_coco
from test_transfer import make_voc
from inpaintssl.cli import cli
from inpaintssl.config import apply_overrides, config_to_dict
from inpaintssl.presets import get_preset
from inpaintssl.evaluation import ablation
from inpaintssl.reproduce import SCALES, stages
from inpaintssl.reproduce.html import markdown_to_html
from inpaintssl.reproduce.scales import PLUS_SWITCHES, config_overrides, pretrain_models

needs_shared = pytest.mark.skipif(not (COCO_TRAIN.is_dir() and VOC2007.is_dir()),
                                  reason=f"shared photos not found at {COCO_TRAIN.parent.parent} (dev/CI only)")


def _without(d: dict, *keys: str) -> dict:
    """A config dict without the given section.key entries and without its preset name."""
    d = json.loads(json.dumps(d))
    d.pop("preset")
    for key in keys:
        section, name = key.split(".")
        d[section].pop(name)
    return d


# ---------------------------------------------------------------- scales and configs

@pytest.mark.parametrize("scale", list(SCALES))
def test_each_scale_trains_the_four_models_alike(scale):
    sc = SCALES[scale]
    models = pretrain_models(sc, seed=3)
    assert list(models) == ["m1", "m2", "m3", "m1-plus"]
    m1, m2, m3, plus = (config_to_dict(models[n].cfg) for n in models)
    for cfg in (m1, m2, m3, plus):
        assert (cfg["model"]["image_size"], cfg["train"]["steps"], cfg["train"]["seed"]) == (sc.image_size, sc.steps, 3)
        assert cfg["mask"]["kind"] == "center" and cfg["train"]["batch_size"] == m1["train"]["batch_size"]
    assert _without(m2, "model.global_d") == _without(m1, "model.global_d") and not m2["model"]["global_d"]
    assert m3["model"]["predict"] == "patch" and not m3["model"]["skips"]
    assert plus["loss"]["mse_norm"] == "region" and plus["optim"]["schedule"] == "cosine"


def test_the_32px_improved_recipe_is_the_presets_recipe():
    """PLUS_SWITCHES turn m1-64 into exactly m1-plus-64, so the 32 px m1-plus follows the same recipe."""
    derived = apply_overrides(get_preset("m1-64"), PLUS_SWITCHES)
    assert _without(config_to_dict(derived)) == _without(config_to_dict(get_preset("m1-plus-64")))
    tiny = pretrain_models(SCALES["tiny"])
    assert tiny["m1-plus"].cfg.preset == "m1-plus-32" and tiny["m1-plus"].base == "smoke"
    assert sorted(config_overrides(tiny["m1-plus"].cfg, "smoke")) == sorted(PLUS_SWITCHES)


@pytest.mark.parametrize("scale", ["tiny", "cpu"])
def test_train_commands_rebuild_the_same_configs(scale):
    for name, model in pretrain_models(SCALES[scale], seed=5).items():
        cfg = apply_overrides(get_preset(model.base), config_overrides(model.cfg, model.base))
        cfg.train.steps, cfg.mask.kind = model.cfg.train.steps, "center"
        assert _without(config_to_dict(cfg)) == _without(config_to_dict(model.cfg)), name


def test_html_is_one_offline_page(tmp_path):
    from PIL import Image
    Image.new("RGB", (4, 4), "red").save(tmp_path / "a.png")
    md = ("# Title\n\nA _word_ and **bold** <script>x</script>\n\n| a | b |\n|---|---|\n| 1 | `c|d` |\n\n"
          "![a](a.png)\n\n![gone](missing.png)\n\n```bash\necho '<hi>'\n```\n\n- one\n- two\n")
    page = markdown_to_html(md, tmp_path, "t")
    assert page.count('src="data:image/png;base64,') == 1 and "image not available: missing.png" in page
    assert "<script>" not in page and "&lt;script&gt;" in page and "<em>word</em>" in page
    assert "<table>" in page and "<pre>echo &#x27;&lt;hi&gt;&#x27;</pre>" in page and page.count("<li>") == 2
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


# ---------------------------------------------------------------- bad input, before any training

@pytest.fixture()
def inputs(tiny_photos, tmp_path):
    return {"data": tiny_photos, "eval": tiny_photos, "voc": make_voc(tmp_path / "voc")}


def _args(inp, out, *more):
    return ["reproduce", "--scale", "tiny", "--data", str(inp["data"]), "--eval-data", str(inp["eval"]),
            "--voc", str(inp["voc"]), "--out", str(out), "--no-progress", *more]


@pytest.mark.parametrize("case, code, message", [
    ("missing data", 1, "nope: no such folder"),
    ("empty eval folder", 1, "no photos"),
    ("voc without labels", 1, "no labels for split"),
    ("out holds something else", 1, "holds something else"),
    ("resume with nothing", 1, "nothing to resume"),
    ("limit 0", 1, "--limit 0"),
    ("no --data", 2, "missing option --data"),
    ("resume and overwrite", 2, "not both"),
    ("unknown scale", 2, "did you mean 'tiny'"),
])
def test_bad_input_is_refused_before_training(inputs, tmp_path, monkeypatch, case, code, message):
    monkeypatch.setattr(ablation, "train", lambda *a, **k: pytest.fail("training started"))   # the one call site
    out = tmp_path / "repro"
    args = _args(inputs, out)
    if case == "missing data":
        args[args.index("--data") + 1] = str(tmp_path / "nope")
    elif case == "empty eval folder":
        (tmp_path / "empty").mkdir()
        args[args.index("--eval-data") + 1] = str(tmp_path / "empty")
    elif case == "voc without labels":
        args[args.index("--voc") + 1] = str(make_voc(tmp_path / "bare", label_files=False, annotations=False))
    elif case == "out holds something else":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "resume with nothing":
        args = ["reproduce", "--out", str(out), "--resume"]
    elif case == "limit 0":
        args += ["--limit", "0"]
    elif case == "no --data":
        args = [a for i, a in enumerate(args) if "--data" not in (a, args[i - 1])]
    elif case == "resume and overwrite":
        args += ["--resume", "--overwrite"]
    elif case == "unknown scale":
        args[args.index("--scale") + 1] = "tinny"
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, result.output
    assert message in result.stderr and "Traceback" not in result.stderr
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1                   # one line
    assert not (out / "runs").exists() and not (out / "stages.json").exists()


def test_interrupted_pretraining_is_recorded_and_exits_130(inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "train", lambda *a, **k: {"interrupted": True, "step": 3})
    monkeypatch.setattr(stages, "time_steps", lambda *a, **k: 0.01)
    out = tmp_path / "repro"
    result = CliRunner().invoke(cli, _args(inputs, out))
    assert result.exit_code == 130 and "run the same command" in result.stderr
    rec = json.loads((out / "stages.json").read_text())["stages"]
    assert rec["pretrain"]["status"] == "interrupted" and rec["evaluate"]["status"] == "pending"


# ---------------------------------------------------------------- the tiny scale end to end (shared photos)

@pytest.fixture(scope="module")
def tiny_repro(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce") / "repro"
    args = ["reproduce", "--scale", "tiny", "--data", str(COCO_TRAIN), "--eval-data", str(COCO_VAL),
            "--voc", str(VOC2007), "--out", str(out), "--limit", "8", "--no-progress"]
    t0 = time.perf_counter()
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return {"out": out, "args": args, "stderr": result.stderr, "seconds": time.perf_counter() - t0}


SECTIONS = ("## Stages", "## The paper's claims beside our numbers", "## 1. Pretraining", "### Training runs",
            "### Loss curves", "## 2. Evaluation beside Telea", "## 3. The paper's figures", "### Figure 3 (M1)",
            "### Figure 5 (M2", "### Figure 6 (M3", "## 4. Transfer to VOC classification", "### Figure 7",
            "## 5. Linear probes", "## Resolved configs", "## Machine", "## Commands")


@needs_coco
@needs_shared
def test_tiny_scale_end_to_end_report(tiny_repro):
    out, err = tiny_repro["out"], tiny_repro["stderr"]
    titles = ("pretraining", "evaluation", "figures", "transfer to VOC", "linear probes", "report")
    for i, title in enumerate(titles, 1):
        assert re.search(rf"^\[{i}/6\] {re.escape(title)}: .*ETA \d+", err, re.M), title     # a line with an ETA
    rec = json.loads((out / "stages.json").read_text())["stages"]
    assert {n: r["status"] for n, r in rec.items()} == {"pretrain": "done", "evaluate": "done", "figures": "done",
                                                         "transfer": "done", "probes": "done", "report": "done"}
    assert all(rec[n]["seconds"] > 0 for n in ("pretrain", "evaluate", "probes"))
    md = (out / "report.md").read_text()
    positions = [md.index(s) for s in SECTIONS]
    assert positions == sorted(positions)                                     # every section, in order
    assert "| 5 | linear probes | done |" in md and "Linear probes on frozen encoder features: test mAP" in md
    for layer in ("layer1", "bottleneck"):                                    # the layer x init table
        assert re.search(rf"^\| {layer} \| [\d.]+ ± [\d.]+ \(", md, re.M), layer
    # the paper's claims beside ours
    for claim in ("\"the image is too blurry\"", "better crisper and realistic", "57.4% vs 55.1% (+2.3)",
                  "75.5% vs 75.8% (-0.3)", "m1-plus fills holes better"):
        assert re.search(re.escape(claim) + r".*\| (yes|no|partly|see Figure 3) \|", md), claim
    # the ablation table (models beside the baselines on the same holes) and Table 3 with the paper's rows
    for method in ("m1", "m2", "m3", "m1-plus", "telea", "ns", "mean"):
        assert re.search(rf"^\| {re.escape(method)} \| (\*\*)?\d+\.\d+ ±", md, re.M), method
    assert "| Paper: with weight initialization from pretrained model | 75.5 | 57.4 |" in md
    assert re.search(r"\| Ours: from the M1 inpainting encoder \| \d+\.\d \| \d+\.\d \| \d+\.\d \| \d+\.\d \|", md)
    images = re.findall(r"^!\[[^\]]*\]\(([^)]+)\)$", md, re.M)
    assert {"figures/figure3_m1.png", "figures/figure5_m2.png", "figures/figure6_m3.png", "figures/loss_curves.png",
            "evaluation/grid.png", "transfer/history.png", "probes/probe_layers.png"} <= set(images)
    assert all((out / p).stat().st_size > 1000 for p in images)
    # configs, machine, commands
    assert '"preset": "m2-32"' in md and '"global_d": false' in md and '"epochs": 1' in md
    import torch
    assert f"| torch | {torch.__version__} |" in md and "| device | cpu |" in md and "| cpu |" in md
    cmds = md[md.index("## Commands"):]
    assert f"inpaintssl reproduce --scale tiny --data {COCO_TRAIN}" in cmds and "--limit 8" in cmds
    assert re.search(r"inpaintssl train --preset smoke .*--out \S+/runs/m2 --steps 100 --mask center "
                     r"--set model.global_d=false", cmds)
    assert "inpaintssl evaluate --checkpoint" in cmds and "inpaintssl transfer compare" in cmds
    # the HTML: the same report, every image inside it, nothing fetched from anywhere
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(images) and "image not available" not in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page) and "http://" not in page and "https://" not in page
    assert "<h2 id=\"machine\">Machine</h2>" in page and "57.4% vs 55.1%" in page


@needs_coco
@needs_shared
def test_rerun_keeps_every_finished_stage(tiny_repro):
    out = tiny_repro["out"]
    ckpt = out / "runs" / "m1" / "checkpoints" / "latest.pt"
    before = (ckpt.stat().st_mtime_ns, (out / "report.md").read_text())
    for args in (tiny_repro["args"], ["reproduce", "--out", str(out), "--resume", "--no-progress"]):
        t0 = time.perf_counter()
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert time.perf_counter() - t0 < max(10.0, tiny_repro["seconds"] / 3)
        assert result.stderr.count("complete, kept") == 6
        rec = json.loads((out / "stages.json").read_text())["stages"]
        assert all(r["this_run"] == "kept" for r in rec.values())
        assert (ckpt.stat().st_mtime_ns, (out / "report.md").read_text()) == before
    other = CliRunner().invoke(cli, [*tiny_repro["args"], "--seed", "1"])     # other pretraining: refused
    assert other.exit_code == 1 and "--seed 0 -> 1" in other.stderr and "--overwrite" in other.stderr


@needs_coco
@needs_shared
def test_a_failed_stage_names_itself_and_keeps_the_others(tiny_repro, tmp_path, monkeypatch):
    out = tmp_path / "repro"
    shutil.copytree(tiny_repro["out"], out)
    (out / "evaluation" / "metrics.json").unlink()                            # the evaluation must run again ...
    args = [*tiny_repro["args"][:tiny_repro["args"].index("--out") + 1], str(out), "--limit", "8", "--no-progress"]

    def boom(*a, **k):
        raise RuntimeError("boom in the evaluation")
    monkeypatch.setattr(ablation, "run_evaluation", boom)                     # ... and fails
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "stage 'evaluate' failed: RuntimeError: boom in the evaluation" in result.stderr
    rec = json.loads((out / "stages.json").read_text())["stages"]
    assert rec["evaluate"]["status"] == "failed" and "boom" in rec["evaluate"]["error"]
    assert all(rec[n]["status"] == "done" and rec[n]["this_run"] == "kept" for n in ("pretrain", "figures", "transfer"))
    assert (out / "runs" / "m1" / "checkpoints" / "latest.pt").is_file()
    md = (out / "report.md").read_text()
    assert "| 2 | evaluation | **FAILED** |" in md and "_Not available: the evaluate stage is failed" in md
    assert "| Paper: with random weight initialization | 75.8 | 55.1 |" in md  # the finished stages still report
    monkeypatch.undo()                                                        # fixed: the same command continues
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    rec = json.loads((out / "stages.json").read_text())["stages"]
    assert rec["evaluate"]["this_run"] == "ran" and rec["pretrain"]["this_run"] == "kept"
    assert "**FAILED**" not in (out / "report.md").read_text()
