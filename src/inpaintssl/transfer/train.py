"""Transfer to classification (paper section 6.2): the inpainting generator's encoder + a new head.

    train_data, test_data = load_labelled(voc, "trainval"), load_labelled(voc, "test", train_data.classes)
    model_cfg, ckpt = resolve_init("runs/m1", preset=None)       # or ("random", "m1")
    model = build_classifier(model_cfg, len(train_data.classes), TransferConfig(), ckpt)
    result = fit(model, train_data, test_data, TransferConfig(epochs=14), Path("runs/voc_ft"))

Classifier (``Classifier.forward``: (B, 3, S, S) in [-1, 1] -> (B, C) logits):

* **encoder**: the generator's encoder exactly as in Table 1 up to and including the bottleneck conv
  (five 4x4 stride-2 conv blocks and the 4x4 -> 1x1 conv, each with batch norm and LeakyReLU 0.2),
  ``forward_features`` -> (B, bottleneck, 1, 1). S is the inpainting model's image size. A generator
  trained with ``mask_channel`` gets an all-zero (no hole) 4th channel.
* **head** (the paper: "fully connected layers ... pooling layers in between ...
  regularisation") on the bottleneck, or with ``head_from="pooled"`` on the deepest encoder layer averaged
  over its 4x4 positions (the bottleneck then unused; beyond the paper, issue 27: with every U-Net skip the
  bottleneck need not carry the context): flatten -> dropout(p) -> Linear(D, hidden) -> max-pool over groups of
  ``head_pool`` neighbouring units (a maxout non-linearity: 1-D pooling is the only pooling that means
  something on the 1x1 bottleneck) -> dropout(p) -> Linear(hidden / head_pool, C). Regularisation:
  dropout p = 0.5 on both FC inputs and SGD weight decay 5e-4 on every parameter.
The one linear probe of the package is ``transfer probe`` (:mod:`.probe`: every encoder depth, L-BFGS,
weight decay chosen on validation); fine-tuning here trains everything.

``--init RUN_OR_CKPT`` copies the generator's ``encoder.*`` and ``bottleneck.*`` weights (including the
batch-norm running statistics) with ``strict=False`` and checks that the keys left missing are exactly
the head's and that nothing is unexpected or of another shape. ``--init random`` uses the DCGAN
initialisation the inpainting run itself started from. The head's initial weights depend only on the
seed, so two runs with the same seed differ only in the encoder's starting point.

Optimisation (paper defaults): SGD, momentum 0.9, lr 0.005 (constant), batch 64, 14 epochs. With
``lr_grid`` (beyond the paper) the learning rate and the number of epochs are chosen per init and seed on a
validation part of the training split (:func:`choose_recipe`) before the run that is scored. Loss:
binary cross-entropy per class for multi-label data, ignoring the (image, class) pairs labelled
difficult; softmax cross-entropy for single-label data. The last incomplete training batch of an epoch
is dropped (batch norm needs full batches; the data order changes every epoch). With ``amp`` (default)
the forward passes run under bf16 autocast with channels_last where the device computes bf16 natively
(:func:`gan.step.resolve_precision`, as in inpainting training); loss, scores, weights, batch-norm
statistics and the SGD momentum stay fp32. The loader workers live for the whole fit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..checkpoint import atomic_write_text, check_compatible, generator_weights, load_checkpoint, save_checkpoint
from ..config import ModelConfig, config_from_dict, config_to_dict
from ..presets import get_preset
from ..errors import InpaintsslError, NonFiniteLossError
from ..gan.models import Generator, encoder_channels, init_weights, run_encoder
from ..gan.step import autocast, generator_input, pick_device, resolve_precision
from .metrics import AP_METHODS, classification_metrics
from .voc import ClassificationDataset, EpochSampler, LabelledImages, validation_split

RUN_FILES = ("config.json", "history.jsonl", "metrics.json", "classifier.pt", "history.png", "choice")
HEADS_FROM = ("bottleneck", "pooled")


@dataclass
class TransferConfig:
    epochs: int = 14              # paper: 14
    batch_size: int = 64          # paper: 64
    lr: float = 0.005             # paper: 0.005, SGD
    momentum: float = 0.9         # paper: 0.9
    weight_decay: float = 5e-4    # paper: "regularisation", unspecified; 5e-4 is the usual SGD/VOC value
    dropout: float = 0.5          # before each FC layer of the finetune head
    head_hidden: int = 512        # units of the first FC layer of the finetune head
    head_pool: int = 2            # max-pool (maxout) group size between the two FC layers
    crop_min: float = 0.6         # train crop side in [crop_min, 1] x the shorter side; test: centre square
    seed: int = 0
    workers: int = 2              # DataLoader worker processes (kept alive across epochs)
    device: str = "auto"
    amp: bool = True              # bf16 autocast + channels_last where the device computes bf16 natively
    ap_method: str = "all"        # all (VOC2010+ all-point) | 11point (VOC2007)
    head_from: str = "bottleneck"  # bottleneck (paper) | pooled: the deepest encoder layer, averaged over space
    lr_grid: tuple = ()           # learning rates to choose from on a validation part (empty: the paper's lr)
    val_fraction: float = 0.2     # of the training split, held out for that choice

    def validate(self) -> "TransferConfig":
        if self.ap_method not in AP_METHODS:
            raise InpaintsslError(f"--ap {self.ap_method!r}: choose {' or '.join(AP_METHODS)}")
        if self.epochs < 1 or self.batch_size < 2:
            raise InpaintsslError("--epochs must be >= 1 and --batch >= 2 (batch norm needs two samples)")
        if self.head_from not in HEADS_FROM:
            raise InpaintsslError(f"--head-from {self.head_from!r}: choose {' or '.join(HEADS_FROM)}")
        if any(lr <= 0 for lr in self.lr_grid) or not 0 < self.val_fraction < 1:
            raise InpaintsslError("every --lr-grid value must be > 0 (and the validation fraction in (0, 1))")
        if not (self.lr > 0 and 0 <= self.dropout < 1 and self.head_pool >= 1
                and self.head_hidden % self.head_pool == 0):
            raise InpaintsslError("need lr > 0, 0 <= dropout < 1 and head_hidden divisible by head_pool")
        return self


class MaxoutPool(nn.Module):
    """(B, D) -> (B, D / k): the maximum of each group of k neighbouring units."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1, self.k).amax(dim=-1)


