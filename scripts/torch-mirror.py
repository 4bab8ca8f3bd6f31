#!/usr/bin/env python3
"""Fixtures that compare kiln's UNet, DiT, VAE and PatchDiscriminator with their PyTorch mirror (python/kiln_torch).

Regenerate: `apt-get install python3-torch` (Debian's PyTorch 1.13), then from the repository root run
`/usr/bin/python3 scripts/torch-mirror.py` (`--check` recomputes everything and compares with the committed
files instead of writing). tests/node/torch-mirror.test.ts compares kiln against them in `npm test`, without Python.

Both directions of weight transfer, in tests/fixtures/torch-mirror/:
  ckpt-kiln-*.safetensors   checkpoints written by kiln's trainers (scripts/torch-mirror-kiln.ts): PyTorch reads
                            them with kiln_torch.load_denoiser / load_vae / load_discriminator (strict);
  ckpt-torch-*.safetensors  checkpoints written here by kiln_torch.save_diffusion_checkpoint / save_vae_checkpoint
                            from PyTorch models whose every parameter is drawn at random (also the ones kiln
                            zero-initializes), with EMA weights that differ from the raw ones;
  train-steps.safetensors   three updates of python/train_ddp.py's train_step on a fixed batch from ckpt-torch-dit's
                            raw weights (lr, warmup, steps, weightDecay, clip, emaDecay in the metadata key `train`):
                            the inputs, `losses`, and every parameter and its EMA after them (after.model.*, after.ema.*),
                            and BOOL masks (zero_grad.*) of the elements whose gradient is zero in exact arithmetic;
  schedules.safetensors     train_ddp.py's learning rate at each step of the cpu preset's run (lr) and its ᾱ of the
                            cosine discrete VP process (alphas_cumprod);
  case-*.safetensors        one forward each: seeded float32 inputs (input.x, input.t, input.labels as I64 with
                            the null class among them, or input.z), and PyTorch's output computed in float64 from
                            the checkpoint's weights (output, or output.mean and output.logvar for VAE encode);
                            `__metadata__`: case, checkpoint, weights ('ema' | 'model' | 'vae' | 'disc'),
                            op ('denoise' | 'encode' | 'decode' | 'discriminate'), torch.
"""
import json
import math
import os
import sys
import zlib

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
sys.path.insert(0, os.path.join(ROOT, 'python'))  # kiln_torch and train_ddp

import kiln_torch as kt  # noqa: E402
from kiln_torch.safetensors import read_safetensors, to_safetensors_bytes  # noqa: E402

OUT = os.path.join(ROOT, 'tests', 'fixtures', 'torch-mirror')
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


def gen(name):
    return torch.Generator().manual_seed(zlib.crc32(name.encode('utf-8')))


def randomize(module, name):
    """Every parameter drawn from a generator seeded by `name` (norm weights near 1, biases and scalars small)."""
    g = gen(name)
    with torch.no_grad():
        for mod in module.modules():
            for pname, p in mod.named_parameters(recurse=False):
                if isinstance(mod, (torch.nn.GroupNorm, torch.nn.LayerNorm)) and pname == 'weight':
                    p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
                elif p.dim() <= 1:
                    p.copy_(0.3 * torch.randn(p.shape, generator=g))
                elif isinstance(mod, torch.nn.Embedding):
                    p.copy_(torch.randn(p.shape, generator=g))
                else:
                    fan_in = p.numel() // p.shape[0]
                    p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * (1.5 / math.sqrt(fan_in)))
    return module


UNET = dict(channels=1, size=8, widths=[2, 4], depth=1, attention=[1], midAttention=True, heads=2, numClasses=2, patch=2, groups=2)
DIT = dict(channels=1, size=8, patch=2, dim=8, depth=2, heads=2, mlpRatio=2, numClasses=2, positions='learned')
VAE = dict(channels=1, size=16, patch=2, widths=[2, 4], depth=1, latentChannels=2, groups=2, learnLogvar=True, logvarInit=0)
DISC = dict(channels=1, width=4, layers=2, norm='none', groups=2)


