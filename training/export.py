"""Combine the trained VQ-VAE and GPT into the shipped generator checkpoint (fp16).

    python -m training.export --vqvae runs/vqvae/vqvae.safetensors --gpt runs/gpt/gpt.safetensors \
        --out models/weights/generator.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from models.checkpoint import read_checkpoint, restore_network, save_checkpoint
from models.gpt import GPTConfig, MotionGPT
from models.vqvae import MotionVQVAE, VQVAEConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vqvae", type=Path, required=True)
    parser.add_argument("--gpt", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    networks, configs, extra = {}, {}, {}
    for name, path, config_type, network_type in (
        ("vqvae", args.vqvae, VQVAEConfig, MotionVQVAE),
        ("gpt", args.gpt, GPTConfig, MotionGPT),
    ):
        stored_configs, tensors, metadata = read_checkpoint(path)
        networks[name] = restore_network(stored_configs, tensors, name, config_type, network_type, str(path))
        configs[name] = networks[name].cfg
        extra.update({f"{name}_{key}": value for key, value in metadata.items() if key not in ("format", "configs")})
    save_checkpoint(args.out, networks, configs, dtype=torch.float16, extra=extra)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
