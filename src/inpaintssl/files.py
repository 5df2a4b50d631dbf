"""Writing files atomically: a reader sees the old file or the new one, never half of it.

    atomic_write_text(run / "config.json", text)
    atomic_write(path, lambda f: f.write(blob))

The lowest floor of the package with :mod:`.errors`: every module that writes a file imports it, and it
imports nothing of the package.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0)                 # read the process umask (os.umask can only set it) and restore it
os.umask(_UMASK)


def atomic_write(path: Path, write) -> None:
    """Write ``path`` via ``write(binary_file)`` into a temp file in the same folder, fsync, then rename:
    readers see the old file or the new one, never half of it. Used for every file the tool writes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)    # mkstemp makes 0600 files; give the mode a plain open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))
