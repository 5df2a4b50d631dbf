"""Reading a prepared image cache (made by ``inpaintssl prepare``): no decoding during training.

    ds = CachedImages(Path("cache/"), image_size=128, cfg=DataConfig(), seed=0, device=torch.device("cuda"))
    for real, bad in CachedBatches(ds, batch_size=1024, start_step=0, total_steps=100):
        ...                                  # real: (B, 3, 128, 128) in [-1, 1] on ds.device; bad == []

A cache folder holds ``cache_index.json`` and one ``images-<token>.npy``: uint8 ``(N, L, L, 3)`` RGB,
``L = round(size * margin)``, each row the centre square of a photo's shorter side (see prepare.py).

Augmentation runs on the training device, for a whole batch at once: a square crop whose side is a
fraction ``u ~ U[crop_min, crop_max]`` of ``L`` (the photo's shorter side, as in :mod:`data`), placed
uniformly inside the stored square, resized to ``image_size`` by bilinear ``grid_sample``, then a
horizontal flip with probability 0.5 (``data.flip``). The default geometry (margin 1.125, crop_min
0.875) makes the crop 126-144 px for 128 px training: about 1:1, no up-sampling. If the model trains
smaller than the cache's size, the batch is first shrunk with an anti-aliased resize by
``image_size / size``, so a 128 px cache also feeds the 32 px smoke preset. Unlike ImageFolder, the crop
stays inside the centre square of a landscape or portrait photo.

Data order and crops are pure functions of (seed, stream position): the index stream is the same
per-epoch permutation as :class:`data.ImageFolder`; the crop and flip of a sample come from a
counter-based hash of (seed, position). A step, a resumed step, or a rank's shard of a step therefore
gets the same pixels however the run is split.

Storage: on CUDA the whole array is copied to the GPU once when it takes under a quarter of the free
memory (COCO-2014 train at 128 px is 5.1 GB); batches are then gathered on the device. Otherwise rows
are gathered from the memory-mapped file by a background thread, one step ahead.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import DataConfig
from .folder import epoch_permutation
from ..errors import InpaintsslError
from .sources import read_index


def open_cache(root: Path) -> tuple[dict, np.ndarray]:
    """(index, read-only memory map of the images, (N, L, L, 3) uint8)."""
    root = Path(root)
    index = read_index(root)
    npy = root / index["images"]
    try:
        images = np.load(npy, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise InpaintsslError(f"{npy}: cannot open the cache's image array ({e}); run 'inpaintssl prepare' "
                              "again") from None
    side = int(index["side"])
    if images.dtype != np.uint8 or images.shape != (int(index["count"]), side, side, 3):
        raise InpaintsslError(f"{npy}: array is {images.dtype} {images.shape}, the index says uint8 "
                              f"({index['count']}, {side}, {side}, 3); run 'inpaintssl prepare' again")
    return index, images


def hash_uniforms(seed: int, positions: np.ndarray, k: int) -> np.ndarray:
    """(n, k) float64 in [0, 1): splitmix64 of (seed, position, j). Counter-based: no state, any order."""
    with np.errstate(over="ignore"):
        z = (np.uint64(seed % (1 << 64)) * np.uint64(0x9E3779B97F4A7C15)
             + np.asarray(positions, dtype=np.uint64)[:, None] * np.uint64(k)
             + np.arange(k, dtype=np.uint64)[None, :] + np.uint64(1)) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(31))) * np.uint64(0x94D049BB133111EB)
        z = (z ^ (z >> np.uint64(29))) * np.uint64(0xD6E8FEB8D2C5A5D7)
        z = z ^ (z >> np.uint64(32))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def crop_flip(rows: torch.Tensor, params: torch.Tensor, out_size: int, cfg: DataConfig,
              prescale: int | None = None) -> torch.Tensor:
    """Batch augmentation on the rows' device. rows: (B, L, L, 3) uint8; params: (B, 4) in [0, 1)
    (crop side, x, y, flip); returns (B, 3, out_size, out_size) float in [-1, 1]."""
    x = rows.permute(0, 3, 1, 2).float()                              # (B, 3, L, L), values 0..255
    if prescale is not None and prescale != x.shape[-1]:              # anti-aliased shrink first
        x = F.interpolate(x, size=(prescale, prescale), mode="bilinear", antialias=True, align_corners=False)
    b = x.shape[0]
    params = params.to(x.device, torch.float32)
    frac = cfg.crop_min + (cfg.crop_max - cfg.crop_min) * params[:, 0]  # crop side / L
    free = 1.0 - frac                                                   # room left for the offset, / L
    sign = torch.where(params[:, 3] < 0.5, -1.0, 1.0) if cfg.flip else torch.ones_like(frac)
    # affine_grid maps output coords in [-1, 1] to input coords: x_in = frac * x_out + centre offset
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0] = frac * sign
    theta[:, 0, 2] = 2 * params[:, 1] * free + frac - 1
    theta[:, 1, 1] = frac
    theta[:, 1, 2] = 2 * params[:, 2] * free + frac - 1
    grid = F.affine_grid(theta, [b, 3, out_size, out_size], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.div_(127.5).sub_(1.0).clamp_(-1.0, 1.0)            # bilinear weights may overshoot by 1 ulp


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device without making the CPU wait for the GPU (pinned + non_blocking); CPU: as is."""
    if device.type != "cuda":
        return t
    return t.pin_memory().to(device, non_blocking=True)


