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
from inpaintssl.gan.models import make_generator
from inpaintssl.gan.step import recompute_bn_stats
from inpaintssl.gan.train import ema_bn_inputs

OUT = Path(__file__).resolve().parents[1] / "src" / "inpaintssl" / "weights"


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
    G = make_generator(cfg.model)
    G.load_state_dict(generator_weights(ckpt))
    if args.bn_batches > 0:
        S = cfg.model.image_size
        ds = (CachedImages(args.data, S, cfg.data, seed=cfg.train.seed) if is_cache_dir(args.data) else
              ImageFolder(gather_files([args.data]), S, cfg.data, seed=cfg.train.seed))
        recompute_bn_stats(G, ema_bn_inputs(cfg, ds, slice(None), torch.device("cpu"), args.bn_batches))
        G.eval()
    training = json.loads(args.training_json.read_text()) if args.training_json else {}
    training["bn_recomputed_batches"] = args.bn_batches
    info = export_bundled(G.state_dict(), ckpt["config"], ckpt["step"], training, args.out)
    print(f"wrote {args.out / info['file']} ({info['bytes'] / 1e6:.2f} MB, sha256 {info['sha256'][:16]}...) "
          f"from step {info['step']}")


if __name__ == "__main__":
    main()
