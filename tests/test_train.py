"""Training: learning happens, runs are reproducible and resumable, nothing is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import smoke_config, write_photos
from inpaintssl.checkpoint import load_checkpoint
from inpaintssl.errors import InpaintsslError
from inpaintssl.gan.step import cpu_has_native_bf16
from inpaintssl.gan.train import train

QUIET = {"progress": False, "log": lambda *_: None}


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_smoke_training_lowers_hole_loss(tmp_path, tiny_photos):
    run = tmp_path / "run"
    cfg = smoke_config(300, "train.log_every=10", "train.sample_every=150")
    summary = train(cfg, run, [tiny_photos], **QUIET)
    assert summary["step"] == 300 and not summary["interrupted"]
    rows = read_metrics(run)
    start = sum(r["hole_mse"] for r in rows[:2]) / 2
    end = sum(r["hole_mse"] for r in rows[-3:]) / 3
    assert end < 0.4 * start, (start, end)          # measured 0.34 (fp32) and 0.35 (bf16)
    assert (run / "config.json").is_file()
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000150.png", "step_000300.png"]
    ckpt = load_checkpoint(run)
    assert ckpt["step"] == 300 and ckpt["config"]["preset"] == "smoke"
    # it learned more than the mean colour: on its photos, its hole MSE is well below the per-photo mean fill's
    from inpaintssl.data.images import list_images
    from inpaintssl.evaluation.evaluate import load_eval_image
    from inpaintssl.gan.inpainter import Inpainter
    from inpaintssl.gan.masks import center_mask
    model = Inpainter.from_checkpoint(run, device="cpu")
    S = model.image_size
    imgs = torch.stack([torch.from_numpy(load_eval_image(f, S)).permute(2, 0, 1).float() / 127.5 - 1
                        for f in list_images(tiny_photos)])
    m = center_mask(len(imgs), S)
    pred = model.generate(imgs, m)
    known = (imgs * (1 - m)).sum((2, 3), keepdim=True) / (1 - m).sum((2, 3), keepdim=True)
    mse = lambda fill: ((fill - imgs) ** 2 * m).sum() / (3 * m.sum())     # noqa: E731
    ratio = float(mse(pred) / mse(known.expand_as(imgs)))
    assert ratio < 0.6, ratio                       # measured 0.30; a mean-colour model scores about 1


def test_checkpoint_round_trip(tmp_path, tiny_photos):
    run = tmp_path / "run"
    train(smoke_config(4), run, [tiny_photos], **QUIET)
    ckpt = load_checkpoint(run / "checkpoints" / "latest.pt")
    from inpaintssl.config import config_from_dict
    from inpaintssl.gan.models import build_models
    models = build_models(config_from_dict(ckpt["config"]).model)
    for name, model in models.items():
        model.load_state_dict(ckpt[name])
        for k, v in model.state_dict().items():
            assert torch.equal(v, ckpt[name][k])


def weights(run):
    ckpt = load_checkpoint(run)
    return {f"{m}.{k}": v for m in ("generator", "d_global", "d_local") for k, v in ckpt[m].items()}


def tensors(obj, prefix=""):
    """Every tensor of a (nested) checkpoint dict, by dotted key path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    return {k: v for key, sub in items for k, v in tensors(sub, f"{prefix}.{key}" if prefix else str(key)).items()}


def assert_same_checkpoints(a, b):
    """Every tensor of the two checkpoints (weights, batch-norm statistics, EMA, Adam states) bit for bit.

    Not ``torch_rng``: the global generator's state at saving depends on how many data loaders the
    process started (training draws nothing from it: masks, data order and crops are functions of the step)."""
    ta, tb = (tensors({k: v for k, v in load_checkpoint(r).items() if k != "torch_rng"}) for r in (a, b))
    assert ta.keys() == tb.keys() and any(k.startswith("opt_d.state.") for k in ta)
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, different[:5]


