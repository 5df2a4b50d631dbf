"""Linear probes at several depths of a frozen encoder: the standard protocol of self-supervised papers.

    feats = encoder_features(ckpt_or_None, model_cfg, data, grid=2, cache_dir=Path("features"))
    result = linear_probe(feats_train["layer3"], train.labels, feats_test["layer3"], test.labels, seed=0)

Features (:func:`encoder_features`): each photo's centre square, resized to the encoder's image size, goes
through the generator's encoder **in eval mode** (no hole, so an M1/M2 encoder sees the whole photo); the
output of every encoder layer ``layer1..layerN`` is average-pooled to a ``grid x grid`` map and flattened (a
layer already smaller than that is flattened at its own size, not copied up), the 1x1 bottleneck is flattened
as it is (``bottleneck``). Batch norm's statistics are first recomputed on
``bn_photos`` hole-free photos of the probe's training split (their labels unused; :func:`recompute_batch_norm`):
a checkpoint's running statistics were gathered on holed training batches, which the probe input never is
(0 keeps them). The default ``grid`` is 4, a measured choice: on Imagenette, grid 2 cost about 5 points of top-1
for every init, and grid 8 cost the shipped encoder and random 1-4 points at their best layers
(docs/transfer.md). They are computed once per (encoder, split, size, grid) and cached as ``.npz`` files
named by a hash of those, so a probe takes seconds; each fitted probe's result is kept there too (``fits/``),
so a rerun with one more init fits only that init's probes. A random encoder is the DCGAN initialisation of
the generator for a seed.

Probe (:func:`linear_probe`), chosen so that it converges and needs no learning rate:

* the features are standardised with the training split's mean and standard deviation, per feature,
  computed in float64, a feature that is constant on the training split is set to 0. This is exact for
  any scale: the random encoder's deep activations have a variance of ~1e-7 (its batch norm's initial
  statistics do not normalise them), which an ``eps`` of 1e-5 would swamp;
* an L2-regularised linear classifier: softmax cross-entropy (single-label data, top-1 accuracy) or one
  logistic regression per class ignoring difficult labels (multi-label VOC, mAP), fitted on the whole
  split at once with L-BFGS (strong Wolfe line search, float32) until the gradient's largest entry is
  below ``tol``; the loss
  is convex, so the optimum does not depend on a learning rate or on the start;
* the weight decay is chosen on a **validation split** (``val_fraction`` of the training split, class-
  stratified, seeded) from a log-spaced grid, by validation accuracy (mAP for multi-label); the probe is
  then refitted on the whole training split with that weight decay (warm-started from its validation-path
  fit: the optimum is the same, it only takes fewer iterations) and scored once on the test split.
  The test split never takes part in a choice. The result reports the training loss and accuracy, the
  validation score of every grid value, and the final gradient (its L2 norm and largest entry: a line
  search that stalls stops L-BFGS early with a large gradient, so an iteration count says nothing).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from ..checkpoint import atomic_write, atomic_write_text, generator_weights, unique_name
from ..config import ModelConfig
from ..presets import get_preset
from ..errors import InpaintsslError
from ..gan.models import Generator, init_weights, run_encoder
from ..gan.step import generator_input, recompute_bn_stats
from .metrics import classification_metrics
from .train import classification_loss, resolve_init
from .voc import ClassificationDataset, LabelledImages, balanced_subset, stratified_split

WEIGHT_DECAYS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)   # 0.1 was chosen at the grid's end before


@dataclass
class ProbeConfig:
    grid: int = 4                         # encoder layers are average-pooled to grid x grid
    bn_photos: int = 2048                 # batch norm recomputed on this many hole-free training photos (0 = off)
    val_fraction: float = 0.2             # of the training split, for the weight-decay choice
    weight_decays: tuple = WEIGHT_DECAYS  # L2 penalty grid (on the mean loss)
    max_iter: int = 500                   # L-BFGS iterations
    tol: float = 1e-4                     # stop when the gradient's max-abs is below this
    batch_size: int = 128                 # feature extraction batch
    workers: int = 0


def build_encoder(model_cfg: ModelConfig, ckpt: dict | None, seed: int = 0) -> Generator:
    """The generator (eval mode) whose encoder is probed: ``ckpt``'s weights (its EMA if kept), or the
    seeded DCGAN initialisation when ``ckpt`` is None."""
    torch.manual_seed(seed)
    G = Generator(model_cfg)
    init_weights(G)
    if ckpt is not None:
        G.load_state_dict(generator_weights(ckpt))
    return G.eval()


def encoder_id(model_cfg: ModelConfig, ckpt: dict | None, seed: int) -> str:
    """Names an encoder for the feature cache: the checkpoint's path, step, size and mtime, or random + seed."""
    if ckpt is None:
        key = {"random": seed, "model": dataclasses.asdict(model_cfg)}
    else:
        path = Path(str(ckpt.get("path", "")))
        stat = path.stat() if path.is_file() else None
        key = {"path": str(path), "step": ckpt.get("step"), "mtime": stat.st_mtime_ns if stat else None,
               "size": stat.st_size if stat else None}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@torch.no_grad()