class CachedImages:
    """A prepared cache as a training dataset indexed by stream position (the ImageFolder interface).

    ``ds[position]`` -> ``(image (3, S, S) on the CPU, [])``; :meth:`batch` makes a whole batch on
    ``device``. ``on_device``: ``"auto"`` (copy the array to a CUDA device if it fits in a quarter of the
    free memory), ``True`` or ``False``."""

    def __init__(self, root: Path, image_size: int, cfg: DataConfig, seed: int = 0,
                 device: torch.device | str = "cpu", on_device: bool | str = "auto"):
        self.root = Path(root)
        self.index, self.images = open_cache(self.root)
        if len(self.images) == 0:
            raise InpaintsslError(f"{self.root}: the cache holds no images")
        self.size, self.cfg, self.seed, self.device = image_size, cfg, seed, torch.device(device)
        cache_size, side = int(self.index["size"]), int(self.index["side"])
        if image_size > cache_size:
            raise InpaintsslError(f"{self.root}: cache prepared for {cache_size} px but model.image_size="
                                  f"{image_size}; run 'inpaintssl prepare --size {image_size}' for this model")
        self.prescale = None if image_size == cache_size else int(round(side * image_size / cache_size))
        self._perms: dict[int, np.ndarray] = {}
        if on_device == "auto":
            on_device = self.device.type == "cuda" and \
                self.images.nbytes < 0.25 * torch.cuda.mem_get_info(self.device)[0]
        self.on_device = bool(on_device) and self.device.type != "cpu"
        self._device_images = None
        if self.on_device:
            self._device_images = torch.empty(self.images.shape, dtype=torch.uint8, device=self.device)
            for i in range(0, len(self.images), 4096):                 # chunked host -> device copy
                chunk = torch.from_numpy(np.ascontiguousarray(self.images[i:i + 4096]))
                self._device_images[i:i + len(chunk)].copy_(chunk)

    def __len__(self) -> int:
        return len(self.images)

    def indices(self, positions: np.ndarray) -> np.ndarray:
        """Row of each stream position: one seeded permutation per epoch (as data.ImageFolder)."""
        n = len(self.images)
        positions = np.asarray(positions, dtype=np.int64)
        epochs, offsets = np.divmod(positions, n)
        out = np.empty_like(positions)
        for e in np.unique(epochs):
            perm = self._perms.get(int(e))       # a local reference: the loader thread may clear the dict
            if perm is None:
                if len(self._perms) > 4:
                    self._perms.clear()
                perm = self._perms[int(e)] = epoch_permutation(n, self.seed, int(e)).numpy()
            sel = epochs == e
            out[sel] = perm[offsets[sel]]
        return out

    def rows(self, positions: np.ndarray) -> torch.Tensor:
        """The uint8 rows (B, L, L, 3) of these positions: on the device if the array lives there, else a
        CPU tensor (pinned when training on CUDA). Safe to call from a background thread."""
        idx = self.indices(positions)
        if self._device_images is not None:
            return self._device_images[_to_device(torch.from_numpy(idx), self.device)]
        rows = torch.from_numpy(self.images[idx])                      # copies out of the memory map
        return rows.pin_memory() if self.device.type == "cuda" else rows

    def augment(self, rows: torch.Tensor, positions: np.ndarray) -> torch.Tensor:
        """(B, 3, S, S) in [-1, 1] on the device, from rows() of the same positions."""
        rows = rows.to(self.device, non_blocking=True)
        params = _to_device(torch.from_numpy(hash_uniforms(self.seed, positions, 4)).float(), self.device)
        return crop_flip(rows, params, self.size, self.cfg, self.prescale)

    def batch(self, positions) -> torch.Tensor:
        positions = np.asarray(positions, dtype=np.int64)
        return self.augment(self.rows(positions), positions)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, list[str]]:
        return self.batch([int(position)])[0].cpu(), []


class CachedBatches:
    """Iterates ``(images (b, 3, S, S) on the device, [])`` for steps ``start_step..total_steps-1``;
    ``part`` selects this rank's slice of each global batch of ``batch_size`` positions."""

    def __init__(self, ds: CachedImages, batch_size: int, start_step: int, total_steps: int,
                 part: slice = slice(None)):
        self.ds, self.batch_size, self.start, self.total, self.part = ds, batch_size, start_step, total_steps, part

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def positions(self, step: int) -> np.ndarray:
        return np.arange(step * self.batch_size, (step + 1) * self.batch_size, dtype=np.int64)[self.part]

    def __iter__(self):
        if self.ds.on_device:                                          # gathering is a device op: no thread
            for step in range(self.start, self.total):
                yield self.ds.batch(self.positions(step)), []
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-rows") as pool:
            pending = pool.submit(self.ds.rows, self.positions(self.start)) if len(self) else None
            for step in range(self.start, self.total):
                rows = pending.result()
                if step + 1 < self.total:                              # read the next step while this one trains
                    pending = pool.submit(self.ds.rows, self.positions(step + 1))
                yield self.ds.augment(rows, self.positions(step)), []