class Classifier(nn.Module):
    """Generator encoder (Table 1 up to the bottleneck) + classification head. See the module docstring."""

    def __init__(self, model_cfg: ModelConfig, num_classes: int, cfg: TransferConfig):
        super().__init__()
        self.model_cfg = model_cfg
        gen = Generator(model_cfg)                    # built whole so the encoder is the very same code
        init_weights(gen)
        self.encoder, self.bottleneck = gen.encoder, gen.bottleneck
        del gen
        self.head_from = cfg.head_from
        d = model_cfg.bottleneck if cfg.head_from == "bottleneck" else encoder_channels(model_cfg)[-1]
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(d, cfg.head_hidden),
            MaxoutPool(cfg.head_pool), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.head_hidden // cfg.head_pool, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, bottleneck, 1, 1), or (B, C_last, 1, 1) with ``head_from="pooled"``."""
        x = generator_input(x, torch.zeros_like(x[:, :1]), self.model_cfg.mask_channel)   # no hole anywhere
        if self.head_from == "pooled":
            skips: list[torch.Tensor] = []
            run_encoder(self.encoder, nn.Identity(), x, skips)
            return skips[-1].mean((2, 3), keepdim=True)
        return run_encoder(self.encoder, self.bottleneck, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))        # (B, C) logits


def load_encoder(model: Classifier, ckpt: dict) -> list[str]:
    """Copy the checkpoint generator's encoder + bottleneck (its moving average if kept) into ``model``; returns the keys.

    Errors (InpaintsslError) when a weight has another shape, a checkpoint encoder key has no place in
    the classifier, or any classifier key other than the head's is left missing."""
    src = ckpt.get("path", "checkpoint")
    weights = {k: v for k, v in generator_weights(ckpt).items() if k.startswith(("encoder.", "bottleneck."))}
    own = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in weights.items()
             if k in own and own[k].shape != v.shape]
    if wrong:
        raise InpaintsslError(f"{src}: the checkpoint's encoder does not fit this classifier "
                              f"({len(wrong)} weight(s) of another shape, e.g. {wrong[0]}); the classifier "
                              "must be built from the checkpoint's own model config")
    result = model.load_state_dict(weights, strict=False)
    head = {k for k in own if k.startswith("head.") and not k.endswith("num_batches_tracked")}
    extra_missing = sorted(set(result.missing_keys) - head)   # (torch never reports num_batches_tracked)
    if result.unexpected_keys or extra_missing or not head <= set(result.missing_keys):
        raise InpaintsslError(f"{src}: encoder keys do not match the classifier (unexpected: "
                              f"{result.unexpected_keys[:3]}, missing outside the head: {extra_missing[:3]}); "
                              "was it trained with another architecture?")
    return sorted(weights)


