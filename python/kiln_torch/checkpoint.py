"""kiln checkpoints from Python: read them into the PyTorch models, and write PyTorch weights back in kiln's format.

A kiln checkpoint is one safetensors file. Its tensors are grouped by name prefix and its metadata key
`kiln` holds JSON with a `format` tag and the rest:
- diffusion (`kiln train`, format kiln-diffusion-checkpoint/1): `model.*` the trained weights (parameters and
  buffers, e.g. a DiT's fixed `pos_embed`), `ema.*` their exponential moving average (parameters only),
  `optim.*` AdamW's moments, and for latent models `vae.*`; metadata `model` = {kind: 'unet' | 'dit', config},
  `train` (objective, steps, lr, …), `step`, `losses`, `latent` (VAE config, scale, shift) for latent models;
- VAE (`kiln train-vae`, format kiln-vae-checkpoint/1): `vae.*`, `disc.*` (the PatchGAN, when one was trained),
  `optim.*`, `optim_disc.*`; metadata `vae`, `discriminator` (configs), `train`, `step`, `history`.
"""
import json

import torch

from .models import VAE, PatchDiscriminator, UNet, DiT, build_denoiser
from .safetensors import read_safetensors, to_safetensors_bytes, write_safetensors

DIFFUSION_CHECKPOINT_FORMAT = 'kiln-diffusion-checkpoint/1'
VAE_CHECKPOINT_FORMAT = 'kiln-vae-checkpoint/1'


def _strip(tensors, prefix):
    return {n[len(prefix):]: t for n, t in tensors.items() if n.startswith(prefix)}


def load_checkpoint(src, format=None):
    """(tensors, meta) of a kiln checkpoint (a path or bytes); `format` checks the metadata's format tag."""
    tensors, metadata = read_safetensors(src)
    name = src if isinstance(src, str) else 'checkpoint'
    if not metadata.get('kiln'):
        raise ValueError(f"{name} is not a kiln checkpoint (no 'kiln' metadata)")
    meta = json.loads(metadata['kiln'])
    if not isinstance(meta, dict):
        raise ValueError(f"{name}: its 'kiln' metadata is not a JSON object")
    if format is not None and meta.get('format') != format:
        raise ValueError(f"{name}: expected a checkpoint of format {format}, got format {meta.get('format')!r}")
    return tensors, meta


def _load(module, state, name):
    own = module.state_dict()
    state = {n: t.to(own[n].dtype) if n in own else t for n, t in state.items()}
    missing, unexpected = set(own) - set(state), set(state) - set(own)
    if missing or unexpected:
        raise ValueError(f'{name}: keys do not match; missing: {sorted(missing)}; unexpected: {sorted(unexpected)}')
    module.load_state_dict(state, strict=True)
    return module


def load_denoiser(src, ema=True):
    """The UNet or DiT of a diffusion checkpoint with its EMA weights (raw weights when `ema` is False), in eval mode, and the metadata.

    The EMA holds parameters only: buffers (a DiT's sinusoidal `pos_embed`) come from `model.*`, or from the
    model's own construction when the checkpoint holds only the EMA.
    """
    tensors, meta = load_checkpoint(src, DIFFUSION_CHECKPOINT_FORMAT)
    spec = meta.get('model')
    if not spec:
        raise ValueError(f"{src if isinstance(src, str) else 'checkpoint'}: the checkpoint's metadata names no model")
    model = build_denoiser(spec['kind'], spec['config'])
    raw = _strip(tensors, 'model.')
    if ema:
        avg = _strip(tensors, 'ema.')
        if not avg:
            raise ValueError(f'{src}: the checkpoint holds no EMA weights (ema.*); load it with ema=False')
        buffers = dict(model.named_buffers())
        state = {**{n: raw.get(n, b) for n, b in buffers.items()}, **avg}
    else:
        if not raw:
            raise ValueError(f'{src}: the checkpoint holds no raw weights (model.*), only its EMA; load it with ema=True')
        state = raw
    _load(model, state, f"{src} ({'ema' if ema else 'model'})")
    return model.eval(), meta


def load_vae(src):
    """The VAE of a VAE checkpoint, or the frozen VAE of a latent diffusion checkpoint (eval mode), and the metadata."""
    tensors, meta = load_checkpoint(src)
    if meta.get('format') == VAE_CHECKPOINT_FORMAT:
        config = meta['vae']
    elif meta.get('format') == DIFFUSION_CHECKPOINT_FORMAT and meta.get('latent'):
        config = meta['latent']['vae']
    else:
        raise ValueError(f"{src}: neither a VAE checkpoint nor a latent diffusion checkpoint (format {meta.get('format')!r})")
    return _load(VAE(config), _strip(tensors, 'vae.'), f'{src} (vae)').eval(), meta