def recompute_batch_norm(G: Generator, data: LabelledImages, photos: int, batch_size: int = 128,
                         workers: int = 0, seed: int = 0) -> Generator:
    """The encoder's batch-norm statistics recomputed on ``photos`` of ``data`` (a seeded sample, centre
    squares, no hole, as the probe sees them): each statistic is the plain average over the batches
    (``momentum=None``, :func:`..gan.step.recompute_bn_stats`). Only the encoder and bottleneck are touched;
    returns ``G`` in eval mode."""
    if photos <= 0:
        return G.eval()
    idx = np.random.default_rng(seed).permutation(len(data.files))[:photos].tolist()
    loader = DataLoader(Subset(ClassificationDataset(data, G.cfg.image_size, train=False), idx),
                        batch_size=batch_size, shuffle=False, num_workers=workers)
    recompute_bn_stats(_Encoder(G), (generator_input(x, torch.zeros_like(x[:, :1]), G.cfg.mask_channel)
                                     for x, _ in loader))
    return G.eval()


class _Encoder(torch.nn.Module):
    """The generator's encoder and bottleneck only (its decoder's batch norm is not the probe's business)."""

    def __init__(self, G: Generator):
        super().__init__()
        self.encoder, self.bottleneck = G.encoder, G.bottleneck

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_encoder(self.encoder, self.bottleneck, x)


@torch.no_grad()
def _extract(G: Generator, data: LabelledImages, grid: int, cfg: ProbeConfig) -> dict[str, np.ndarray]:
    ds = ClassificationDataset(data, G.cfg.image_size, train=False)
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers)
    out: dict[str, list[np.ndarray]] = {}
    for x, _ in loader:
        z, skips = G.encode(generator_input(x, torch.zeros_like(x[:, :1]), G.cfg.mask_channel))  # no hole
        for i, h in enumerate(skips, start=1):                           # (B, C_i, S/2^i, S/2^i)
            g = min(grid, h.shape[-1])                                   # a smaller layer as it is
            out.setdefault(f"layer{i}", []).append(F.adaptive_avg_pool2d(h.float(), g).flatten(1).numpy())
        out.setdefault("bottleneck", []).append(z.float().flatten(1).numpy())
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}


