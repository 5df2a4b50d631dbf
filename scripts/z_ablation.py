"""The bottleneck ablation table (docs/transfer.md): each model's hole PSNR with its bottleneck ``z``
(the fcn: its ``middle``) or one skip replaced by its mean over the photos (:mod:`inpaintssl.evaluation.bypass`).

    python scripts/z_ablation.py --data ../shared/data/voc2007-sample/VOCdevkit/VOC2007/JPEGImages --limit 512 \
        --model ssl --model bundled --model runs/study/m1 --model runs/study/combo

Each model runs at its own training size on the first ``--limit`` photos' centre squares, the holes of
``--mask`` (seeded, as ``inpaintssl evaluate`` draws them); prints a markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from inpaintssl.checkpoint import generator_weights, load_checkpoint
from inpaintssl.config import config_from_dict
from inpaintssl.evaluation.bypass import bottleneck_ablation
from inpaintssl.evaluation.evaluate import eval_masks, load_eval_set, run_folder
from inpaintssl.gan.models import make_generator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder of photos the models never trained on")
    ap.add_argument("--model", action="append", required=True, help="run folder, checkpoint, 'ssl' or 'bundled'")
    ap.add_argument("--limit", type=int, default=512)
    ap.add_argument("--mask", default="center")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rows = []
    for name in a.model:
        path = run_folder(Path(name)) if Path(name).is_dir() else name
        ckpt = load_checkpoint(path)
        cfg = config_from_dict(ckpt["config"])
        G = make_generator(cfg.model)
        G.load_state_dict(generator_weights(ckpt))
        size = cfg.model.image_size
        _, images, _ = load_eval_set([a.data], size, a.limit, log=lambda *_: None)
        real = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
        mask = torch.from_numpy(eval_masks(a.mask, len(images), size, a.seed)).float().unsqueeze(1)
        r = bottleneck_ablation(G, cfg, real, mask)
        label = f"{Path(name).name} ({cfg.preset}, {ckpt.get('step')} steps)"
        rows.append((label, r))
        print(label, {k: round(v, 2) for k, v in r.items()}, flush=True)
    parts = list(dict.fromkeys(k for _, r in rows for k in r if k != "normal"))
    print("\n| model | hole PSNR | " + " | ".join(f"{p} -> mean" for p in parts) + " |")
    print("|---|---:|" + "---:|" * len(parts))
    for label, r in rows:
        cells = [f"{r[p]:.2f} ({r[p] - r['normal']:+.2f})" if p in r else "" for p in parts]
        print(f"| {label} | {r['normal']:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
