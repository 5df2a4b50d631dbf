"""Labelled image data for the transfer task: PASCAL VOC (multi-label) and class-per-folder (single-label).

    data = load_labelled("VOCdevkit/VOC2007", "trainval")        # or a class-per-folder root
    data.labels                                                  # (N, C) int8: 1 present, -1 absent, 0 difficult
    ds = ClassificationDataset(data, image_size=128, train=True, crop_min=0.6, seed=0)
    image, labels = ds[(i, epoch)]                               # (3, S, S) in [-1, 1], (C,) int8

**VOC** (the standard ``VOCdevkit/VOC20xx`` layout): image ids come from ``ImageSets/Main/<split>.txt``
and images from ``JPEGImages/<id>.jpg``. Image-level labels for the 20 classes (:data:`VOC_CLASSES`, the
devkit's order) come from ``ImageSets/Main/<class>_<split>.txt`` (``1`` present, ``-1`` absent, ``0``
difficult) or from ``Annotations/<id>.xml``. From XML, a class is ``1`` if the image has at least one
non-difficult object of it, ``0`` if all its objects of that class are difficult, ``-1`` otherwise; this
is how the devkit derives the label files, so both sources agree on official data. ``labels="auto"``
uses the label files when all 20 exist for the split and the XML annotations otherwise.

**Class per folder**: ``ROOT/<split>/<class>/*.jpg``; one label per image, stored in the same (N, C)
form (``1`` for its class, ``-1`` elsewhere) so training and metrics are shared.

Augmentation: training samples are a random square crop (side a fraction in ``[crop_min, 1]`` of the
shorter side) resized to S and flipped with probability 0.5, seeded by ``(seed, epoch, index)`` so a
run is reproducible with any number of loader workers; evaluation samples are the centre square of the
shorter side, resized to S.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import DataConfig
from ..data.folder import epoch_permutation, random_crop_flip
from ..errors import InpaintsslError
from ..data.images import center_square, list_images, open_image, to_tensor

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")
MAX_XML_BYTES = 1_000_000          # a VOC annotation is a few kB; refuse anything absurd


@dataclass
class LabelledImages:
    """One split: ``files[i]`` has ``labels[i]`` ((C,) int8, 1 / -1 / 0 = present / absent / difficult)."""
    files: list[Path]
    labels: np.ndarray             # (N, C) int8
    classes: tuple[str, ...]
    multilabel: bool
    source: str                    # where the labels came from, for the report


def is_voc_root(root: Path) -> bool:
    return (Path(root) / "ImageSets" / "Main").is_dir()


def find_voc_root(root: Path) -> Path:
    """``root`` itself, or its single ``VOC20xx`` child when ``root`` is a ``VOCdevkit`` folder."""
    root = Path(root)
    if is_voc_root(root):
        return root
    kids = sorted(p for p in root.glob("VOC*") if is_voc_root(p)) if root.is_dir() else []
    if len(kids) == 1:
        return kids[0]
    raise InpaintsslError(f"{root}: not a VOC folder (no ImageSets/Main); pass VOCdevkit/VOC2007 or "
                          "VOC2012" + (f" (found {', '.join(k.name for k in kids)})" if kids else ""))


def read_split_ids(root: Path, split: str) -> list[str]:
    """Image ids listed in ``ImageSets/Main/<split>.txt``, in file order."""
    path = Path(root) / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        have = sorted(p.stem for p in path.parent.glob("*.txt") if "_" not in p.stem)
        raise InpaintsslError(f"{path}: no such split file; splits here: {', '.join(have) or 'none'}")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise InpaintsslError(f"{path}: lists no image ids")
    return ids


def read_label_files(root: Path, split: str, ids: list[str]) -> np.ndarray:
    """(N, 20) int8 labels from the 20 ``<class>_<split>.txt`` files; every id must be listed in each."""
    index = {image_id: i for i, image_id in enumerate(ids)}
    labels = np.zeros((len(ids), len(VOC_CLASSES)), np.int8)
    seen = np.zeros_like(labels, dtype=bool)
    for c, name in enumerate(VOC_CLASSES):
        path = Path(root) / "ImageSets" / "Main" / f"{name}_{split}.txt"
        for n, line in enumerate(path.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("1", "-1", "0"):
                raise InpaintsslError(f"{path}:{n}: expected '<image id> <1|-1|0>', got {line.strip()!r}")
            if parts[0] in index:
                labels[index[parts[0]], c] = int(parts[1])
                seen[index[parts[0]], c] = True
        if not seen[:, c].all():
            missing = ids[int(np.argmin(seen[:, c]))]
            raise InpaintsslError(f"{path}: has no label for image {missing} (listed in {split}.txt); "
                                  "the label files do not match the split")
    return labels


def read_annotation(path: Path) -> list[tuple[str, bool]]:
    """(class name, difficult) for every ``<object>`` of one VOC XML file.

    Parsed with the standard library after refusing DTDs and entity declarations (VOC files have none),
    which rules out entity-expansion attacks; files over 1 MB are refused too."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) > MAX_XML_BYTES or re.search(rb"<!(DOCTYPE|ENTITY)", data):
        raise InpaintsslError(f"{path}: refused: over 1 MB or contains a DTD/entity declaration, which a "
                              "VOC annotation never has")
    try:
        tree = ET.fromstring(data)
    except ET.ParseError as e:
        raise InpaintsslError(f"{path}: not valid XML ({e})") from None
    objects = []
    for obj in tree.iter("object"):
        name = (obj.findtext("name") or "").strip().lower()
        difficult = (obj.findtext("difficult") or "0").strip()
        if name not in VOC_CLASSES:
            raise InpaintsslError(f"{path}: unknown VOC class {name!r}; expected one of the 20 VOC classes")
        objects.append((name, difficult not in ("0", "")))
    return objects


