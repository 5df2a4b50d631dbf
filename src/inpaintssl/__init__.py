"""inpaintssl: self-supervised learning by image inpainting.

Conventions used everywhere in this package (defined once, here):

* an image batch is float in ``[-1, 1]`` with shape ``(B, 3, H, W)``;
* a mask batch is float ``{0, 1}`` with shape ``(B, 1, H, W)`` where **1 = hole** (pixel to fill);
* the composite of a prediction into an image is ``mask * pred + (1 - mask) * image``;
* on disk and at the API boundary, images are ``uint8`` ``(H, W, 3)`` RGB arrays and masks are ``bool``
  ``(H, W)`` arrays (a mask file is an image whose white pixels are the hole).

Quick start::

    inpaintssl train --preset smoke --out runs/smoke --steps 200     # embedded sample photos
    inpaintssl inpaint --checkpoint runs/smoke --center photo.jpg --out filled/
"""

import os

# OpenMP threads that spin while they wait lose whole time slices when the CPU is shared with other busy
# processes: measured here, a smoke training run took 658 s instead of 32 s. Passive waiting costs nothing
# measurable on a quiet machine. It only takes effect if set before PyTorch loads, and an explicit
# OMP_WAIT_POLICY from the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from .errors import InpaintsslError  # noqa: E402,F401