def encoder_features(model_cfg: ModelConfig, ckpt: dict | None, data: LabelledImages, cfg: ProbeConfig,
                     seed: int = 0, cache_dir: Path | None = None,
                     bn_data: LabelledImages | None = None) -> dict[str, np.ndarray]:
    """{layer name: (N, D) float32} for every encoder layer and the bottleneck (see the module docstring).

    ``bn_data``: the photos batch norm is recomputed on (``cfg.bn_photos`` of them; the probe's training
    split); None = ``data``."""
    bn_data = data if bn_data is None else bn_data
    key = {"encoder": encoder_id(model_cfg, ckpt, seed), "files": [str(f) for f in data.files],
           "grid": cfg.grid, "size": model_cfg.image_size, "version": 2, "bn_photos": cfg.bn_photos,
           "bn_files": hashlib.sha256(json.dumps([str(f) for f in bn_data.files]).encode()).hexdigest()}
    name = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:20] + ".npz"
    if cache_dir is not None and (Path(cache_dir) / name).is_file():
        with np.load(Path(cache_dir) / name) as f:
            return {k: f[k] for k in f.files}
    G = recompute_batch_norm(build_encoder(model_cfg, ckpt, seed), bn_data, cfg.bn_photos, cfg.batch_size,
                             cfg.workers)
    feats = _extract(G, data, cfg.grid, cfg)
    if cache_dir is not None:
        buf = io.BytesIO()
        np.savez(buf, **feats)
        atomic_write(Path(cache_dir) / name, lambda f: f.write(buf.getvalue()))
    return feats


def standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """(x - mean) / std with the training split's statistics (float64); constant features become 0."""
    x = train.astype(np.float64)
    mean, std = x.mean(0), x.std(0)
    scale = np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 0.0)
    return [((a.astype(np.float64) - mean) * scale).astype(np.float32) for a in (train, *others)]


def fit_linear(x: np.ndarray, y: np.ndarray, multilabel: bool, weight_decay: float,
               cfg: ProbeConfig, start: dict | None = None) -> dict:
    """L-BFGS on the L2-regularised convex loss. Returns W, b, the final loss and gradient.

    ``start`` (a previous result) warm-starts the weights: the loss is convex, so this changes only the
    number of iterations, which matters along the weight-decay path."""
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y)
    W0 = start["W"] if start is not None else torch.zeros(x.shape[1], y.shape[1])
    b0 = start["b"] if start is not None else torch.zeros(y.shape[1])
    W, b = W0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=cfg.max_iter, tolerance_grad=cfg.tol,
                            tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = classification_loss(xt @ W + b, yt, multilabel) + 0.5 * weight_decay * W.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    closure()                                              # the gradient at the weights L-BFGS returns
    with torch.no_grad():
        data_loss = float(classification_loss(xt @ W + b, yt, multilabel))
        g = torch.cat([W.grad.flatten(), b.grad])
    iters = opt.state[W].get("n_iter", 0)                  # LBFGS keeps its state on its first parameter
    return {"W": W.detach(), "b": b.detach(), "train_loss": data_loss, "grad_max": float(g.abs().max()),
            "grad_norm": float(g.norm()), "iterations": int(iters)}


def score(fit: dict, x: np.ndarray, labels: np.ndarray) -> dict:
    logits = (torch.from_numpy(x).float() @ fit["W"] + fit["b"]).numpy()
    return classification_metrics(logits, labels, tuple(map(str, range(labels.shape[1]))))


def main_metric(metrics: dict, multilabel: bool) -> float:
    return float(metrics["map"] if multilabel else metrics["top1"])


def linear_probe(train_x: np.ndarray, train_labels: np.ndarray, test_x: np.ndarray, test_labels: np.ndarray,
                 multilabel: bool, cfg: ProbeConfig = ProbeConfig(), seed: int = 0) -> dict:
    """Weight decay chosen on a seeded validation split of the training split, refit on all of it, test once."""
    if len(train_x) != len(train_labels) or len(test_x) != len(test_labels):
        raise InpaintsslError("features and labels differ in length")
    tr, va = stratified_split(train_labels, cfg.val_fraction, seed)
    if len(va) == 0 or len(tr) == 0:
        raise InpaintsslError(f"the training split ({len(train_labels)} images) is too small for a "
                              f"{cfg.val_fraction:.0%} validation split")
    xtr, xva = standardise(train_x[tr], train_x[va])
    val_scores, fits, f = {}, {}, None
    for wd in sorted(cfg.weight_decays, reverse=True):              # strong to weak penalty, warm-started
        f = fits[wd] = fit_linear(xtr, train_labels[tr], multilabel, wd, cfg, start=f)
        val_scores[wd] = main_metric(score(f, xva, train_labels[va]), multilabel)
    best = max(cfg.weight_decays, key=lambda wd: (val_scores[wd], wd))      # ties: the stronger penalty
    xall, xte = standardise(train_x, test_x)
    f = fit_linear(xall, train_labels, multilabel, best, cfg, start=fits[best])   # convex: only saves iterations
    train_m, test_m = score(f, xall, train_labels), score(f, xte, test_labels)
    return {"weight_decay": best, "val": {str(k): v for k, v in val_scores.items()},
            "val_score": val_scores[best], "train_loss": f["train_loss"], "grad_norm": f["grad_norm"],
            "grad_max": f["grad_max"], "iterations": f["iterations"], "train": _clean(train_m), "test": _clean(test_m),
            "features": int(train_x.shape[1])}


