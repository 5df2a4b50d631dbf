"""Data: image files in, tensors out. The lowest layer above ``config`` / ``errors`` / ``checkpoint``.

* :mod:`.images`   image I/O and the package's image conventions (uint8 RGB on disk, [-1, 1] tensors);
* :mod:`.sources`  what ``--data`` names: image files found recursively, or a prepared cache (torch-free);
* :mod:`.folder`   a recursive photo folder as a training dataset, crops, flips and the seeded data order;
* :mod:`.cache`    the prepared uint8 memory-mapped cache and its device-side crops;
* :mod:`.prepare`  ``inpaintssl prepare``: decode photos once into that cache (Pillow and numpy only: importing
  it, or running the command, never loads PyTorch).

May import: ``inpaintssl.config``, ``inpaintssl.errors``, ``inpaintssl.checkpoint``. Never the GAN,
evaluation, transfer, app or CLI.
"""
