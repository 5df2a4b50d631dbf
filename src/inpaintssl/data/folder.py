"""Training data: a recursive image folder (a COCO ``train2014/`` as it is), augmentation, data order.

    ds = ImageFolder([Path("train2014")], image_size=128, cfg=DataConfig(), seed=0)
    loader = make_loader(ds, batch_size=64, start_step=0, workers=2)
    for images, bad_paths in loader:        # images: (B, 3, S, S) in [-1, 1]
        ...

* Files are found by extension (JPEG, PNG, WebP, BMP, TIFF) in every sub-folder
  (:func:`.sources.gather_files`). A file that cannot be decoded is skipped when it is met: the sample
  is replaced by the next readable file, and its path is handed back with the batch so the trainer
  can count and report it. Training never crashes on a bad file.
* Augmentation: a random square crop (side a fraction in [crop_min, crop_max] of the shorter side),
  resized to the training size, and a random horizontal flip.
* Data order is a pure function of (seed, step): the index stream is the concatenation of one
  seeded permutation per epoch, batch k is positions [kB, (k+1)B) of it, and the crop/flip of a sample
  is seeded by its position in the stream. Resuming at step k is therefore exact, with any number of
  loader workers.
* With no ``--data``, :func:`embedded_photos` supplies real photos that ship inside scikit-image.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..config import DataConfig
from ..errors import InpaintsslError
from .images import open_image, to_tensor

# Natural photos in scikit-image's data folder (present in the wheel, no download needed).
EMBEDDED_NAMES = ("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg",
                  "motorcycle_left.png", "motorcycle_right.png", "hubble_deep_field.jpg", "coins.png",
                  "moon.png", "grass.png", "gravel.png", "brick.png", "retina.jpg", "ihc.png",
                  "page.png", "text.png", "color.png", "cell.png", "clock_motion.png")


def embedded_photos() -> list[Path]:
    """Paths of the sample photos shipped with scikit-image (about 20 real photos and textures)."""
    try:
        import skimage
    except ImportError:
        raise InpaintsslError("no --data given and scikit-image (which ships the default photos) is not "
                              "installed; pip install scikit-image, or pass --data DIR") from None
    folder = Path(skimage.__file__).parent / "data"
    found = [folder / n for n in EMBEDDED_NAMES if (folder / n).is_file()]
    if not found:
        raise InpaintsslError(f"no sample photos found in {folder}; pass --data DIR")
    return found


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the n images in one epoch: a pure function of (seed, epoch), shared by every data path."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def random_crop_flip(img: Image.Image, size: int, cfg: DataConfig, rng: np.random.Generator) -> Image.Image:
    """Square crop of side u * shorter_side (u ~ U[crop_min, crop_max]) at a random place, resized, flipped."""
    w, h = img.size
    side = max(1, int(round(min(w, h) * rng.uniform(cfg.crop_min, cfg.crop_max))))
    left = int(rng.integers(0, w - side + 1))
    top = int(rng.integers(0, h - side + 1))
    img = img.resize((size, size), Image.BICUBIC, box=(left, top, left + side, top + side),
                     reducing_gap=2.0 if side > 2 * size else None)
    if cfg.flip and rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


class ImageFolder(Dataset):
    """Indexed by stream position (see module docstring); returns ``(image (3,S,S), bad_paths)``."""

    def __init__(self, files: list[Path], image_size: int, cfg: DataConfig, seed: int = 0):
        if not files:
            raise InpaintsslError("no training images")
        self.files, self.size, self.cfg, self.seed = list(files), image_size, cfg, seed
        self._draft = int(math.ceil(image_size / cfg.crop_min))
        self._perm_epoch, self._perm = -1, None        # the current epoch's permutation, cached

    def __len__(self) -> int:
        return len(self.files)

    def index_at(self, position: int) -> int:
        n = len(self.files)
        epoch, offset = divmod(position, n)
        if epoch != self._perm_epoch:
            self._perm_epoch, self._perm = epoch, epoch_permutation(n, self.seed, epoch)
        return int(self._perm[offset])

    def load(self, index: int, position: int) -> torch.Tensor:
        img = open_image(self.files[index], draft=self._draft)
        rng = np.random.default_rng([self.seed, position])
        return to_tensor(np.asarray(random_crop_flip(img, self.size, self.cfg, rng)))

    def batch(self, positions) -> torch.Tensor:
        """(B, 3, S, S) of these stream positions, in this process (as :meth:`CachedImages.batch`)."""
        return torch.stack([self[int(p)][0] for p in positions])

    def __getitem__(self, position: int) -> tuple[torch.Tensor, list[str]]:
        bad: list[str] = []
        index = self.index_at(position)
        for attempt in range(len(self.files)):
            i = (index + attempt) % len(self.files)
            try:
                return self.load(i, position), bad
            except InpaintsslError:
                bad.append(str(self.files[i]))
        raise InpaintsslError(f"none of the {len(self.files)} training files could be read "
                              f"(first: {bad[0]}); check --data")


class StreamSampler(torch.utils.data.Sampler):
    """Yields lists of stream positions, one list per step, from ``start_step`` to ``total_steps``.

    ``part`` selects this process's share of each global batch of ``batch_size`` positions (under
    DistributedDataParallel, the rank's slice from ``gan.distributed.shard``; the whole batch by default)."""

    def __init__(self, batch_size: int, start_step: int, total_steps: int, part: slice = slice(None)):
        self.batch_size, self.start, self.total, self.part = batch_size, start_step, total_steps, part

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self):
        for step in range(self.start, self.total):
            yield list(range(step * self.batch_size, (step + 1) * self.batch_size)[self.part])


def _collate(items):
    images = torch.stack([it[0] for it in items])
    bad = [p for it in items for p in it[1]]
    return images, bad


def make_loader(ds: ImageFolder, batch_size: int, start_step: int, total_steps: int, workers: int,
                pin_memory: bool = False, part: slice = slice(None)) -> DataLoader:
    return DataLoader(ds, batch_sampler=StreamSampler(batch_size, start_step, total_steps, part),
                      num_workers=workers, collate_fn=_collate, pin_memory=pin_memory,
                      persistent_workers=False, prefetch_factor=4 if workers > 0 else None)


def steps_for_epochs(epochs: float, num_images: int, batch_size: int) -> int:
    return max(1, math.ceil(epochs * num_images / batch_size))