def torch_checkpoints():
    """The PyTorch-written checkpoints: name → bytes."""
    out = {}
    for kind, cls, cfg in (('unet', kt.UNet, UNET), ('dit', kt.DiT, DIT)):
        model = randomize(cls(cfg), f'torch-{kind}')
        ema = randomize(cls(cfg), f'torch-{kind}-ema')
        train = {'objective': 'flow', 'steps': 0, 'batchSize': 4, 'lr': 0.002, 'warmup': 0, 'weightDecay': 0, 'clip': 1,
                 'emaDecay': 0.995, 'labelDropout': 0.1, 'seed': 0}
        out[f'ckpt-torch-{kind}.safetensors'] = kt.save_diffusion_checkpoint(None, model, ema=ema, train=train)
    vae = randomize(kt.VAE(VAE), 'torch-vae')
    disc = randomize(kt.PatchDiscriminator(DISC), 'torch-disc')
    out['ckpt-torch-vae.safetensors'] = kt.save_vae_checkpoint(None, vae, discriminator=disc)
    return out


def cases():
    """(case name, checkpoint, weights, op)."""
    out = []
    for src in ('kiln', 'torch'):
        for kind in ('unet', 'dit'):
            for weights in ('ema', 'model'):
                out.append((f'{src}-{kind}-{weights}', f'ckpt-{src}-{kind}.safetensors', weights, 'denoise'))
        out.append((f'{src}-vae-encode', f'ckpt-{src}-vae.safetensors', 'vae', 'encode'))
        out.append((f'{src}-vae-decode', f'ckpt-{src}-vae.safetensors', 'vae', 'decode'))
        out.append((f'{src}-disc', f'ckpt-{src}-vae.safetensors', 'disc', 'discriminate'))
    return out


def run_case(name, ckpt, weights, op, files):
    g = gen(name)
    src = files[ckpt]
    tensors = {}
    if op == 'denoise':
        model, meta = kt.load_denoiser(src, ema=weights == 'ema')
        c = model.config
        n = 3
        x = torch.randn(n, c['channels'], c['size'], c['size'], generator=g)
        t = torch.rand(n, generator=g)
        labels = torch.tensor([0, c['numClasses'], 1], dtype=torch.int64)  # the null class in the middle
        y = model.double()(x.double(), t.double(), labels)
        tensors.update({'input.x': x, 'input.t': t, 'input.labels': labels, 'output': y})
    elif op in ('encode', 'decode'):
        vae, _ = kt.load_vae(src)
        vae = vae.double()
        c = vae.config
        if op == 'encode':
            x = torch.rand(2, c['channels'], c['size'], c['size'], generator=g) * 2 - 1
            mean, logvar = vae.encode(x.double())
            tensors.update({'input.x': x, 'output.mean': mean, 'output.logvar': logvar})
        else:
            z = torch.randn(2, *vae.latent_shape, generator=g)
            tensors.update({'input.z': z, 'output': vae.decode(z.double())})
    else:
        disc, _ = kt.load_discriminator(src)
        c = disc.config
        x = torch.rand(2, c['channels'], 16, 16, generator=g) * 2 - 1
        tensors.update({'input.x': x, 'output': disc.double()(x.double())})
    tensors = {k: v.detach().float() if v.is_floating_point() else v for k, v in tensors.items()}
    for k, v in tensors.items():
        if k.startswith('output'):
            assert v.abs().max() > 0, f'{name}: {k} is all zeros'
    meta = dict(case=name, checkpoint=ckpt, weights=weights, op=op, torch=torch.__version__)
    return tensors, meta


TRAIN = dict(lr=0.01, warmup=2, steps=4, weightDecay=0.01, clip=0.5, emaDecay=0.9)


def train_steps(files):
    """Three updates of python/train_ddp.py's train_step (kiln's AdamW, warmup-cosine rate, clipping, EMA) on a fixed
    batch from ckpt-torch-dit's raw weights, in float64: the weights and their EMA after them."""
    import train_ddp
    model, _ = kt.load_denoiser(files['ckpt-torch-dit.safetensors'], ema=False)
    model = model.double().train()
    g = gen('train-steps')
    c = model.config
    x = torch.randn(4, c['channels'], c['size'], c['size'], generator=g)
    t = torch.rand(4, generator=g)
    labels = torch.tensor([0, 1, c['numClasses'], 1], dtype=torch.int64)
    target = torch.randn(x.shape, generator=g)
    o = TRAIN
    # elements whose gradient is zero in exact arithmetic (a bias a GroupNorm over one channel removes again, attention's
    # key bias): Adam's normalized update turns their rounding noise into steps of about lr in an arbitrary direction
    model.zero_grad()
    torch.nn.functional.mse_loss(model(x.double(), t.double(), labels), target.double()).backward()
    top = max(p.grad.abs().max().item() for p in model.parameters())
    noise = {n: p.grad.abs() <= 1e-9 * top for n, p in model.named_parameters() if (p.grad.abs() <= 1e-9 * top).any()}
    model.zero_grad()
    opt = train_ddp.make_optimizer(model, o['lr'], o['weightDecay'])
    ema = {n: p.detach().clone() for n, p in model.named_parameters()}
    norms, losses = [], []
    for step in range(3):
        def loss_fn():
            return torch.nn.functional.mse_loss(model(x.double(), t.double(), labels), target.double())
        loss = train_ddp.train_step(model, opt, ema, loss_fn, step, o['lr'], o['warmup'], o['steps'], o['clip'], o['emaDecay'])
        losses.append(loss.item())
    tensors = {'input.x': x, 'input.t': t, 'input.labels': labels, 'input.target': target, 'losses': torch.tensor(losses)}
    tensors.update({f'after.model.{n}': p.detach() for n, p in model.named_parameters()})
    tensors.update({f'after.ema.{n}': v for n, v in ema.items()})
    tensors.update({f'zero_grad.{n}': m for n, m in noise.items()})
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    meta = dict(case='train-steps', checkpoint='ckpt-torch-dit.safetensors', weights='model', op='train', steps='3', train=json.dumps(o), torch=torch.__version__)
    return tensors, meta


