"""Combine the trained VQ-VAE and GPT into the shipped generator checkpoint (fp16).

    python -m training.export --vqvae runs/vqvae/vqvae.safetensors --gpt runs/gpt/gpt.safetensors \
        --out models/weights/generator.safetensors

``--base-gpt GPT --critic-share A`` writes the weights (1 - A) * GPT + A * the finetuned
``--gpt`` instead: a point on the straight line between the GPT before the critic stage and
after it (WiSE-FT, Wortsman et al. 2022), which trades the critic's gain for the GPT's
behaviour in one network (the model card gives what it measured).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from models.checkpoint import CheckpointError, read_checkpoint, restore_network, save_checkpoint
from models.gpt import GPTConfig, MotionGPT
from models.vqvae import MotionVQVAE, VQVAEConfig


def interpolate(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], share: float) -> dict[str, torch.Tensor]:
    """(1 - share) * base + share * tuned for every floating-point tensor; others from ``tuned``."""
    if base.keys() != tuned.keys() or any(base[k].shape != tuned[k].shape for k in tuned):
        raise CheckpointError("the two GPTs differ in shape: the critic stage must start from --base-gpt")
    return {
        key: torch.lerp(base[key], value, share) if value.is_floating_point() else value for key, value in tuned.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vqvae", type=Path, required=True)
    parser.add_argument("--gpt", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base-gpt", type=Path, default=None, help="the GPT before the critic stage")
    parser.add_argument("--critic-share", type=float, default=1.0, help="with --base-gpt: 0 its weights, 1 --gpt's")
    args = parser.parse_args()
    if not 0.0 <= args.critic_share <= 1.0:
        parser.error(f"--critic-share: {args.critic_share} is not between 0 and 1")
    try:
        write_generator(args)
    except CheckpointError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


def write_generator(args: argparse.Namespace) -> None:
    networks, configs, extra = {}, {}, {}
    for name, path, config_type, network_type in (
        ("vqvae", args.vqvae, VQVAEConfig, MotionVQVAE),
        ("gpt", args.gpt, GPTConfig, MotionGPT),
    ):
        stored_configs, tensors, metadata = read_checkpoint(path)
        if name == "gpt" and args.base_gpt is not None:
            _, base_tensors, base_metadata = read_checkpoint(args.base_gpt)
            if "gpt" not in base_tensors or "gpt" not in tensors:
                raise CheckpointError(f"{args.base_gpt} or {path}: has no network 'gpt'")
            tensors = {"gpt": interpolate(base_tensors["gpt"], tensors["gpt"], args.critic_share)}
            # The base GPT's training record (steps, held-out loss) with the critic stage's.
            metadata = {**base_metadata, **metadata, "critic_share": f"{args.critic_share:g}"}
        networks[name] = restore_network(stored_configs, tensors, name, config_type, network_type, str(path))
        configs[name] = networks[name].cfg
        extra.update({f"{name}_{key}": value for key, value in metadata.items() if key not in ("format", "configs")})
    save_checkpoint(args.out, networks, configs, dtype=torch.float16, extra=extra)


if __name__ == "__main__":
    main()
