"""Command-line interface: wiring only; the work happens in the engine modules.

    inpaintssl train --preset m1 --data train2014/ --out runs/m1 --steps 20000
    inpaintssl inpaint --checkpoint runs/m1 --center photo.jpg --out filled/
    inpaintssl presets m1            # print a preset's resolved config

A problem the user can fix (an :class:`InpaintsslError`) becomes one ``Error: ...`` line on stderr and
exit status 1; usage mistakes exit 2 (click's convention); an interrupted training run exits 130.
"""

from __future__ import annotations

from . import app, evaluate, reproduce, train, transfer  # noqa: F401  (each module registers its commands)
from .base import cli


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="inpaintssl")


if __name__ == "__main__":
    main()