def resolve_init(init: str, preset: str | None) -> tuple[ModelConfig, dict | None]:
    """(model config, checkpoint or None) for ``--init RUN_OR_CKPT|random`` and an optional ``--preset``."""
    if init == "random":
        return get_preset(preset or "m1").model, None
    ckpt = load_checkpoint(Path(init))
    if preset is not None:
        check_compatible(ckpt, config_to_dict(get_preset(preset)), f"--preset {preset}")
    return config_from_dict(ckpt["config"]).model, ckpt


def build_classifier(model_cfg: ModelConfig, num_classes: int, cfg: TransferConfig,
                     ckpt: dict | None = None) -> Classifier:
    """Seeded construction (same seed -> same head), then the encoder from ``ckpt`` if given."""
    torch.manual_seed(cfg.seed)
    model = Classifier(model_cfg, num_classes, cfg)
    if ckpt is not None:
        load_encoder(model, ckpt)
    return model


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """logits (B, C); labels (B, C) int8 in {1, -1, 0}. Multi-label BCE ignores 0 (difficult) entries."""
    if not multilabel:
        return F.cross_entropy(logits, labels.argmax(dim=1))
    keep = (labels != 0).float()
    bce = F.binary_cross_entropy_with_logits(logits, (labels == 1).float(), reduction="none")
    return (bce * keep).sum() / keep.sum().clamp(min=1.0)


def run_epoch(model: Classifier, loader: DataLoader, device: torch.device, multilabel: bool,
              optimizer: torch.optim.Optimizer | None = None, progress: bool = False,
              desc: str = "", precision: str = "fp32") -> tuple[float, np.ndarray, np.ndarray]:
    """One pass; trains when ``optimizer`` is given. Returns (mean loss, (N, C) scores, (N, C) labels).

    The forward pass runs at ``precision`` ("bf16": autocast, channels_last images); the loss and the
    scores are float32. Loss sums and scores stay on the device and reach the host once, at the end
    (no per-batch synchronisation); a non-finite loss in any batch makes the mean non-finite, which
    stops the run here, at the granularity of the per-epoch report."""
    training = optimizer is not None
    model.train(training)
    total, count, all_scores, all_labels = torch.zeros((), device=device), 0, [], []
    with torch.set_grad_enabled(training):
        for images, labels in tqdm(loader, disable=not progress, desc=desc, leave=False, file=sys.stderr):
            all_labels.append(labels)                                          # (B, C) int8, on the host
            images = images.to(device, non_blocking=True)
            if precision == "bf16":
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                logits = model(images)
            logits = logits.float()                                            # (B, C)
            loss = classification_loss(logits, labels.to(device, non_blocking=True), multilabel)
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            total += loss.detach() * len(images)
            count += len(images)
            all_scores.append((torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)).detach())
    mean = float(total) / max(count, 1)                                         # the one host sync
    if not math.isfinite(mean):
        raise NonFiniteLossError(f"non-finite loss (mean {mean}) while {'training' if training else 'testing'}"
                                 "; lower --lr")
    return mean, torch.cat(all_scores).cpu().numpy(), torch.cat(all_labels).numpy()


def _loader(ds, cfg: TransferConfig, shuffle: bool, pin: bool = False, persistent: bool = False) -> DataLoader:
    """Training loader (``shuffle``: :class:`EpochSampler` order, full batches only; set
    ``loader.sampler.epoch`` before each pass) or evaluation loader (in order). ``persistent`` keeps the
    worker processes between passes; ``pin``: page-locked batches (for CUDA)."""
    workers = min(cfg.workers, len(ds))
    common = dict(num_workers=workers, persistent_workers=persistent and workers > 0,
                  prefetch_factor=2 if workers else None, pin_memory=pin)
    if not shuffle:
        return DataLoader(ds, batch_size=cfg.batch_size, shuffle=False, **common)
    batch = min(cfg.batch_size, len(ds))
    return DataLoader(ds, batch_size=batch, sampler=EpochSampler(len(ds), cfg.seed), drop_last=True, **common)


