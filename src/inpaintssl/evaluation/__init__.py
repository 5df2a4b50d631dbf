"""Evaluation of inpainting: fixed seeded holes, metrics, baselines, reports, the M1/M2/M3 ablation.

* :mod:`.metrics`   per-image L1 / L2 / PSNR / SSIM over the hole and the whole image;
* :mod:`.evaluate`  checkpoints and the Telea / NS / mean baselines on the same holes;
* :mod:`.report`    ``report.md``, ``metrics.json``, ``per_image.csv``, ``grid.png``;
* :mod:`.ablation`  train M1, M2, M3 (and more presets) alike, then evaluate them;
* :mod:`.bypass`    the fill with the bottleneck (or one skip) replaced by its mean: is ``z`` used?
* :mod:`.plots`     loss curves and the atomic figure writer (matplotlib, imported lazily).

May import: ``inpaintssl.config`` / ``errors`` / ``checkpoint``, ``inpaintssl.data``, ``inpaintssl.gan``.
Never transfer, the app or the CLI.
"""
