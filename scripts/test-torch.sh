#!/usr/bin/env bash
# npm run test:torch — the Python side of kiln's PyTorch mirror (python/kiln_torch), which npm test does not need:
#  1. recomputes the mirror fixtures with PyTorch and compares them with the committed ones (scripts/torch-mirror.py --check);
#  2. checks train_ddp.py's logit-normal times against a quadrature (--time-mean), then trains a few steps of kiln's
#     default MNIST UNet with it in 2 processes (torchrun, gloo, CPU);
#  3. loads the checkpoint it wrote in kiln and compares kiln's output on a first sampling step with PyTorch's
#     (scripts/torch-ddp-check.ts, ≤ 1e-4 of max); kiln train --resume of it is refused, naming first its --time-mean
#     and then the optimizer state it lacks; then samples a grid from it with kiln sample;
#  4. starts train_ddp.py from a checkpoint kiln train writes (--init; its --time-mean carries over) and samples the result.
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
echo "== train_ddp.py's training times t = sigmoid(m + z)"
# a "model" that outputs its time t, at x0 = 0: the flow loss is E[(t - eps)^2] = E[t^2] + 1, against a float64
# quadrature of the logit-normal density (a draw that ignored m would miss by 0.13 at m = 0.6)
"$PY" - <<'PY'
import math, sys, torch
sys.path.insert(0, 'python')
import train_ddp
n, m = 400_000, 0.6
model = lambda x, t, labels: t.reshape(-1, 1).expand(-1, x.shape[1])
g = torch.Generator().manual_seed(0)
loss = train_ddp.denoising_loss(model, torch.zeros(n, 4), torch.zeros(n, dtype=torch.int64), 'flow', 0.0, 10, g, None, m).item()
z = [-8 + 16 * (i + 0.5) / 20000 for i in range(20000)]
exact = sum(math.exp(-(v * v) / 2) / math.sqrt(2 * math.pi) / (1 + math.exp(-(m + v))) ** 2 for v in z) * 16 / 20000 + 1
print(f'time mean {m}: loss {loss:.4f}, E[t^2] + 1 = {exact:.4f}')
assert abs(loss - exact) < 0.004, 'the logit-normal times of train_ddp.py do not have the asked mean'
PY
echo "== 2-process DDP training (gloo on localhost)"
# --redirects/--tee 1: torchrun of PyTorch 1.13 fails on Python 3.11 with its default of 0
OMP_NUM_THREADS=1 "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 --redirects 1 --tee 1 --log_dir "$dir/logs" \
  python/train_ddp.py --steps 6 --batch 8 --warmup 1 --lr 0.02 --time-mean 0.3 --save-every 3 --data-limit 512 --out "$dir/run" --probe "$dir/probe.safetensors"
echo "== kiln loads the checkpoint"
npx tsx scripts/torch-ddp-check.ts "$dir/run/checkpoint.safetensors" "$dir/probe.safetensors"
# kiln reads the run's time mean: resuming without the same --time-mean is refused, naming it
if npx tsx src/cli/main.ts train --preset cpu --resume --out "$dir/run" --steps 8 --data-limit 512 2>"$dir/resume.err"; then
  echo "kiln train --resume accepted a checkpoint trained with --time-mean 0.3 without it" >&2; exit 1
fi
grep -q -- '--time-mean 0.3, not 0' "$dir/resume.err" || { cat "$dir/resume.err" >&2; exit 1; }
# with it, the refusal names what is missing: train_ddp.py keeps no optimizer state
if npx tsx src/cli/main.ts train --preset cpu --resume --time-mean 0.3 --out "$dir/run" --steps 8 --data-limit 512 2>"$dir/resume.err"; then
  echo "kiln train --resume accepted a checkpoint without optimizer state" >&2; exit 1
fi
grep -q 'holds no optimizer state, so its run cannot be resumed' "$dir/resume.err" || { cat "$dir/resume.err" >&2; exit 1; }
npx tsx src/cli/main.ts sample --checkpoint "$dir/run/checkpoint.safetensors" --per-class 2 --steps 4 --out "$dir/sample.png"
test -s "$dir/sample.png"
echo "== train_ddp.py --init from a checkpoint kiln train writes now"
npx tsx src/cli/main.ts train --preset cpu --steps 2 --batch 4 --data-limit 64 --time-mean 0.4 --sample-every 0 --sample-steps 1 --grid-per-class 1 --out "$dir/kiln" >/dev/null
"$PY" python/train_ddp.py --init "$dir/kiln/checkpoint.safetensors" --steps 2 --batch 4 --warmup 1 --data-limit 64 --out "$dir/from-kiln"
# its time mean carries over (a flow model), and the checkpoint loads back in kiln
"$PY" - "$dir/from-kiln/checkpoint.safetensors" <<'PY'
import sys
sys.path.insert(0, 'python')
import kiln_torch as kt
_, meta = kt.load_checkpoint(sys.argv[1], kt.DIFFUSION_CHECKPOINT_FORMAT)
assert meta['train'].get('timeMean') == 0.4, meta['train']
print('train_ddp.py --init kept --time-mean', meta['train']['timeMean'])
PY
npx tsx src/cli/main.ts sample --checkpoint "$dir/from-kiln/checkpoint.safetensors" --per-class 1 --steps 1 --out "$dir/from-kiln.png" >/dev/null
test -s "$dir/from-kiln.png"
echo "test:torch passed"