# the bf16 path (CPU autocast) exists only where the CPU computes bf16 natively
PRECISIONS = [pytest.param("false", id="fp32"),
              pytest.param("true", id="bf16", marks=pytest.mark.skipif(
                  not cpu_has_native_bf16(), reason="this CPU has no native bf16 (AVX-512 BF16 / AMX): "
                                                    "train.amp=true trains in fp32 here"))]


@pytest.mark.parametrize("amp", PRECISIONS)
def test_resume_is_exact(tmp_path, tiny_photos, amp):
    """--steps 12 then --resume --steps 24 equals an uninterrupted --steps 24 run, tensor for tensor."""
    a, b = tmp_path / "a", tmp_path / "b"
    train(smoke_config(24, "data.workers=2", f"train.amp={amp}"), a, [tiny_photos], **QUIET)
    train(smoke_config(12, "data.workers=0", f"train.amp={amp}"), b, [tiny_photos], **QUIET)
    train(smoke_config(24, "data.workers=0", f"train.amp={amp}"), b, None, resume=True, **QUIET)   # sources from the run
    assert_same_checkpoints(a, b)
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca["step"] == cb["step"] == 24
    steps_a = [r["step"] for r in read_metrics(a)]
    assert [r["step"] for r in read_metrics(b)] == sorted(steps_a + [12])     # + the first run's last step
    assert {r["precision"] for r in read_metrics(b)} == {"bf16" if amp == "true" else "fp32"}


@pytest.mark.parametrize("amp", PRECISIONS)
def test_resume_is_exact_with_ema_and_cosine_schedule(tmp_path, tiny_photos, monkeypatch, amp):
    """The moving average is resumable state and the schedule a function of the step: a 10-step cosine
    run interrupted after step 5 and resumed equals the uninterrupted run, EMA weights included."""
    import inpaintssl.gan.train as train_module
    opts = ("train.ema=0.9", "optim.schedule=cosine", "data.workers=0", f"train.amp={amp}")
    a, b = tmp_path / "a", tmp_path / "b"
    train(smoke_config(10, *opts), a, [tiny_photos], **QUIET)
    real_step = train_module.train_step

    def step_then_interrupt(state, *args, **kw):
        out = real_step(state, *args, **kw)
        if state.step == 5:
            os.kill(os.getpid(), signal.SIGINT)             # Ctrl-C: the loop saves latest.pt and stops
        return out
    monkeypatch.setattr(train_module, "train_step", step_then_interrupt)
    assert train(smoke_config(10, *opts), b, [tiny_photos], **QUIET)["interrupted"]
    assert load_checkpoint(b)["step"] == 5
    monkeypatch.setattr(train_module, "train_step", real_step)
    train(smoke_config(10, *opts), b, None, resume=True, **QUIET)
    assert_same_checkpoints(a, b)
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert cb["step"] == 10 and "generator_ema" in ca
    assert any(not torch.equal(ca["generator_ema"][k], ca["generator"][k]) for k in ca["generator"])
    assert ca["opt_g"]["param_groups"][0]["lr"] < 0.03 * smoke_config(10).optim.lr_g   # cosine: near 0
    from inpaintssl.gan.inpainter import Inpainter                 # inference uses the moving average
    g = Inpainter.from_checkpoint(a, device="cpu").generator.state_dict()
    assert all(torch.equal(g[k], ca["generator_ema"][k]) for k in g)