def load_discriminator(src):
    """The PatchGAN discriminator of a VAE checkpoint (its `disc.*` tensors), and the metadata."""
    tensors, meta = load_checkpoint(src, VAE_CHECKPOINT_FORMAT)
    if not meta.get('discriminator'):
        raise ValueError(f'{src}: the checkpoint holds no discriminator')
    return _load(PatchDiscriminator(meta['discriminator']), _strip(tensors, 'disc.'), f'{src} (disc)').eval(), meta


def denoiser_kind(model):
    """'unet' or 'dit' (a DistributedDataParallel or other `.module` wrapper is unwrapped)."""
    model = getattr(model, 'module', model)
    if isinstance(model, UNet):
        return 'unet'
    if isinstance(model, DiT):
        return 'dit'
    raise TypeError(f'not a kiln_torch UNet or DiT: {type(model).__name__}')


def _f32(state):
    out = {}
    for n, t in state.items():
        t = t.detach().cpu()
        if not torch.isfinite(t).all():
            raise ValueError(f"tensor '{n}' holds NaN or ±inf: not writing a checkpoint kiln would refuse to train on")
        out[n] = t.float().contiguous()
    return out


def _params(ema):
    if ema is None:
        return None
    if isinstance(ema, torch.nn.Module):
        return dict(getattr(ema, 'module', ema).named_parameters())
    return dict(ema)


def _dump(meta):
    return json.dumps(meta, separators=(',', ':'), allow_nan=False)


def save_diffusion_checkpoint(path, model, ema=None, train=None, step=0, losses=None, latent=None, vae=None, extra=None):
    """Writes a kiln diffusion checkpoint of a PyTorch UNet/DiT that `kiln sample`, `kiln eval` and
    `k.diffusion.loadDenoiser` read: the weights under `model.`, the EMA (a module of the same structure or a
    dict of its parameters; the weights themselves when None) under `ema.`, and metadata `model` (kind and full
    config), `train` (kiln's TrainConfig: at least `objective`), `step`, `losses`. For a latent model pass
    `latent` ({vae: config, scale, shift}) and the VAE module. Returns the bytes when `path` is None.
    It holds no optimizer state: kiln samples and evaluates it, and can train from its weights, but
    `kiln train --resume` needs a checkpoint kiln wrote."""
    m = getattr(model, 'module', model)
    kind = denoiser_kind(m)
    train = {'objective': 'flow', **(train or {})}
    tensors = {f'model.{n}': t for n, t in _f32(m.state_dict()).items()}
    params = _params(ema) or dict(m.named_parameters())
    names = {n for n, _ in m.named_parameters()}
    if set(params) != names:
        raise ValueError(f'EMA parameters do not match the model: missing {sorted(names - set(params))}, unexpected {sorted(set(params) - names)}')
    tensors.update({f'ema.{n}': t for n, t in _f32(params).items()})
    meta = {'format': DIFFUSION_CHECKPOINT_FORMAT, 'step': int(step), 'train': train, 'losses': list(losses or []),
            'model': {'kind': kind, 'config': m.config}}
    if latent is not None:
        if vae is None:
            raise ValueError('a latent checkpoint needs the VAE (its weights go under vae.)')
        meta['latent'] = latent
        tensors.update({f'vae.{n}': t for n, t in _f32(getattr(vae, 'module', vae).state_dict()).items()})
    meta.update(extra or {})
    md = {'kiln': _dump(meta)}
    if path is None:
        return to_safetensors_bytes(tensors, md)
    write_safetensors(path, tensors, md)


def save_vae_checkpoint(path, vae, discriminator=None, train=None, step=0, history=None, extra=None):
    """Writes a kiln VAE checkpoint (what `kiln train-vae` writes, without optimizer state) that
    `k.nn.loadVAE` and `kiln train --latent` read: `vae.*`, `disc.*` and metadata `vae`, `discriminator`."""
    v = getattr(vae, 'module', vae)
    tensors = {f'vae.{n}': t for n, t in _f32(v.state_dict()).items()}
    d = getattr(discriminator, 'module', discriminator)
    if d is not None:
        tensors.update({f'disc.{n}': t for n, t in _f32(d.state_dict()).items()})
    meta = {'format': VAE_CHECKPOINT_FORMAT, 'step': int(step), 'vae': v.config,
            'discriminator': d.config if d is not None else None, 'train': train or {}, 'history': list(history or [])}
    meta.update(extra or {})
    md = {'kiln': _dump(meta)}
    if path is None:
        return to_safetensors_bytes(tensors, md)
    write_safetensors(path, tensors, md)
