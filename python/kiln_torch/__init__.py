"""kiln's models in PyTorch, and kiln checkpoints read and written from Python.

    from kiln_torch import load_denoiser, save_diffusion_checkpoint
    model, meta = load_denoiser('out/mnist/checkpoint.safetensors')     # EMA weights, eval mode
    ...                                                                 # train it with PyTorch
    save_diffusion_checkpoint('trained.safetensors', model, train=meta['train'])   # kiln sample reads it
"""
from .checkpoint import (DIFFUSION_CHECKPOINT_FORMAT, VAE_CHECKPOINT_FORMAT, denoiser_kind, load_checkpoint,
                         load_denoiser, load_discriminator, load_vae, save_diffusion_checkpoint, save_vae_checkpoint)
from .models import (DIT_DEFAULTS, PATCH_DISCRIMINATOR_DEFAULTS, UNET_DEFAULTS, VAE_DEFAULTS, DiT, PatchDiscriminator,
                     UNet, VAE, build_denoiser, timestep_embedding)
from .safetensors import read_safetensors, write_safetensors

__all__ = [
    'DIFFUSION_CHECKPOINT_FORMAT', 'VAE_CHECKPOINT_FORMAT', 'denoiser_kind', 'load_checkpoint', 'load_denoiser',
    'load_discriminator', 'load_vae', 'save_diffusion_checkpoint', 'save_vae_checkpoint', 'DIT_DEFAULTS',
    'PATCH_DISCRIMINATOR_DEFAULTS', 'UNET_DEFAULTS', 'VAE_DEFAULTS', 'DiT', 'PatchDiscriminator', 'UNet', 'VAE',
    'build_denoiser', 'timestep_embedding', 'read_safetensors', 'write_safetensors',
]