def labels_from_objects(objects: list[tuple[str, bool]]) -> np.ndarray:
    """(20,) int8 image-level labels from (name, difficult) objects, as the devkit derives them."""
    row = np.full(len(VOC_CLASSES), -1, np.int8)
    for name, difficult in objects:
        c = VOC_CLASSES.index(name)
        row[c] = max(row[c], 0 if difficult else 1)
    return row


def read_annotations(root: Path, ids: list[str]) -> np.ndarray:
    folder = Path(root) / "Annotations"
    missing = [i for i in ids if not (folder / f"{i}.xml").is_file()]
    if missing:
        raise InpaintsslError(f"{folder}: no annotation for {len(missing)} image(s) (first: {missing[0]}.xml)")
    return np.stack([labels_from_objects(read_annotation(folder / f"{i}.xml")) for i in ids])


def load_voc(root: Path, split: str, labels: str = "auto") -> LabelledImages:
    """A VOC split. ``labels``: ``auto`` | ``files`` (``<class>_<split>.txt``) | ``xml`` (``Annotations/``)."""
    root = find_voc_root(root)
    ids = read_split_ids(root, split)
    main = root / "ImageSets" / "Main"
    have_files = all((main / f"{c}_{split}.txt").is_file() for c in VOC_CLASSES)
    have_xml = (root / "Annotations").is_dir()
    if labels == "auto":
        labels = "files" if have_files else "xml" if have_xml else ""
    if labels == "files" and have_files:
        matrix, source = read_label_files(root, split, ids), f"{main}/<class>_{split}.txt"
    elif labels == "xml" and have_xml:
        matrix, source = read_annotations(root, ids), f"{root / 'Annotations'}/*.xml"
    else:
        raise InpaintsslError(f"{root}: no labels for split {split!r}: need ImageSets/Main/<class>_{split}.txt "
                              "for all 20 classes or an Annotations/ folder")
    files = [root / "JPEGImages" / f"{i}.jpg" for i in ids]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise InpaintsslError(f"{root / 'JPEGImages'}: {len(missing)} image(s) of split {split!r} are missing "
                              f"(first: {missing[0].name})")
    return LabelledImages(files, matrix, VOC_CLASSES, True, source)


