"""The paper's qualitative figures (section 6.1) from fixed unseen photos.

    photos = FigurePhotos.load([Path("val2017")], size=64, limit=8, seed=0)
    out = photos.run({"m1": Path("runs/m1"), "m2": Path("runs/m2")}, device="cpu")
    save_figure_grid(photos, out["m1"], rows=8, path=Path("figure3_m1.png"))

Photos and holes follow :mod:`evaluation.evaluate`'s protocol exactly (the first photos of the folders in
sorted order, centre square, the paper's central hole), so the figures show photos the evaluation scores.
Each figure has one row per photo: real | corrupted | reconstructed (the model's output in the hole, the
real photo outside), the layout of the paper's Figures 3, 5 and 6. The paper judged "blurry" and "crisp"
by eye; our number for it is the evaluation's ``sharpness_hole`` (:mod:`evaluation.metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.images import save_png
from ..evaluation.evaluate import (checkpoint_method, composite, corrupt, eval_masks, load_eval_set,
                                   load_inpainter)
from ..evaluation.report import labelled_grid

FIGURE_LABELS = ["real", "corrupted", "reconstructed"]


@dataclass
class FigurePhotos:
    """The fixed photos (N, S, S, 3) uint8, their names, central holes (N, S, S) bool and corrupted inputs."""
    names: list[str]
    images: np.ndarray
    holes: np.ndarray
    corrupted: np.ndarray

    @classmethod
    def load(cls, sources: Sequence[Path], size: int, limit: int | None, seed: int = 0,
             log=print) -> "FigurePhotos":
        names, images, _ = load_eval_set([Path(s) for s in sources], size, limit, log)
        holes = eval_masks("center", len(images), size, seed)
        return cls(names, images, holes, corrupt(images, holes))

    def run(self, runs: dict[str, Path], device: str = "auto", batch_size: int = 32) -> dict[str, np.ndarray]:
        """{name: composites (N, S, S, 3) uint8} of every run folder's model on these photos."""
        size = self.images.shape[1]
        methods = {name: checkpoint_method(load_inpainter(Path(run), device)[0], size) for name, run in runs.items()}
        out = {}
        for name, method in methods.items():
            parts = [method(self.corrupted[lo:lo + batch_size], self.holes[lo:lo + batch_size])
                     for lo in range(0, len(self.images), batch_size)]
            out[name] = composite(np.concatenate(parts), self.images, self.holes)
        return out


def save_figure_grid(photos: FigurePhotos, composites: np.ndarray, rows: int, path: Path) -> Path:
    """Rows = the first ``rows`` photos; columns = real | corrupted | reconstructed (paper Figures 3, 5, 6)."""
    k = min(rows, len(photos.images))
    tiles = [[photos.images[i], photos.corrupted[i], composites[i]] for i in range(k)]
    save_png(labelled_grid(tiles, FIGURE_LABELS), path)
    return Path(path)

