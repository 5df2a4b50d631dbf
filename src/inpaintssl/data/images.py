"""Image and mask I/O at the boundary of the package: files <-> uint8 arrays <-> [-1, 1] tensors.

    rgb = load_rgb("photo.jpg")                 # (H, W, 3) uint8, EXIF orientation applied
    hole = load_mask("mask.png", rgb.shape[:2]) # (H, W) bool, white = hole (or: the opaque pixels)
    x = to_tensor(rgb)                          # (3, H, W) float in [-1, 1]

Every failure to read a file becomes an :class:`InpaintsslError` naming the file and what to do.
Any mode Pillow opens is converted to 8-bit RGB: grayscale, 16-bit (scaled, not clipped), CMYK,
palette (with or without transparency), RGBA/LA (alpha dropped). Decompression bombs are refused.
A mask keeps its alpha channel: a stroke painted on a transparent layer is the hole (:func:`mask_to_hole`).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from ..checkpoint import atomic_write
from ..errors import InpaintsslError

if TYPE_CHECKING:                   # torch is imported where a tensor is made: prepare needs no torch
    import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MAX_PIXELS = 100_000_000            # refuse images above 100 megapixels (Pillow's bomb guard is ~89 MP)

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(root: Path) -> list[Path]:
    """All image files under ``root`` (recursive, sorted); ``root`` may itself be one file."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image_path(p))


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (img.mode == "P" and "transparency" in img.info)