def _clean(m: dict) -> dict:
    return {k: float(v) for k, v in m.items() if isinstance(v, (int, float, np.floating))}


def init_name(init: str, used: set[str]) -> str:
    """The report's name of ``--init``: ``random``, ``ssl``, a run folder's name or a file's stem."""
    path = Path(init)
    return unique_name(init if init in ("random", "bundled", "ssl") else (path.name if path.is_dir() else path.stem), used)


def resolve_inits(inits: Sequence[str], preset: str | None = None) -> dict[str, tuple[ModelConfig, dict | None]]:
    """{name: (model config, checkpoint or None)} for ``--init`` values (run folder, checkpoint file,
    ``ssl`` or ``random``). ``random`` takes ``preset``'s architecture, else the first checkpoint's, else
    ``m1-64``'s, so that it differs from the pretrained encoders in its weights only."""
    if not inits:
        raise InpaintsslError("give at least one --init (a run folder, a checkpoint, ssl or random)")
    loaded = {i: (None if i == "random" else resolve_init(i, None)) for i in dict.fromkeys(inits)}
    pretrained = [r for r in loaded.values() if r is not None]
    arch = (get_preset(preset).model if preset else pretrained[0][0] if pretrained else get_preset("m1-64").model)
    used: set[str] = set()
    return {init_name(i, used): ((arch, None) if r is None else r) for i, r in loaded.items()}


def init_record(model_cfg: ModelConfig, ckpt: dict | None) -> dict:
    """What a report records of an init: its checkpoint file, step and preset (None for random), image size."""
    return {"checkpoint": None if ckpt is None else str(ckpt.get("path")),
            "step": None if ckpt is None else ckpt.get("step"),
            "preset": None if ckpt is None else ckpt["config"].get("preset"), "image_size": model_cfg.image_size}


def _split_key(train: LabelledImages, test: LabelledImages) -> str:
    """A hash of both splits' files and labels."""
    return hashlib.sha256(json.dumps([[str(f) for f in d.files] + [d.labels.tolist()] for d in (train, test)])
                          .encode()).hexdigest()


def _fit_cache(cache_dir: Path | None, encoder: str, splits: str, cfg: ProbeConfig, seed: int, fraction: float,
               layer: str) -> Path | None:
    """Where one probe's result is kept beside the features (``CACHE/fits/<hash>.json``), named by everything
    it depends on: the encoder (:func:`encoder_id`), both splits (:func:`_split_key`), the probe settings, the
    seed, the label fraction and the layer. So a rerun with one more ``--init`` fits only the new encoder's probes."""
    if cache_dir is None:
        return None
    probe = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("batch_size", "workers")}
    key = {"encoder": encoder, "splits": splits, "probe": probe, "seed": seed, "fraction": fraction,
           "layer": layer, "version": 2}
    return Path(cache_dir) / "fits" / (hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20] + ".json")


