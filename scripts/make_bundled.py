"""Maintainers: turn a finished training run into the bundled model (``src/inpaintssl/weights/``).

    python scripts/make_bundled.py --run RUN --data CACHE_OR_PHOTOS [--bn-batches 64] [--training-json FILE]

1. takes the run's EMA generator (``generator_ema``; the trained weights if the run kept none);
2. recomputes its batch-norm running statistics (``--bn-batches`` > 0): the EMA averages the *running
   statistics* of the trained model along with its weights, but those are not the statistics that the
   averaged weights produce. We run ``--bn-batches`` training batches (the run's own data path, crops and
   hole shapes, seeded, positions from the start of the stream) through the averaged generator in train
   mode with a cumulative average (``momentum=None``), no gradients;
3. writes ``bundled.safetensors`` (fp16) and ``bundled.json`` (SHA-256, config, step, the training record
   from ``--training-json``: command, data, wall time, machine) with :func:`inpaintssl.bundled.export_bundled`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from inpaintssl.bundled import export_bundled
from inpaintssl.checkpoint import generator_weights, load_checkpoint
from inpaintssl.config import config_from_dict
from inpaintssl.data.cache import CachedImages
from inpaintssl.data.folder import ImageFolder
from inpaintssl.data.sources import gather_files, is_cache_dir
from inpaintssl.gan.models import Generator
from inpaintssl.gan.step import generator_input, recompute_bn_stats, training_masks

OUT = Path(__file__).resolve().parents[1] / "src" / "inpaintssl" / "weights"


@torch.no_grad()
def recompute_bn(G: Generator, cfg, data: Path, batches: int, batch_size: int) -> None:
    """Batch-norm running statistics of ``G`` = the cumulative average over ``batches`` training batches
    (:func:`inpaintssl.gan.step.recompute_bn_stats`), from the start of the run's seeded data stream."""
    S = cfg.model.image_size
    if is_cache_dir(data):
        ds = CachedImages(data, S, cfg.data, seed=cfg.train.seed)
        get = lambda step: ds.batch(range(step * batch_size, (step + 1) * batch_size))  # noqa: E731
    else:
        ds = ImageFolder(gather_files([data]), S, cfg.data, seed=cfg.train.seed)
        get = lambda step: torch.stack([ds[i][0] for i in range(step * batch_size, (step + 1) * batch_size)])  # noqa: E731

    def inputs():
        for step in range(batches):
            real, mask = get(step), training_masks(cfg, step, batch_size)
            yield generator_input(real, mask, cfg.model.mask_channel), mask

    recompute_bn_stats(G, inputs())
    G.eval()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="finished training run folder")
    ap.add_argument("--data", type=Path, required=True, help="the run's training data (cache or photo folder)")
    ap.add_argument("--bn-batches", type=int, default=64, help="batches for the batch-norm statistics (0 = keep)")
    ap.add_argument("--training-json", type=Path, default=None, help="JSON record of how the run was made")
    ap.add_argument("--out", type=Path, default=OUT, help="output folder (default: the package's weights/)")
    args = ap.parse_args(argv)

    ckpt = load_checkpoint(args.run)
    cfg = config_from_dict(ckpt["config"])
    G = Generator(cfg.model)
    G.load_state_dict(generator_weights(ckpt))
    if args.bn_batches > 0:
        recompute_bn(G, cfg, args.data, args.bn_batches, cfg.train.batch_size)
    training = json.loads(args.training_json.read_text()) if args.training_json else {}
    training["bn_recomputed_batches"] = args.bn_batches
    info = export_bundled(G.state_dict(), ckpt["config"], ckpt["step"], training, args.out)
    print(f"wrote {args.out / info['file']} ({info['bytes'] / 1e6:.2f} MB, sha256 {info['sha256'][:16]}...) "
          f"from step {info['step']}")


if __name__ == "__main__":
    main()