def test_lr_schedule_and_ema_update():
    from inpaintssl.gan.step import lr_factor, update_ema
    cfg = smoke_config(100, "optim.schedule=cosine")
    assert lr_factor(cfg, 0) == 1.0 and abs(lr_factor(cfg, 50) - 0.5) < 1e-9 and lr_factor(cfg, 100) < 1e-12
    assert lr_factor(smoke_config(100), 73) == 1.0
    ema, model = torch.nn.BatchNorm2d(2), torch.nn.BatchNorm2d(2)
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.running_mean.fill_(2.0)
    model.num_batches_tracked.fill_(7)
    update_ema(ema, model, decay=0.5, step=1000)          # warm-up no longer limits: d = 0.5
    assert torch.allclose(ema.weight, torch.full((2,), 2.0)) and torch.allclose(ema.running_mean, torch.ones(2))
    assert int(ema.num_batches_tracked) == 7
    update_ema(ema, model, decay=0.999, step=0)           # warm-up: d = 1/10
    assert torch.allclose(ema.weight, torch.full((2,), 0.1 * 2.0 + 0.9 * 3.0))


def test_different_seed_gives_different_weights(tmp_path, tiny_photos):
    train(smoke_config(3), tmp_path / "a", [tiny_photos], **QUIET)
    train(smoke_config(3, "train.seed=1"), tmp_path / "b", [tiny_photos], **QUIET)
    wa, wb = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


def test_existing_run_is_never_overwritten_silently(tmp_path, tiny_photos):
    run = tmp_path / "run"
    train(smoke_config(2), run, [tiny_photos], **QUIET)
    before = (run / "checkpoints" / "latest.pt").read_bytes()
    with pytest.raises(InpaintsslError, match="--resume"):
        train(smoke_config(2), run, [tiny_photos], **QUIET)
    assert (run / "checkpoints" / "latest.pt").read_bytes() == before
    (run / "notes.txt").write_text("mine")
    train(smoke_config(2, "train.seed=3"), run, [tiny_photos], overwrite=True, **QUIET)
    assert (run / "notes.txt").read_text() == "mine"          # --overwrite removes only what train wrote
    with pytest.raises(InpaintsslError, match="nothing to resume"):
        train(smoke_config(2), tmp_path / "empty", [tiny_photos], resume=True, **QUIET)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_photos):
    run = tmp_path / "run"
    train(smoke_config(4), run, [tiny_photos], **QUIET)
    good = (run / "checkpoints" / "latest.pt").read_bytes()
    with pytest.raises(InpaintsslError, match="non-finite loss at step 6"):
        # step 5 updates the weights to inf (its own loss was finite); step 6 loss is the first non-finite
        train(smoke_config(8, "optim.lr_g=inf"), run, [tiny_photos], resume=True, **QUIET)
    assert (run / "checkpoints" / "latest.pt").read_bytes() == good