def schedules():
    """train_ddp.py's learning rate at every step of the cpu preset's run, and its ᾱ of the cosine VP process (ε and v objectives)."""
    import train_ddp
    a = train_ddp.parse_args([])
    lr = torch.tensor([train_ddp.lr_at(i, a.lr, a.warmup, a.steps) for i in range(a.steps)], dtype=torch.float64)
    ac = train_ddp.cosine_alphas_cumprod()
    meta = dict(case='schedules', op='schedule', lr=json.dumps(a.lr), warmup=str(a.warmup), steps=str(a.steps), torch=torch.__version__)
    return {'lr': lr.float(), 'alphas_cumprod': ac.float()}, meta


def main():
    check = '--check' in sys.argv[1:]
    os.makedirs(OUT, exist_ok=True)
    files = {}
    for f in sorted(os.listdir(OUT)):
        if f.startswith('ckpt-kiln-'):
            with open(os.path.join(OUT, f), 'rb') as fh:
                files[f] = fh.read()
    missing = [f'ckpt-kiln-{k}.safetensors' for k in ('unet', 'dit', 'vae') if f'ckpt-kiln-{k}.safetensors' not in files]
    if missing:
        sys.exit(f'missing {missing}: run `npx tsx scripts/torch-mirror-kiln.ts` first')
    written = torch_checkpoints()
    files.update(written)
    outputs = {f'case-{name}.safetensors': run_case(name, ckpt, w, op, files) for name, ckpt, w, op in cases()}
    outputs['train-steps.safetensors'] = train_steps(files)
    outputs['schedules.safetensors'] = schedules()
    if check:
        worst = 0.0
        for f, data in written.items():
            with open(os.path.join(OUT, f), 'rb') as fh:
                old = read_safetensors(fh.read())[0]
            new = read_safetensors(data)[0]
            assert old.keys() == new.keys(), f'{f}: tensor names differ'
            for k in new:
                assert torch.equal(old[k], new[k]), f'{f}: {k} differs'
        for f, (tensors, _) in outputs.items():
            old = read_safetensors(os.path.join(OUT, f))[0]
            assert old.keys() == tensors.keys(), f'{f}: tensor names differ'
            for k, v in tensors.items():
                if v.is_floating_point():
                    err = ((old[k] - v).abs().max() / v.abs().max()).item()
                    worst = max(worst, err)
                    assert err <= 1e-6, f'{f}: {k} differs by {err:.2e} of its max'
                else:
                    assert torch.equal(old[k], v), f'{f}: {k} differs'
        print(f'{len(written)} checkpoints and {len(outputs)} cases agree with {os.path.relpath(OUT)} (largest difference {worst:.1e} of max)')
        return
    for f, data in written.items():
        with open(os.path.join(OUT, f), 'wb') as fh:
            fh.write(data)
    for f, (tensors, meta) in outputs.items():
        with open(os.path.join(OUT, f), 'wb') as fh:
            fh.write(to_safetensors_bytes(tensors, meta))
    keep = set(written) | set(outputs) | {f for f in files if f.startswith('ckpt-kiln-')}
    for f in os.listdir(OUT):
        if f.endswith('.safetensors') and f not in keep:
            os.remove(os.path.join(OUT, f))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f'{len(written)} checkpoints, {len(outputs)} cases, {total} bytes in {os.path.relpath(OUT)}')


if __name__ == '__main__':
    main()
