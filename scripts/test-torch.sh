#!/usr/bin/env bash
# npm run test:torch — the Python side of kiln's PyTorch mirror (python/kiln_torch), which npm test does not need:
#  1. recomputes the mirror fixtures with PyTorch and compares them with the committed ones (scripts/torch-mirror.py --check);
#  2. trains a few steps of kiln's default MNIST UNet with python/train_ddp.py in 2 processes (torchrun, gloo, CPU);
#  3. loads the checkpoint it wrote in kiln and compares kiln's output on a first sampling step with PyTorch's
#     (scripts/torch-ddp-check.ts, ≤ 1e-4 of max), then samples a grid from it with kiln sample.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
if ! "$PY" -c 'import torch' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y python3-torch || { apt-get update && apt-get install -y python3-torch; }
  else
    echo "PyTorch is missing: sudo apt-get install -y python3-torch" >&2
    exit 1
  fi
fi
echo "== the mirror fixtures against PyTorch"
"$PY" scripts/torch-mirror.py --check
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "== 2-process DDP training (gloo on localhost)"
# --redirects/--tee 1: torchrun of PyTorch 1.13 fails on Python 3.11 with its default of 0
OMP_NUM_THREADS=1 "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 --redirects 1 --tee 1 --log_dir "$dir/logs" \
  python/train_ddp.py --steps 6 --batch 8 --warmup 1 --lr 0.02 --save-every 3 --data-limit 512 --out "$dir/run" --probe "$dir/probe.safetensors"
echo "== kiln loads the checkpoint"
npx tsx scripts/torch-ddp-check.ts "$dir/run/checkpoint.safetensors" "$dir/probe.safetensors"
npx tsx src/cli/main.ts sample --checkpoint "$dir/run/checkpoint.safetensors" --per-class 2 --steps 4 --out "$dir/sample.png"
test -s "$dir/sample.png"
echo "test:torch passed"