def load_class_folders(root: Path, split: str, classes: tuple[str, ...] | None = None) -> LabelledImages:
    """``ROOT/<split>/<class>/`` images. ``classes`` (from the training split) fixes the label order."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise InpaintsslError(f"{folder}: no such split folder (expected {root}/<split>/<class>/*.jpg)")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = tuple(classes) if classes is not None else tuple(found)
    if len(classes) < 2:
        raise InpaintsslError(f"{folder}: need at least two class sub-folders, found {len(classes)}")
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise InpaintsslError(f"{folder}: classes not in the training split: {', '.join(unknown)}")
    files, rows = [], []
    for c, name in enumerate(classes):
        for f in (list_images(folder / name) if (folder / name).is_dir() else []):
            files.append(f)
            rows.append(np.where(np.arange(len(classes)) == c, 1, -1).astype(np.int8))
    if not files:
        raise InpaintsslError(f"{folder}: no images in its class sub-folders")
    return LabelledImages(files, np.stack(rows), classes, False, f"{folder}/<class>/")


def load_labelled(root: Path, split: str, classes: tuple[str, ...] | None = None,
                  labels: str = "auto") -> LabelledImages:
    """VOC if ``root`` (or its one ``VOC20xx`` child) has ``ImageSets/Main``, else class-per-folder."""
    root = Path(root)
    if not root.is_dir():
        raise InpaintsslError(f"{root}: no such folder; --data takes a VOC20xx folder or a class-folder root")
    if is_voc_root(root) or any(is_voc_root(p) for p in root.glob("VOC*")):
        return load_voc(root, split, labels)
    return load_class_folders(root, split, classes)


def balanced_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a seeded, class-balanced ``fraction`` of a split (the low-label setting).

    Each image is keyed by its first present class (multi-label VOC: the first of its classes); from every
    class ``max(1, round(fraction * n_class))`` images are drawn without replacement by a generator seeded
    with ``seed`` alone, so a fraction and seed name the same subset on every machine. ``fraction`` 1 is
    the whole split."""
    if not 0 < fraction <= 1:
        raise InpaintsslError(f"--label-fraction {fraction:g}: must be in (0, 1]")
    if fraction == 1:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    key = np.argmax(labels == 1, axis=1)
    keep = []
    for c in np.unique(key):
        idx = np.flatnonzero(key == c)
        keep.extend(rng.permutation(idx)[:max(1, int(round(fraction * len(idx))))])
    return np.sort(np.array(keep, dtype=np.int64))


def label_subset(data: LabelledImages, fraction: float, seed: int) -> LabelledImages:
    """The split itself (``fraction`` 1), or its seeded class-balanced ``fraction`` (:func:`balanced_subset`),
    with the subset named in its label source."""
    if fraction == 1:
        return data
    index = balanced_subset(data.labels, fraction, seed)
    return LabelledImages([data.files[i] for i in index], data.labels[index], data.classes, data.multilabel,
                          f"{data.source} ({len(index)} images: {fraction:.0%} of the labels, class-balanced, "
                          f"seed {seed})")


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): ``fraction`` of each class (by first present label), at least
    one image of each, held out (:func:`balanced_subset`)."""
    val = balanced_subset(labels, fraction, seed)
    return np.setdiff1d(np.arange(len(labels)), val), val


def validation_split(data: LabelledImages, fraction: float, seed: int) -> tuple[LabelledImages, LabelledImages]:
    """(the rest, a held-out ``fraction``) of ``data`` as :func:`stratified_split` draws them, for choices that
    must not see the test split."""
    parts = stratified_split(data.labels, fraction, seed)
    return tuple(LabelledImages([data.files[i] for i in idx], data.labels[idx], data.classes, data.multilabel,
                                f"{data.source} ({name}: {len(idx)} images, seed {seed})")
                 for idx, name in zip(map(np.asarray, parts), ("training part", "validation part")))


class ClassificationDataset(Dataset):
    """Training items are keyed ``(index, epoch)`` (random crop + flip); evaluation items by ``index``."""

    def __init__(self, data: LabelledImages, image_size: int, train: bool, crop_min: float = 0.6,
                 seed: int = 0):
        if not 0 < crop_min <= 1:
            raise InpaintsslError(f"crop_min={crop_min}: must be in (0, 1]")
        self.data, self.size, self.train, self.seed = data, image_size, train, seed
        self.aug = DataConfig(crop_min=crop_min, crop_max=1.0, flip=True)
        self._draft = int(math.ceil(image_size / crop_min)) if train else image_size

    def __len__(self) -> int:
        return len(self.data.files)

    def __getitem__(self, key) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        img = open_image(self.data.files[index], draft=self._draft)
        if self.train:
            img = random_crop_flip(img, self.size, self.aug, np.random.default_rng([self.seed, epoch, index]))
        else:
            img = center_square(img, self.size)
        return to_tensor(np.asarray(img)), torch.from_numpy(self.data.labels[index].copy())


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(index, epoch)`` keys in :func:`data.folder.epoch_permutation` order (seeded by ``(seed, epoch)``)."""

    def __init__(self, n: int, seed: int, epoch: int = 0):
        self.n, self.seed, self.epoch = n, seed, epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter([(int(i), self.epoch) for i in epoch_permutation(self.n, self.seed, self.epoch)])


__all__ = ["VOC_CLASSES", "LabelledImages", "load_voc", "load_class_folders", "load_labelled",
           "read_annotation", "labels_from_objects", "ClassificationDataset", "EpochSampler"]
