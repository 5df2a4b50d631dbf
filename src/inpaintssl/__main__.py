"""``python -m inpaintssl ...`` (also ``torchrun -m inpaintssl train ...``)."""

from .cli import main

main()