def prepare_out_dir(out_dir: Path, overwrite: bool, names: tuple[str, ...] = RUN_FILES,
                    what: str = "a transfer run") -> None:
    """Create ``out_dir``; if it already holds any of ``names`` (files or folders this tool writes), refuse
    unless ``overwrite``, then delete just those."""
    out_dir = Path(out_dir)
    existing = [n for n in names if (out_dir / n).exists()]
    if existing and not overwrite:
        raise InpaintsslError(f"{out_dir}: already holds {what} ({', '.join(existing)}); pass "
                              "--overwrite to replace it or choose another --out")
    for name in existing:
        p = out_dir / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def fit(model: Classifier, train_data: LabelledImages, test_data: LabelledImages, cfg: TransferConfig,
        out_dir: Path, init: str = "", progress: bool = False, log=print) -> dict:
    """Train ``model``, one JSON line per epoch in OUT/history.jsonl; final metrics in OUT/metrics.json.

    The per-epoch ``train_*`` numbers are running values over the augmented training batches (the
    paper's Figure 7 curves); the final ``train`` metrics re-evaluate the whole training split with the
    test-time transform, so they compare with ``test``. Returns the metrics dict."""
    cfg.validate()
    out_dir = Path(out_dir)
    if len(train_data.files) < 2:
        raise InpaintsslError("the training split needs at least 2 images")
    device = pick_device(cfg.device)
    precision = resolve_precision(device, cfg.amp)
    model.to(device, memory_format=torch.channels_last if precision == "bf16" else torch.contiguous_format)
    size, multi, classes = model.model_cfg.image_size, train_data.multilabel, train_data.classes
    train_ds = ClassificationDataset(train_data, size, True, cfg.crop_min, cfg.seed)
    train_eval_ds = ClassificationDataset(train_data, size, False)
    test_ds = ClassificationDataset(test_data, size, False)
    pin = device.type == "cuda"
    train_loader = _loader(train_ds, cfg, True, pin, persistent=True)      # workers live for the whole fit
    test_loader = _loader(test_ds, cfg, False, pin, persistent=True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    meta = {"init": init, "transfer": dataclasses.asdict(cfg), "model": dataclasses.asdict(model.model_cfg),
            "classes": list(classes), "train_images": len(train_data.files), "test_images": len(test_data.files),
            "train_labels": train_data.source, "test_labels": test_data.source}
    atomic_write_text(out_dir / "config.json", json.dumps(meta, indent=2) + "\n")
    torch.manual_seed(cfg.seed)                       # same dropout stream for every init
    history, t0 = [], time.perf_counter()
    with open(out_dir / "history.jsonl", "w") as hist_file:
        for epoch in range(cfg.epochs):
            t_epoch = time.perf_counter()
            train_loader.sampler.epoch = epoch                               # this epoch's order and crops
            loss, scores, labels = run_epoch(model, train_loader, device, multi, optimizer, progress,
                                             f"epoch {epoch + 1} train", precision)
            tr = classification_metrics(scores, labels, classes, cfg.ap_method)
            t_loss, t_scores, t_labels = run_epoch(model, test_loader, device, multi, None, progress,
                                                   f"epoch {epoch + 1} test", precision)
            te = classification_metrics(t_scores, t_labels, classes, cfg.ap_method)
            row = {"epoch": epoch + 1, "train_loss": loss, "train_top1": tr["top1"], "train_map": tr["map"],
                   "test_loss": t_loss, "test_top1": te["top1"], "test_map": te["map"],
                   "seconds": round(time.perf_counter() - t_epoch, 2)}
            row = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
            hist_file.write(json.dumps(row) + "\n")
            hist_file.flush()
            history.append(row)
            log(f"[{init or 'run'}] epoch {epoch + 1}/{cfg.epochs}: train loss {loss:.4f} top-1 "
                f"{100 * tr['top1']:.1f}% mAP {100 * tr['map']:.1f}% | test loss {t_loss:.4f} top-1 "
                f"{100 * te['top1']:.1f}% mAP {100 * te['map']:.1f}% ({row['seconds']:.1f} s)")
    del train_loader, test_loader                                             # their workers end here
    _, s, lab = run_epoch(model, _loader(train_eval_ds, cfg, False, pin), device, multi, None, progress,
                          "final train eval", precision)
    result = {"init": init, "epochs": cfg.epochs, "image_size": size,
              "train": classification_metrics(s, lab, classes, cfg.ap_method),
              "test": te,                                       # the last epoch's test scores
              "history": history, "seconds": round(time.perf_counter() - t0, 2)}
    atomic_write_text(out_dir / "metrics.json", json.dumps(json_safe(result), indent=2) + "\n")
    save_checkpoint(out_dir / "classifier.pt", {"classifier": model.state_dict(), "config": meta})
    return result


def json_safe(obj):
    """NaN (a class without positives has no AP) -> null, so metrics.json is strict JSON."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def choose_recipe(train_data: LabelledImages, model_cfg: ModelConfig, ckpt: dict | None, cfg: TransferConfig,
                  out_dir: Path, init_name: str, progress: bool = False, log=print) -> dict:
    """The learning rate of ``cfg.lr_grid`` and the epoch count (1..``cfg.epochs``) with the best validation
    score (mAP for multi-label data, top-1 otherwise; ties: the smaller lr, the fewer epochs), each lr trained
    on the rest of the training split into ``out_dir/lr<lr>/``. The test split takes no part. An lr whose
    loss becomes non-finite is logged, listed under "diverged" and not chosen at any epoch (its curve is
    empty); an error only if every lr diverges.
    Returns {"lr", "epochs", "val": {lr: [score per epoch]}, "val_images", "diverged": [lr, ...]}."""
    rest, val = validation_split(train_data, cfg.val_fraction, cfg.seed)
    key = "test_map" if train_data.multilabel else "test_top1"
    curves = {}
    for lr in sorted(cfg.lr_grid):
        c = dataclasses.replace(cfg, lr=lr, lr_grid=())
        model = build_classifier(model_cfg, len(train_data.classes), c, ckpt)
        folder = Path(out_dir) / f"lr{lr:g}"
        prepare_out_dir(folder, True)
        try:
            r = fit(model, rest, val, c, folder, f"{init_name} lr {lr:g} (validation)", progress, log)
        except NonFiniteLossError as err:
            log(f"[{init_name}] lr {lr:g} diverged ({err}): not chosen")
            curves[lr] = []                                        # a fit that ran has >= 1 epoch
            continue
        curves[lr] = [row[key] for row in r["history"]]
    diverged = [lr for lr, v in curves.items() if not v]
    if len(diverged) == len(curves):
        raise InpaintsslError(f"every --lr-grid value diverged ({', '.join(f'{v:g}' for v in diverged)}); "
                              "add smaller learning rates")
    lr, epochs = max(((lr, e + 1) for lr, v in curves.items() for e in range(len(v))),
                     key=lambda le: (curves[le[0]][le[1] - 1], -le[0], -le[1]))
    log(f"[{init_name}] chosen on validation: lr {lr:g}, {epochs} epochs ({100 * curves[lr][epochs - 1]:.1f})")
    return {"lr": lr, "epochs": epochs, "val": {f"{k:g}": v for k, v in curves.items()},
            "val_images": len(val.files), "diverged": [f"{v:g}" for v in diverged]}


def transfer_run(train_data: LabelledImages, test_data: LabelledImages, model_cfg: ModelConfig,
                 ckpt: dict | None, cfg: TransferConfig, out_dir: Path, init_name: str,
                 overwrite: bool = False, progress: bool = False, log=print) -> dict:
    """Build the classifier for one init, train it into ``out_dir`` and plot its history. With
    ``cfg.lr_grid``, the learning rate and epochs are first chosen on validation (:func:`choose_recipe`,
    runs in ``out_dir/choice/``) and the result records the choice under ``"choice"``."""
    from .report import plot_history
    prepare_out_dir(out_dir, overwrite)
    cfg.validate()
    choice = None
    if cfg.lr_grid:
        choice = choose_recipe(train_data, model_cfg, ckpt, cfg, Path(out_dir) / "choice", init_name, progress, log)
        cfg = dataclasses.replace(cfg, lr=choice["lr"], epochs=choice["epochs"], lr_grid=())
    model = build_classifier(model_cfg, len(train_data.classes), cfg, ckpt)
    result = fit(model, train_data, test_data, cfg, out_dir, init_name, progress, log)
    if choice is not None:
        result["choice"] = choice
        atomic_write_text(Path(out_dir) / "metrics.json", json.dumps(json_safe(result), indent=2) + "\n")
    plot_history({init_name: result["history"]}, Path(out_dir) / "history.png")
    return result
