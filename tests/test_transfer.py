"""Transfer to classification: VOC / class-folder readers, VOC AP, encoder loading, the CLI end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import VOC2007, synthetic_photo
from inpaintssl.checkpoint import load_checkpoint
from inpaintssl.cli import cli
from inpaintssl.config import config_from_dict
from inpaintssl.presets import get_preset
from inpaintssl.errors import InpaintsslError
from inpaintssl.transfer.train import (Classifier, TransferConfig, build_classifier, classification_loss,
                                 load_encoder, resolve_init, run_epoch)
from inpaintssl.transfer.metrics import (average_precision, classification_metrics, mean_ap, reference_levels,
                                        top1_accuracy)
from inpaintssl.transfer.voc import (VOC_CLASSES, ClassificationDataset, labels_from_objects, load_class_folders,
                            load_labelled, load_voc, read_annotation)

# image id -> objects (class, difficult); the expected image-level labels are written out by hand below
OBJECTS = {
    "2008_000001": [("car", 0), ("person", 0)],
    "2008_000002": [("cat", 0), ("cat", 1)],          # one difficult cat does not hide the easy one
    "2008_000003": [("dog", 1)],                      # only a difficult dog -> label 0
    "2008_000004": [("car", 1), ("bus", 0)],
    "2008_000005": [("person", 0), ("person", 0), ("car", 0)],
    "2008_000006": [("cat", 0)],
    "2008_000007": [("bus", 0), ("person", 1)],
    "2008_000008": [("dog", 0), ("cat", 0)],
    "2008_000009": [("car", 0)],
    "2008_000010": [("person", 0), ("dog", 0)],
    "2008_000011": [("bus", 0), ("car", 0)],
    "2008_000012": [("cat", 1), ("car", 0)],
}
EXPECTED = {  # class -> {image id: label} for the non-absent entries; everything else is -1
    "car": {"2008_000001": 1, "2008_000004": 0, "2008_000005": 1, "2008_000009": 1, "2008_000011": 1,
            "2008_000012": 1},
    "person": {"2008_000001": 1, "2008_000005": 1, "2008_000007": 0, "2008_000010": 1},
    "cat": {"2008_000002": 1, "2008_000006": 1, "2008_000008": 1, "2008_000012": 0},
    "dog": {"2008_000003": 0, "2008_000008": 1, "2008_000010": 1},
    "bus": {"2008_000004": 1, "2008_000007": 1, "2008_000011": 1},
}
SPLITS = {"train": list(OBJECTS)[:8], "val": list(OBJECTS)[8:]}


def _xml(objects) -> str:
    objs = "".join(f"<object><name>{n}</name><pose>Left</pose><truncated>0</truncated><difficult>{d}</difficult>"
                   "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
                   for n, d in objects)
    return f"<annotation><folder>VOC2012</folder><size><width>64</width><height>48</height></size>{objs}</annotation>"


def make_voc(root: Path, label_files: bool = True, annotations: bool = True) -> Path:
    """A tiny VOC2012 folder: 12 synthetic JPEGs, train/val splits, label files and XML annotations."""
    voc = root / "VOCdevkit" / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for image_id, objects in OBJECTS.items():
        Image.fromarray(synthetic_photo(rng)).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=90)
        if annotations:
            (voc / "Annotations").mkdir(exist_ok=True)
            (voc / "Annotations" / f"{image_id}.xml").write_text(_xml(objects))
    for split, ids in SPLITS.items():
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        if label_files:
            for c in VOC_CLASSES:
                rows = "".join(f"{i} {EXPECTED.get(c, {}).get(i, -1):2d}\n" for i in ids)
                (voc / "ImageSets" / "Main" / f"{c}_{split}.txt").write_text(rows)
    return voc


def expected_matrix(ids) -> np.ndarray:
    return np.array([[EXPECTED.get(c, {}).get(i, -1) for c in VOC_CLASSES] for i in ids], np.int8)


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    return make_voc(tmp_path_factory.mktemp("voc"))


# ---------------------------------------------------------------- readers

def test_voc_label_files_and_xml_agree_with_hand_labels(voc):
    for split, ids in SPLITS.items():
        from_files = load_voc(voc, split, labels="files")
        from_xml = load_voc(voc, split, labels="xml")
        np.testing.assert_array_equal(from_files.labels, expected_matrix(ids))
        np.testing.assert_array_equal(from_xml.labels, expected_matrix(ids))
        assert [f.stem for f in from_files.files] == ids and from_files.multilabel
    assert "_train.txt" in load_voc(voc, "train").source          # auto prefers the label files
    # a VOCdevkit folder holding one VOC20xx is accepted too
    assert load_labelled(voc.parent, "val").labels.shape == (4, 20)


def test_voc_falls_back_to_xml_and_reports_bad_files(tmp_path):
    voc = make_voc(tmp_path, label_files=False)
    data = load_voc(voc, "train")
    assert "Annotations" in data.source
    assert data.labels[SPLITS["train"].index("2008_000003"), VOC_CLASSES.index("dog")] == 0
    with pytest.raises(InpaintsslError, match="no such split file; splits here: train, val"):
        load_voc(voc, "test")
    (voc / "Annotations" / "2008_000001.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><annotation>&x;</annotation>')
    with pytest.raises(InpaintsslError, match="DTD/entity"):
        read_annotation(voc / "Annotations" / "2008_000001.xml")
    (voc / "Annotations" / "2008_000001.xml").write_text(_xml([("unicorn", 0)]))
    with pytest.raises(InpaintsslError, match="unknown VOC class 'unicorn'"):
        load_voc(voc, "train")


def test_voc_label_file_missing_an_id_is_an_error(tmp_path):
    voc = make_voc(tmp_path, annotations=False)
    path = voc / "ImageSets" / "Main" / "car_train.txt"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(InpaintsslError, match="car_train.txt: has no label for image 2008_000008"):
        load_voc(voc, "train")


def test_labels_from_objects_follow_the_devkit():
    row = labels_from_objects([("cat", True), ("cat", False), ("dog", True)])
    assert row[VOC_CLASSES.index("cat")] == 1 and row[VOC_CLASSES.index("dog")] == 0
    assert (np.delete(row, [VOC_CLASSES.index("cat"), VOC_CLASSES.index("dog")]) == -1).all()


def test_class_folders(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 2)):
        for c in ("apple", "pear"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(synthetic_photo(rng)).save(tmp_path / split / c / f"{i}.png")
    train = load_labelled(tmp_path, "train")
    val = load_labelled(tmp_path, "val", classes=train.classes)
    assert train.classes == ("apple", "pear") and not train.multilabel
    assert train.labels.tolist() == [[1, -1]] * 3 + [[-1, 1]] * 3 and len(val.files) == 4
    (tmp_path / "val" / "plum").mkdir()
    with pytest.raises(InpaintsslError, match="classes not in the training split: plum"):
        load_class_folders(tmp_path, "val", train.classes)


def test_epoch_sampler_follows_the_shared_epoch_permutation():
    from inpaintssl.data.folder import epoch_permutation
    from inpaintssl.transfer.voc import EpochSampler
    keys = [list(EpochSampler(10, seed=3, epoch=e)) for e in (0, 1)]
    for e, k in enumerate(keys):
        assert k == [(int(i), e) for i in epoch_permutation(10, 3, e)]
    assert [i for i, _ in keys[0]] != [i for i, _ in keys[1]] and sorted(i for i, _ in keys[0]) == list(range(10))


def test_dataset_crops_are_seeded_per_epoch(voc):
    data = load_voc(voc, "train")
    ds = ClassificationDataset(data, 32, train=True, crop_min=0.5, seed=1)
    a, labels = ds[(2, 0)]
    assert a.shape == (3, 32, 32) and labels.dtype == torch.int8 and -1 <= a.min() <= a.max() <= 1
    assert torch.equal(a, ds[(2, 0)][0]) and not torch.equal(a, ds[(2, 1)][0])
    test_ds = ClassificationDataset(data, 32, train=False)
    assert torch.equal(test_ds[2][0], test_ds[2][0])


# ---------------------------------------------------------------- metrics

def test_average_precision_hand_computed():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, -1, 1, 0, -1, 1])               # 0.6 is difficult: ignored
    # ranked (difficult dropped): P N P N P -> (recall, precision) = (1/3, 1) (1/3, 1/2) (2/3, 2/3) (2/3, 1/2) (1, 3/5)
    # all-point: 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5; 11-point: (4 * 1 + 3 * 2/3 + 4 * 3/5) / 11
    assert average_precision(scores, labels) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert average_precision(scores, labels, "11point") == pytest.approx((4 + 2 + 2.4) / 11)
    moved = scores.copy()
    moved[3] = 5.0                                         # the difficult image's score does not matter
    assert average_precision(moved, labels) == average_precision(scores, labels)
    assert average_precision(scores, np.where(labels == 0, -1, labels)) < average_precision(scores, labels)
    assert average_precision(scores, np.array([1, 1, 1, -1, -1, -1])) == 1.0
    assert math.isnan(average_precision(scores, -np.ones(6)))
    assert mean_ap({"a": 0.5, "b": math.nan, "c": 1.0}) == 0.75


def test_top1_accuracy_and_metric_shapes():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.2, 0.3], [0.5, 0.1, 0.2]])
    labels = np.array([[1, -1, -1], [1, -1, 1], [-1, -1, 0], [-1, 1, -1]])
    assert top1_accuracy(scores, labels) == 0.5           # rows 0 and 2 (difficult counts as present)
    m = classification_metrics(scores, labels, ("a", "b", "c"))
    assert m["top1"] == 0.5 and m["positives"] == {"a": 2, "b": 1, "c": 1}
    assert m["map"] == pytest.approx(np.mean([m["ap"]["a"], m["ap"]["b"], m["ap"]["c"]]))


def test_reference_levels():
    train = np.array([[1, -1, -1], [1, 1, -1], [-1, 1, -1], [1, -1, -1]])      # class 0 is the most frequent
    test = np.array([[1, -1, -1], [0, 1, -1], [-1, 1, 1], [-1, -1, 1]])
    ref = reference_levels(train, test)
    assert ref["prior_top1"] == 0.5                      # class 0 present (1 or difficult) in 2 of 4
    assert ref["chance_map"] == pytest.approx(np.mean([1 / 3, 2 / 4, 2 / 4]))


def test_loss_ignores_difficult_entries():
    logits = torch.tensor([[3.0, -2.0, 40.0]])
    with_difficult = classification_loss(logits, torch.tensor([[1, -1, 0]], dtype=torch.int8), True)
    two_only = classification_loss(logits[:, :2], torch.tensor([[1, -1]], dtype=torch.int8), True)
    assert with_difficult == pytest.approx(float(two_only))


# ---------------------------------------------------------------- classifier and encoder loading

def test_pretrained_init_copies_encoder_and_leaves_head_new(smoke_run):
    ckpt = load_checkpoint(smoke_run)
    model_cfg, _ = resolve_init(str(smoke_run), None)
    cfg = TransferConfig(seed=5)
    pre = build_classifier(model_cfg, 20, cfg, ckpt)
    rnd = build_classifier(model_cfg, 20, cfg, None)
    gen = ckpt["generator"]
    enc_keys = [k for k in pre.state_dict() if not k.startswith("head.")]
    assert enc_keys and all(k.startswith(("encoder.", "bottleneck.")) for k in enc_keys)
    for k in enc_keys:
        assert torch.equal(pre.state_dict()[k], gen[k]), k
    assert any(not torch.equal(rnd.state_dict()[k], gen[k]) for k in enc_keys if k.endswith("weight"))
    for k, v in pre.state_dict().items():                  # same seed: same new head in both runs
        if k.startswith("head."):
            assert k not in gen and torch.equal(v, rnd.state_dict()[k]), k
    out = pre(torch.rand(3, 3, 32, 32) * 2 - 1)
    assert out.shape == (3, 20) and torch.isfinite(out).all()


def test_classifier_features_are_the_generators_encoder(smoke_run):
    from inpaintssl.gan.models import Generator
    ckpt = load_checkpoint(smoke_run)
    model_cfg = config_from_dict(ckpt["config"]).model
    G = Generator(model_cfg)
    G.load_state_dict(ckpt["generator"])
    model = build_classifier(model_cfg, 20, TransferConfig(), ckpt).eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), G.eval().forward_features(x))


def test_other_architecture_is_a_clear_error(smoke_run):
    ckpt = load_checkpoint(smoke_run)
    other = Classifier(get_preset("m1-64").model, 20, TransferConfig())
    with pytest.raises(InpaintsslError, match="does not fit this classifier"):
        load_encoder(other, ckpt)
    with pytest.raises(InpaintsslError, match="does not match --preset m1-64"):
        resolve_init(str(smoke_run), "m1-64")
    extra = dict(ckpt, generator=dict(ckpt["generator"], **{"encoder.9.0.weight": torch.zeros(1)}))
    with pytest.raises(InpaintsslError, match="unexpected"):
        load_encoder(Classifier(config_from_dict(ckpt["config"]).model, 20, TransferConfig()), extra)


def test_mask_channel_generator_is_accepted():
    mcfg = get_preset("smoke").model
    mcfg.mask_channel = True
    out = Classifier(mcfg, 5, TransferConfig()).eval()(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 5)


# ---------------------------------------------------------------- CLI end to end

def test_cli_compare_writes_report(smoke_run, voc, tmp_path):
    out = tmp_path / "cmp"
    args = ["transfer", "compare", "--data", str(voc), "--init", str(smoke_run), "--train-split", "train",
            "--test-split", "val", "--epochs", "1", "--batch", "4", "--workers", "0", "--out", str(out),
            "--no-progress"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    report = (out / "report.md").read_text()
    assert "## Table 3" in report and "With random weight initialization" in report
    table = [line for line in report.splitlines() if line.startswith("| With")]
    assert len(table) == 2 and all(len(line.split("|")) == 7 for line in table)
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("pretrained", "random"):
        assert 0 <= metrics[name]["test"]["map"] <= 1 and metrics[name]["test"]["images"] == 4
        assert metrics[name]["test"]["ap"]["sheep"] is None      # no positives: no AP
        assert len((out / name / "history.jsonl").read_text().splitlines()) == 1
    assert "| car | 2 | 3 |" in report                      # positives: 2 in train, 3 in val
    assert "always ranking the most frequent training class first" in report
    assert (out / "history.png").stat().st_size > 1000
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and "already holds a comparison" in again.output


def test_cli_train_random_init_on_class_folders(tmp_path):
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        for c in ("a", "b", "c"):
            (tmp_path / "data" / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(synthetic_photo(rng)).save(tmp_path / "data" / split / c / f"{i}.png")
    res = CliRunner().invoke(cli, ["transfer", "train", "--data", str(tmp_path / "data"), "--init", "random",
                                   "--preset", "smoke", "--train-split", "train", "--test-split", "val",
                                   "--epochs", "2", "--batch", "3", "--workers", "0",
                                   "--out", str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["init"] == "random" and len(metrics["history"]) == 2 and metrics["test"]["images"] == 6
    assert set(metrics["test"]["ap"]) == {"a", "b", "c"}
    bad = CliRunner().invoke(cli, ["transfer", "train", "--data", str(tmp_path / "data"), "--init", "random",
                                   "--train-split", "nope", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "no such split folder" in bad.output


@pytest.mark.skipif(not VOC2007.is_dir(), reason=f"VOC2007 sample not found at {VOC2007} (shared data only)")
def test_real_voc2007_sample_labels():
    data = load_voc(VOC2007, "test")
    assert data.labels.shape == (966, 20) and set(np.unique(data.labels)) <= {-1, 0, 1}
    # every image of this sample contains a car, cat, train or bus (see the data README)
    keep = [VOC_CLASSES.index(c) for c in ("car", "cat", "train", "bus")]
    assert (data.labels[:, keep] >= 0).any(axis=1).all()


# ---------------------------------------------------------------- the training loop's fast paths

def test_fit_keeps_workers_and_epoch_order_and_runs_at_the_resolved_precision(smoke_run, voc, tmp_path, monkeypatch):
    """One persistent training loader for the whole fit that still yields each epoch's EpochSampler order;
    forward passes at resolve_precision (fp32 with amp=False)."""
    import inpaintssl.transfer.train as transfer_train
    from inpaintssl.gan.step import resolve_precision
    from inpaintssl.transfer.voc import EpochSampler
    real, calls = transfer_train.run_epoch, []

    def recording(model, loader, device, multi, optimizer=None, progress=False, desc="", precision="fp32"):
        batches = list(loader)
        calls.append({"loader": loader, "train": optimizer is not None, "precision": precision,
                      "labels": torch.cat([lab for _, lab in batches])})
        return real(model, batches, device, multi, optimizer, progress, desc, precision)
    monkeypatch.setattr(transfer_train, "run_epoch", recording)
    ckpt = load_checkpoint(smoke_run)
    train_data, test_data = load_voc(voc, "train"), load_voc(voc, "val")
    model_cfg = config_from_dict(ckpt["config"]).model
    cfg = TransferConfig(epochs=3, batch_size=3, workers=2, device="cpu", seed=4)
    transfer_train.fit(build_classifier(model_cfg, 20, cfg, ckpt), train_data, test_data, cfg, tmp_path / "a")
    train_calls = [c for c in calls if c["train"]]
    assert len(train_calls) == 3 and all(c["loader"] is train_calls[0]["loader"] for c in train_calls)
    assert train_calls[0]["loader"].persistent_workers
    for epoch, c in enumerate(train_calls):                       # 8 images, batch 3: two full batches
        order = [i for i, _ in EpochSampler(8, 4, epoch)][:6]
        assert torch.equal(c["labels"], torch.from_numpy(train_data.labels[order])), epoch
    assert {c["precision"] for c in calls} == {resolve_precision(torch.device("cpu"), True)}
    calls.clear()
    cfg = TransferConfig(epochs=1, batch_size=3, workers=0, device="cpu", amp=False)
    transfer_train.fit(build_classifier(model_cfg, 20, cfg, ckpt), train_data, test_data, cfg, tmp_path / "b")
    assert {c["precision"] for c in calls} == {"fp32"} and not calls[0]["loader"].persistent_workers


def test_run_epoch_stops_on_a_non_finite_loss():
    model = build_classifier(get_preset("smoke").model, 3, TransferConfig())
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    S = model.model_cfg.image_size
    good = (torch.zeros(2, 3, S, S), torch.tensor([[1, -1, -1], [-1, 1, -1]], dtype=torch.int8))
    bad = (torch.full((2, 3, S, S), float("nan")), good[1])
    loss, scores, labels = run_epoch(model, [good], torch.device("cpu"), True, opt)
    assert math.isfinite(loss) and scores.shape == labels.shape == (2, 3) and scores.dtype == np.float32
    for optimizer in (opt, None):                                 # training and testing
        with pytest.raises(InpaintsslError, match="non-finite loss"):
            run_epoch(model, [good, bad, good], torch.device("cpu"), True, optimizer)


def test_bf16_transfer_epoch_keeps_weights_statistics_and_momentum_in_float32():
    from inpaintssl.gan.step import cpu_has_native_bf16
    if not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16 (AVX-512 BF16 / AMX): transfer runs in fp32 here")
    model = build_classifier(get_preset("smoke").model, 4, TransferConfig(dropout=0.0))
    S = model.model_cfg.image_size
    g = torch.Generator().manual_seed(0)
    batch = (torch.rand(6, 3, S, S, generator=g) * 2 - 1, (torch.randint(0, 2, (6, 4), generator=g) * 2 - 1).to(torch.int8))
    _, ref, _ = run_epoch(model, [batch], torch.device("cpu"), True)                   # fp32, eval mode
    model.to(memory_format=torch.channels_last)
    _, fast, _ = run_epoch(model, [batch], torch.device("cpu"), True, precision="bf16")
    assert fast.dtype == np.float32 and not np.array_equal(fast, ref) and np.abs(fast - ref).max() < 0.05
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss, _, _ = run_epoch(model, [batch], torch.device("cpu"), True, opt, precision="bf16")
    assert math.isfinite(loss)
    state = list(model.state_dict().items())
    assert all(v.dtype in (torch.float32, torch.int64) for _, v in state), [k for k, v in state if v.dtype == torch.bfloat16]
    assert all(s["momentum_buffer"].dtype == torch.float32 for s in opt.state.values()) and opt.state