def test_bad_files_are_skipped_counted_and_reported(tmp_path):
    folder = tmp_path / "photos"
    write_photos(folder, 6, seed=4)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is not a JPEG")
    good = (folder / "img_000.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "readme.txt").write_text("ignored: not an image extension")
    messages = []
    summary = train(smoke_config(6), tmp_path / "run", [folder], progress=False, log=messages.append)
    assert summary["step"] == 6
    names = sorted(os.path.basename(p) for p in summary["skipped_files"])
    assert names == ["empty.jpg", "notes.jpg", "truncated.jpg"]
    assert any("skipped 3 unreadable file(s)" in m for m in messages)
    assert len((tmp_path / "run" / "skipped_files.txt").read_text().splitlines()) == 3


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "inpaintssl", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _wait_for(path, proc, timeout=60):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, "timed out waiting for training to start"
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_writes_latest(tmp_path, tiny_photos, sig):
    run = tmp_path / "run"
    proc = _cli("train", "--preset", "smoke", "--data", str(tiny_photos), "--out", str(run), "--steps", "100000",
                "--no-progress", "--set", "train.log_every=1", "--set", "train.ckpt_every=100000")
    _wait_for(run / "metrics.jsonl", proc)
    time.sleep(0.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "Traceback" not in err
    step = load_checkpoint(run)["step"]
    assert 0 < step < 100000


def test_sigkill_resumes_from_last_checkpoint(tmp_path, tiny_photos):
    run = tmp_path / "run"
    proc = _cli("train", "--preset", "smoke", "--data", str(tiny_photos), "--out", str(run), "--steps", "100000",
                "--no-progress", "--set", "train.ckpt_every=5")
    _wait_for(run / "checkpoints" / "latest.pt", proc)
    time.sleep(0.3)
    proc.kill()
    proc.communicate(timeout=30)
    saved = load_checkpoint(run)["step"]                     # a complete checkpoint, never half-written
    assert saved % 5 == 0 and saved >= 5
    res = subprocess.run([sys.executable, "-m", "inpaintssl", "train", "--out", str(run), "--resume",
                          "--steps", str(saved + 3), "--no-progress"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert load_checkpoint(run)["step"] == saved + 3


def test_recompute_bn_stats_gives_the_statistics_of_the_batches():
    """Each BN layer's running stats become the mean of its batch means and of its unbiased batch variances."""
    import copy
    from inpaintssl.gan.models import Generator, init_weights
    from inpaintssl.gan.step import recompute_bn_stats
    torch.manual_seed(0)
    G = Generator(smoke_config(1).model)
    init_weights(G)
    G.eval()
    batches = [torch.rand(4, 3, 32, 32) * 2 - 1 for _ in range(3)]
    probe, seen = copy.deepcopy(G).train(), {}                # batch statistics do not use running stats
    bns = {n: m for n, m in probe.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    for name, m in bns.items():
        m.register_forward_pre_hook(lambda mod, inp, name=name: seen.setdefault(name, []).append(inp[0]))
    with torch.no_grad():
        for x in batches:
            probe(x)
    weights = {k: v.clone() for k, v in G.named_parameters()}
    assert recompute_bn_stats(G, iter(batches)) == 3
    assert not G.training                                     # the mode it was in
    own = dict(G.named_modules())
    for name, inputs in seen.items():
        mean = torch.stack([x.mean(dim=(0, 2, 3)) for x in inputs]).mean(0)
        var = torch.stack([x.transpose(0, 1).flatten(1).var(dim=1) for x in inputs]).mean(0)
        torch.testing.assert_close(own[name].running_mean, mean, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(own[name].running_var, var, rtol=1e-4, atol=1e-6)
        assert own[name].momentum == bns[name].momentum and int(own[name].num_batches_tracked) == 3
    assert all(torch.equal(v, weights[k]) for k, v in G.named_parameters())


def test_saved_ema_has_the_batch_norm_statistics_of_its_weights(tmp_path, tiny_photos):
    """The EMA in a checkpoint carries statistics recomputed on the run's first batches, not averaged ones."""
    from inpaintssl.config import config_from_dict
    from inpaintssl.data.folder import ImageFolder
    from inpaintssl.data.sources import gather_files
    from inpaintssl.gan.models import Generator
    from inpaintssl.gan.step import recompute_bn_stats
    from inpaintssl.gan.train import ema_bn_inputs
    run = tmp_path / "run"
    train(smoke_config(6, "train.ema=0.9", "data.workers=0"), run, [tiny_photos], **QUIET)
    ckpt = load_checkpoint(run)
    cfg = config_from_dict(ckpt["config"])
    G = Generator(cfg.model)
    G.load_state_dict(ckpt["generator_ema"])
    ds = ImageFolder(gather_files([tiny_photos]), cfg.model.image_size, cfg.data, seed=cfg.train.seed)
    recompute_bn_stats(G, ema_bn_inputs(cfg, ds, slice(None), torch.device("cpu")))
    stats = [k for k in ckpt["generator_ema"] if k.endswith(("running_mean", "running_var"))]
    assert stats
    for k in stats:
        torch.testing.assert_close(G.state_dict()[k], ckpt["generator_ema"][k], rtol=1e-4, atol=1e-5)


def test_a_finished_run_resumed_does_not_open_its_data(tmp_path):
    photos, run = tmp_path / "photos", tmp_path / "run"
    write_photos(photos, 4)
    train(smoke_config(2, "data.workers=0"), run, [photos], **QUIET)
    for p in photos.iterdir():                                  # the data is gone: opening it would fail
        p.unlink()
    summary = train(smoke_config(2), run, None, resume=True, **QUIET)
    assert summary["step"] == 2 and not summary["interrupted"]


def test_cpu_without_native_bf16_trains_in_fp32(tmp_path, tiny_photos, monkeypatch):
    """The fallback: no native bf16 (forced here) or train.amp=false -> fp32, logged and printed."""
    import inpaintssl.gan.step as step
    monkeypatch.setattr(step, "cpu_has_native_bf16", lambda: False)
    lines = []
    summary = train(smoke_config(4, "data.workers=0", "train.log_every=2"), tmp_path / "a", [tiny_photos],
                    progress=False, log=lines.append)
    assert summary["step"] == 4
    assert [r["precision"] for r in read_metrics(tmp_path / "a")] == ["fp32", "fp32"]
    assert "precision fp32 (no native bf16 here)" in "\n".join(lines)
    monkeypatch.setattr(step, "cpu_has_native_bf16", lambda: True)        # the CPU has it, amp=false wins
    lines.clear()
    train(smoke_config(2, "data.workers=0", "train.amp=false"), tmp_path / "b", [tiny_photos],
          progress=False, log=lines.append)
    assert [r["precision"] for r in read_metrics(tmp_path / "b")] == ["fp32"]
    assert any(line.endswith("precision fp32") for line in lines), lines


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16 (AVX-512 BF16 / AMX)")
def test_bf16_step_keeps_weights_statistics_optimiser_and_ema_in_float32():
    from inpaintssl.gan.step import build_state, train_step, training_masks
    cfg = smoke_config(10, "train.ema=0.9")
    S = cfg.model.image_size
    real = torch.rand(4, 3, S, S, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mask = training_masks(cfg, 0, 4)
    after = {}
    for amp in (True, False):
        cfg.train.amp = amp
        state = build_state(cfg, torch.device("cpu"))
        assert state.precision == ("bf16" if amp else "fp32")
        x = real.contiguous(memory_format=torch.channels_last) if amp else real
        logs = train_step(state, x, mask)
        after[amp] = state.models["generator"].state_dict()
        if amp:
            assert all(v.dtype == torch.float32 for v in logs.values())
            for name, m in {**state.models, "ema": state.ema}.items():
                bad = [k for k, v in m.state_dict().items() if v.dtype not in (torch.float32, torch.int64)]
                assert not bad, (name, bad)                           # weights and batch-norm statistics
            for opt in (state.opt_g, state.opt_d):
                assert opt.state and all(v.dtype == torch.float32 for s in opt.state.values()
                                         for k, v in s.items() if k != "step")
    # and the bf16 step really ran in bf16: its update differs from the fp32 one
    assert any(not torch.equal(after[True][k], after[False][k]) for k in after[True])


def test_no_hole_mask_trains_a_plain_autoencoder(tmp_path, tiny_photos):
    """mask.kind=none (issue 14's autoencoder control): every mask is empty, the hole terms are zero and the
    whole-image reconstruction error falls."""
    from inpaintssl.gan.masks import make_masks
    assert make_masks("none", 3, 32, torch.Generator()).eq(0).all()
    run = tmp_path / "ae"
    cfg = smoke_config(60, "mask.kind=none", "train.log_every=10")
    assert train(cfg, run, [tiny_photos], **QUIET)["step"] == 60
    rows = read_metrics(run)
    assert all(r["mse_masked"] == 0 and r["hole_mse"] == 0 for r in rows)
    assert rows[-1]["mse_full"] < 0.5 * rows[0]["mse_full"], (rows[0]["mse_full"], rows[-1]["mse_full"])
