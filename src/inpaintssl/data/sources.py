"""What ``--data`` names: photo files and folders, or one prepared cache. Torch-free: ``prepare`` uses it.

    files = gather_files([Path("train2014"), Path("extra.jpg")])  # every image file, recursive, sorted per source
    is_cache_dir(Path("cache/coco128"))                            # True for a folder made by ``inpaintssl prepare``
    index = read_index(Path("cache/coco128"))                      # its validated ``cache_index.json``

The cache itself (its ``images-<token>.npy`` and the index fields) is written by :mod:`.prepare` and read
for training by :mod:`.cache`; this module holds only what both need, so ``import inpaintssl.data.prepare``
(and the ``inpaintssl prepare`` command) never loads PyTorch.
"""

from __future__ import annotations

from pathlib import Path

from ..checkpoint import read_json_record
from ..errors import InpaintsslError
from .images import IMAGE_EXTENSIONS, list_images

INDEX_NAME = "cache_index.json"
CACHE_FORMAT = "inpaintssl-image-cache"
CACHE_VERSION = 1


def is_cache_dir(path: Path) -> bool:
    """True for a folder made by ``inpaintssl prepare`` (it holds ``cache_index.json``)."""
    return Path(path).is_dir() and (Path(path) / INDEX_NAME).is_file()


def read_index(root: Path) -> dict:
    """The validated index of the cache in ``root``."""
    path = Path(root) / INDEX_NAME
    index = read_json_record(path, CACHE_FORMAT, "run 'inpaintssl prepare' again",
                             "not an inpaintssl image cache index; run 'inpaintssl prepare'")
    if int(index.get("version", 0)) > CACHE_VERSION:
        raise InpaintsslError(f"{path}: cache version {index['version']} is newer than this inpaintssl reads "
                              f"({CACHE_VERSION}); upgrade inpaintssl or prepare the cache again")
    return index


def gather_files(sources: list[Path]) -> list[Path]:
    """Image files under every source (a folder, searched recursively, or a single file)."""
    files: list[Path] = []
    for src in sources:
        src = Path(src)
        if not src.exists():
            raise InpaintsslError(f"{src}: no such file or folder; check --data")
        if is_cache_dir(src):                            # made by `inpaintssl prepare`: see cache.py
            raise InpaintsslError(f"{src}: is a prepared cache; train reads it when it is the only --data "
                                  "(do not mix it with photo folders)")
        found = list_images(src)
        if src.is_file() and src.suffix.lower() not in IMAGE_EXTENSIONS:
            raise InpaintsslError(f"{src}: not an image file ({', '.join(IMAGE_EXTENSIONS)})")
        if not found:
            raise InpaintsslError(f"{src}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder "
                                  "or its sub-folders")
        files.extend(found)
    return files
