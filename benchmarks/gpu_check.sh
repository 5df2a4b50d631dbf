#!/usr/bin/env bash
# One self-contained GPU check for the fast training path (issue 5): about 5 minutes expected on one
# H100/H200, at most 10 (the stage timeouts add up to 600 s).
#
#   bash benchmarks/gpu_check.sh            # from the repository root; results in $OUT (or /tmp/gpu_check)
#
# Needs only python3 with CUDA PyTorch, numpy, Pillow, click, tqdm (no network, no shared data): it makes
# its own photo-like 640x480 JPEGs, prepares a cache from them, then runs
#   1. benchmarks/prepare_speed.py        prepare vs a one-process Pillow loop (512 photos)
#   2. benchmarks/train_throughput.py     M1, batch 1024: project (eager) vs plain fp32, fraction of the
#                                         bf16 matmul rate, and train() end to end from the cache
#   3. the same with train.compile=true   (project only)
#   4. a short real run                   inpaintssl train --preset m1 --data CACHE, 300 steps, batch 1024
# Every stage has its own timeout, so one slow stage cannot eat the others' time.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
WORK=${WORK:-/tmp/gpu_check_work}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
SUMMARY="$OUT/summary.txt"
stage() { echo; echo "=== $* ($(date +%T))" | tee -a "$SUMMARY"; }

stage "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee -a "$SUMMARY"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" 2>&1 | tee -a "$SUMMARY"

stage "synthetic photos (4096 + 512 JPEGs, 640x480)"
timeout 60 $PY - "$WORK" <<'EOF' 2>&1 | tee -a "$SUMMARY"
import sys, numpy as np
from multiprocessing import Pool
from pathlib import Path
from PIL import Image
root = Path(sys.argv[1])
def photo(args):
    folder, i = args
    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    img = rng.uniform(40, 200, 3) + rng.uniform(-0.2, 0.2, 3) * yy[..., None] + rng.uniform(-0.2, 0.2, 3) * xx[..., None]
    for _ in range(4):                                          # soft blobs: objects
        cy, cx, r = rng.uniform(0, 480), rng.uniform(0, 640), rng.uniform(20, 120)
        img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None] * rng.uniform(-90, 90, 3)
    img += rng.normal(0, 6, img.shape)                          # texture, so JPEG decoding does real work
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / folder / f"{i:05d}.jpg", quality=90)
for folder in ("photos", "photos_small"):
    (root / folder).mkdir(parents=True, exist_ok=True)
jobs = [("photos", i) for i in range(4096)] + [("photos_small", 10_000 + i) for i in range(512)]
with Pool() as pool:
    pool.map(photo, jobs, chunksize=32)
print("wrote", len(jobs), "photos")
EOF

stage "prepare (4096 photos, all cores)"
timeout 60 $PY -m inpaintssl prepare --data "$WORK/photos" --out "$WORK/cache" --size 128 --overwrite --no-progress 2>&1 | tee -a "$SUMMARY"

stage "prepare vs plain Pillow loop (512 photos)"
timeout 60 $PY benchmarks/prepare_speed.py --data "$WORK/photos_small" --rounds 2 2>&1 | tee -a "$SUMMARY"

stage "throughput, eager (project) vs plain fp32, M1 batch 1024, + end to end from the cache"
timeout 150 $PY benchmarks/train_throughput.py --device cuda --preset m1 --batch 1024 --steps 30 --rounds 3 \
    --cache "$WORK/cache" --e2e-steps 200 --json "$OUT/throughput_eager.json" 2>&1 | tee -a "$SUMMARY"

stage "throughput, torch.compile (project only), M1 batch 1024"
timeout 180 $PY benchmarks/train_throughput.py --device cuda --preset m1 --batch 1024 --steps 30 --rounds 3 \
    --warmup 15 --compile --no-plain --json "$OUT/throughput_compile.json" 2>&1 | tee -a "$SUMMARY"

stage "short real run: train --preset m1 --data CACHE, 300 steps, batch 1024"
rm -rf "$WORK/run"
timeout 90 $PY -m inpaintssl train --preset m1 --data "$WORK/cache" --out "$WORK/run" --steps 300 --no-progress \
    --set train.batch_size=1024 --set train.log_every=50 --set train.sample_every=300 2>&1 | tee -a "$SUMMARY"
cp "$WORK/run/metrics.jsonl" "$OUT/run_metrics.jsonl" 2>/dev/null
cp "$WORK/run/samples/step_000300.png" "$OUT/run_samples.png" 2>/dev/null
$PY - "$WORK/run/metrics.jsonl" <<'EOF' 2>&1 | tee -a "$SUMMARY"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for r in rows:
    print(f"step {r['step']:4d}  g_total {r['g_total']:.4f}  hole_mse {r['hole_mse']:.4f}  {r['images_per_s']:.0f} images/s")
EOF
stage "done"