def compare_probes(inits: dict[str, tuple[ModelConfig, dict | None]], train: LabelledImages,
                   test: LabelledImages, cfg: ProbeConfig = ProbeConfig(), seeds: Sequence[int] = (0, 1, 2),
                   fractions: Sequence[float] = (1.0,), cache_dir: Path | None = None, log=print) -> dict:
    """Every init x seed x label fraction x layer probed alike; a JSON-able record (see :mod:`.report`).

    The seed draws the validation split and the label subset (:func:`.voc.balanced_subset`) and, for a
    random init, the encoder's initialisation too: so every seed of every init sees the same images, and
    ``init - random`` is paired by seed. A checkpoint's features are the same for all seeds (computed once)."""
    metric = "map" if train.multilabel else "top1"
    rows, timing, reused, splits = [], {}, {}, _split_key(train, test)
    for name, (model_cfg, ckpt) in inits.items():
        t0, enc_seed = time.perf_counter(), None
        for seed in seeds:
            if enc_seed is None or ckpt is None:        # a checkpoint's features: once for all seeds
                enc_seed = seed if ckpt is None else 0
                encoder = encoder_id(model_cfg, ckpt, enc_seed)
                ftr = encoder_features(model_cfg, ckpt, train, cfg, enc_seed, cache_dir)
                fte = encoder_features(model_cfg, ckpt, test, cfg, enc_seed, cache_dir, bn_data=train)
            for fraction in fractions:
                idx = balanced_subset(train.labels, fraction, seed)
                for layer in ftr:
                    saved = _fit_cache(cache_dir, encoder, splits, cfg, seed, fraction, layer)
                    if saved is not None and saved.is_file():
                        r = json.loads(saved.read_text())
                        reused[name] = reused.get(name, 0) + 1
                    else:
                        r = linear_probe(ftr[layer][idx], train.labels[idx], fte[layer], test.labels,
                                         train.multilabel, cfg, seed)
                        if saved is not None:
                            atomic_write_text(saved, json.dumps(r))
                    rows.append({"init": name, "seed": seed, "fraction": fraction, "layer": layer,
                                 "train_images": int(len(idx)), "test": r["test"][metric],
                                 "train": r["train"][metric], "val": r["val_score"], "train_loss": r["train_loss"],
                                 "weight_decay": r["weight_decay"], "grad_norm": r["grad_norm"],
                                 "grad_max": r["grad_max"],
                                 "iterations": r["iterations"], "features": r["features"]})
                    log(f"probe {name} seed {seed} labels {fraction:g} {layer}: {r['features']} features, "
                        f"wd {r['weight_decay']:g}, train {100 * r['train'][metric]:.1f}, "
                        f"test {100 * r['test'][metric]:.1f} ({metric})")
        timing[name] = time.perf_counter() - t0
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    return {"metric": metric, "classes": list(train.classes), "train_images": len(train.files),
            "test_images": len(test.files), "train_labels": train.source, "test_labels": test.source,
            "seeds": list(seeds), "fractions": list(fractions), "layers": layers, "inits": {
                name: {**init_record(m, c), "seconds": timing[name], "fits_reused": reused.get(name, 0)}
                for name, (m, c) in inits.items()},
            "probe": dataclasses.asdict(cfg), "rows": rows}


def probes(runs: dict[str, Path], train_data: LabelledImages, test_data: LabelledImages,
           out_dir: Path = Path("probes"), log=print, seeds: Sequence[int] = (0, 1, 2)) -> dict:
    """The ``reproduce`` pipeline's probe stage: every run's encoder and a random one (the first run's
    architecture) probed at every depth on the pipeline's data, seeds 0-2, all labels; the report goes to
    ``out_dir`` (:func:`.probe_report.write_probe_report`). Returns the summary and the markdown."""
    from .probe_report import summarise, write_probe_report
    inits = {name: resolve_init(str(folder), None) for name, folder in runs.items()}
    inits["random"] = (next(iter(inits.values()))[0], None)
    result = compare_probes(inits, train_data, test_data, ProbeConfig(), seeds=tuple(seeds),
                            cache_dir=Path(out_dir) / "features", log=log)
    text = write_probe_report(result, Path(out_dir))
    body = text.split("\n", 2)[2].replace("](probe_layers.png)", "](probes/probe_layers.png)")
    return {"markdown": body, "summary": summarise(result)["best"], "metric": result["metric"]}
