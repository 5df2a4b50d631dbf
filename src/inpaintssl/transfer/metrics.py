"""Classification metrics for the transfer task: VOC average precision, mean AP and top-1 accuracy.

    ap = average_precision(scores, labels, method="all")    # one class; labels 1 / -1 / 0 (difficult)
    m = classification_metrics(scores, labels, classes)     # {"map", "top1", "ap": {class: AP}, ...}
    ref = reference_levels(train_labels, test_labels)       # what a classifier that learned nothing scores

Definitions (written once, here):

* **AP** of one class is the area under its precision-recall curve, ranking the images by score
  (descending; ties keep image order, as a stable sort). Images labelled ``0`` (difficult) are
  ignored, exactly as the VOC devkit does: they count neither as true nor as false positives.
  ``method="all"`` (the default) is the VOC2010+ all-point interpolation: precision is made
  monotonically non-increasing from the right and integrated over every recall step.
  ``method="11point"`` is VOC2007's: the mean, over recall thresholds t = 0, 0.1, ..., 1, of the
  highest precision at recall >= t. A class with no positive image has no AP (NaN).
* **mAP** is the mean AP over the classes that have at least one positive image in the split
  (so a split that lacks a class is not penalised with AP = 0 for it).
* **top-1 accuracy** (the paper's "accuracy", which it does not define): an image counts as correct
  when its highest-scoring class is present in it (label 1, or 0 = present but only as difficult
  objects). For single-label data this is ordinary accuracy. We chose it because it needs no score
  threshold, reduces to the usual definition when there is one label per image, and is not dominated
  by the many easy negatives the way per-label accuracy at a 0.5 threshold is (about 19 of the 20
  VOC labels of an image are absent).
"""

from __future__ import annotations

import math

import numpy as np

AP_METHODS = ("all", "11point")


def average_precision(scores: np.ndarray, labels: np.ndarray, method: str = "all") -> float:
    """VOC AP of one class. scores: (N,) float; labels: (N,) in {1, -1, 0}; 0 (difficult) is ignored."""
    if method not in AP_METHODS:
        raise ValueError(f"method must be one of {AP_METHODS}, not {method!r}")
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
    keep = labels != 0
    scores, labels = scores[keep], labels[keep]
    n_pos = int((labels == 1).sum())
    if n_pos == 0:
        return math.nan
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(labels[order] == 1)
    fp = np.cumsum(labels[order] == -1)
    recall = tp / n_pos
    precision = tp / np.maximum(tp + fp, 1)
    if method == "11point":
        return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                              for t in np.linspace(0, 1, 11)]))
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]          # precision envelope, non-increasing
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]            # where recall changes
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def mean_ap(aps: dict[str, float]) -> float:
    """Mean of the defined (non-NaN) APs; NaN when no class has a positive."""
    vals = [v for v in aps.values() if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


def top1_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of images whose highest-scoring class is present (label 1 or 0). scores, labels: (N, C)."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if len(scores) == 0:
        return math.nan
    best = scores.argmax(axis=1)
    return float(np.mean(labels[np.arange(len(labels)), best] >= 0))


def classification_metrics(scores: np.ndarray, labels: np.ndarray, classes: tuple[str, ...],
                           method: str = "all") -> dict:
    """Per-class AP, mAP and top-1 accuracy of (N, C) scores against (N, C) labels in {1, -1, 0}."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if scores.shape != labels.shape or scores.shape[1] != len(classes):
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must both be (N, {len(classes)})")
    aps = {c: average_precision(scores[:, i], labels[:, i], method) for i, c in enumerate(classes)}
    return {"map": mean_ap(aps), "top1": top1_accuracy(scores, labels), "ap": aps,
            "positives": {c: int((labels[:, i] == 1).sum()) for i, c in enumerate(classes)},
            "ap_method": method, "images": int(len(scores))}


def reference_levels(train_labels: np.ndarray, test_labels: np.ndarray) -> dict:
    """Scores of classifiers that ignore the image, to read the real ones against (labels: (N, C)).

    ``prior_top1``: top-1 accuracy on the test split of always ranking the class most frequent in the
    training split first. ``chance_map``: the expected AP of a random ranking is close to the fraction of
    positives among a class's non-difficult images; this is its mean over the classes with positives."""
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    most = int((train_labels == 1).sum(axis=0).argmax())
    pos, neg = (test_labels == 1).sum(axis=0), (test_labels == -1).sum(axis=0)
    rates = [p / (p + n) for p, n in zip(pos, neg) if p > 0]
    return {"prior_top1": float(np.mean(test_labels[:, most] >= 0)) if len(test_labels) else math.nan,
            "chance_map": float(np.mean(rates)) if rates else math.nan}