def _to_rgb(img: Image.Image, keep_alpha: bool = False) -> Image.Image:
    if keep_alpha and _has_alpha(img):
        return img.convert("RGBA")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def _decode(source, label, draft: int | None = None, keep_alpha: bool = False) -> Image.Image:
    """Decode a path or binary file object (bomb guard, EXIF orientation, RGB, or RGBA when ``keep_alpha``
    and the file has transparency); errors name ``label``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise Image.DecompressionBombError(f"{img.width}x{img.height} pixels")
                if draft and img.format == "JPEG":
                    img.draft("RGB", (draft, draft))
                img.load()
                img = ImageOps.exif_transpose(img)
                rgb = _to_rgb(img, keep_alpha)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InpaintsslError(f"{label}: image too large ({e}); the limit is {MAX_PIXELS:,} pixels, "
                              "downscale it first") from None
    except InpaintsslError:
        raise
    except (OSError, SyntaxError, ValueError, Image.UnidentifiedImageError, EOFError) as e:
        why = str(e) if isinstance(source, (str, Path)) else str(e).replace(f" {source!r}", "")
        raise InpaintsslError(f"{label}: cannot read image ({type(e).__name__}: {why}); "
                              "is it a complete JPEG/PNG/WebP file?") from None
    if rgb.width < 2 or rgb.height < 2:
        raise InpaintsslError(f"{label}: image is {rgb.width}x{rgb.height} pixels; need at least 2x2")
    return rgb


def open_image(path: Path, draft: int | None = None, keep_alpha: bool = False) -> Image.Image:
    """Open, decode fully, apply EXIF orientation, convert to RGB (RGBA if ``keep_alpha`` and the file has
    transparency). ``draft`` lets JPEG decode at a reduced scale whose shorter side is still >= draft
    pixels (much faster for training crops)."""
    path = Path(path)
    if not path.exists():
        raise InpaintsslError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InpaintsslError(f"{path}: is a folder, expected an image file")
    if path.stat().st_size == 0:
        raise InpaintsslError(f"{path}: empty file (0 bytes); replace it with a real image")
    return _decode(path, path, draft, keep_alpha)


def open_image_bytes(data: bytes, label: str = "upload") -> Image.Image:
    """:func:`open_image` for an encoded image already in memory (an HTTP upload); ``label`` names it
    in error messages. Same decoding, bomb guard and RGB conversion."""
    if not data:
        raise InpaintsslError(f"{label}: empty file (0 bytes); send a real image")
    return _decode(io.BytesIO(data), label)


def load_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    return np.asarray(open_image(path), dtype=np.uint8).copy()


MASK_MIDTONES = (32, 224)           # values in [32, 224) are neither black nor white
MASK_MIDTONE_WARN = 0.2             # warn when more than this fraction of a mask's pixels is mid-tone


def load_mask(path: Path, shape: tuple[int, int] | None = None, warn=None) -> np.ndarray:
    """A mask file as (H, W) bool, True = hole: white (gray >= 128), or, when the file has transparency,
    the opaque pixels (alpha >= 128) whatever their colour.

    ``shape`` = (H, W) of the image the mask belongs to; a mismatch is an error (no silent resize).
    ``warn(message)`` is called when the file does not look like a mask (see :func:`mask_to_hole`)."""
    path = Path(path)
    return mask_to_hole(open_image(path, keep_alpha=True), shape, path, warn)


def mask_to_hole(img: Image.Image, shape: tuple[int, int] | None, label, warn=None) -> np.ndarray:
    """A decoded mask image -> (H, W) bool hole, with :func:`load_mask`'s checks.

    An RGBA image with some transparency (a stroke painted on a transparent layer) gives hole = alpha >= 128;
    any other image hole = gray >= 128. ``warn`` (if given) hears about a "mask" of which more than
    :data:`MASK_MIDTONE_WARN` of the pixels are mid-gray (a photo passed as a mask, say)."""
    values, what = np.asarray(img.convert("L")), "white"
    if img.mode == "RGBA":
        alpha = np.asarray(img.getchannel("A"))
        if (alpha < 255).any():
            values, what = alpha, "opaque"
    if shape is not None and values.shape != tuple(shape):
        raise InpaintsslError(f"{label}: mask is {values.shape[1]}x{values.shape[0]} but the image is "
                              f"{shape[1]}x{shape[0]}; a mask must have the image's size")
    hole = values >= 128
    if not hole.any():
        raise InpaintsslError(f"{label}: mask has no hole (no {what} pixel); paint the region to fill in white "
                              "(or opaque on a transparent layer)")
    if hole.all():
        raise InpaintsslError(f"{label}: mask is entirely {what} (everything is hole); leave some context "
                              + ("black" if what == "white" else "transparent"))
    midtone = float(((values >= MASK_MIDTONES[0]) & (values < MASK_MIDTONES[1])).mean())
    if warn is not None and midtone > MASK_MIDTONE_WARN:
        warn(f"{label}: {100 * midtone:.0f}% of the mask's pixels are neither black nor white; is it really a "
             f"mask? (used: {'alpha' if what == 'opaque' else 'gray'} >= 128 = hole, {hole.sum():,} pixels)")
    return hole


def dilate_hole(hole: np.ndarray, pixels: int) -> np.ndarray:
    """Grow an (H, W) bool hole by ``pixels`` px (Euclidean: every pixel within that distance of the hole),
    to cover the feathered edge of a painted stroke. 0 returns the hole unchanged."""
    if pixels <= 0 or not hole.any():
        return hole
    from scipy import ndimage                     # scipy comes with scikit-image, a dependency
    ys, xs = np.nonzero(hole)
    y0, y1 = max(0, ys.min() - pixels), min(hole.shape[0], ys.max() + pixels + 1)
    x0, x1 = max(0, xs.min() - pixels), min(hole.shape[1], xs.max() + pixels + 1)
    part = hole[y0:y1, x0:x1]                     # only the hole's neighbourhood can change
    grown = hole.copy()
    grown[y0:y1, x0:x1] = ndimage.distance_transform_edt(~part) <= pixels
    return grown


def center_square(img: Image.Image, size: int) -> Image.Image:
    """The central square of side min(W, H), resized to (size, size) (bicubic, reduced in steps when large)."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.resize((size, size), Image.BICUBIC, box=(left, top, left + side, top + side),
                      reducing_gap=2.0 if side > 2 * size else None)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [-1, 1]."""
    import torch
    rgb = rgb if rgb.flags.writeable and rgb.flags.c_contiguous else np.array(rgb, order="C")
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [-1, 1] -> (H, W, 3) uint8 (rounded, clamped)."""
    import torch
    x = x.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round()
    return x.to(torch.uint8).permute(1, 2, 0).numpy()


def save_png(rgb: np.ndarray, path: Path) -> None:
    """Write a PNG atomically (temp file in the same folder, then rename)."""
    atomic_write(Path(path), lambda f: Image.fromarray(rgb).save(f, format="PNG"))


# suffix -> (Pillow format, save options): PNG and WebP lossless; JPEG quality 95 without chroma subsampling
SAVE_FORMATS = {".png": ("PNG", {}), ".jpg": ("JPEG", {"quality": 95, "subsampling": 0}),
                ".jpeg": ("JPEG", {"quality": 95, "subsampling": 0}), ".webp": ("WEBP", {"lossless": True})}


def save_image(rgb: np.ndarray, path: Path) -> None:
    """Write an (H, W, 3) uint8 image atomically in the format its suffix names (:data:`SAVE_FORMATS`)."""
    path = Path(path)
    fmt, opts = SAVE_FORMATS[path.suffix.lower()]
    atomic_write(path, lambda f: Image.fromarray(rgb).save(f, format=fmt, **opts))


def make_grid(rows: list[list[np.ndarray]], pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile equal-sized (H, W, 3) uint8 images: rows[i][j] is row i, column j."""
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), fill, np.uint8)
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = im
    return out
