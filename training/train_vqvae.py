"""Stage 1: the choreographic memory (VQ-VAE) learns the dance poses of the training split.

    python -m training.train_vqvae --data data/dataset.npz --out runs/vqvae --minutes 8
    torchrun --nproc_per_node 2 -m training.train_vqvae ...   (several GPUs)

Resumes from ``<out>/train_state.pt`` when it exists; writes ``<out>/vqvae.safetensors``
(safetensors + JSON config) and ``<out>/log.jsonl``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from backend.motion_representation import ROOT_DIM
from bailando_blender.skeleton import LOWER_JOINTS, NUM_JOINTS, UPPER_JOINTS
from models.checkpoint import save_checkpoint
from models.kinematics import forward_kinematics, rotation_6d_to_matrix
from models.vqvae import MotionVQVAE, VQVAEConfig

from .common import Dataset, Logger, load_train_state, sample_windows, save_train_state, setup_distributed


@dataclass
class TrainConfig:
    window: int = 64  # frames per training window (2.1 s at 30 fps), a multiple of 4
    batch: int = 256  # windows per step, per GPU
    learning_rate: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 500
    commit_weight: float = 0.02  # Bailando / T2M-GPT's beta
    velocity_weight: float = 0.5  # on frame-to-frame change, against jitter
    position_weight: float = 2.0  # joint positions (m) through forward kinematics
    root_weight: float = 1.0
    save_every: int = 1000  # steps
    log_every: int = 100


def split_streams(upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """(B, T, 90), (B, T, 54+) -> (B, T, 24, 6) in SMPL joint order."""
    batch, frames = upper.shape[:2]
    six_d = upper.new_zeros(batch, frames, NUM_JOINTS, 6)
    six_d[:, :, list(UPPER_JOINTS)] = upper.reshape(batch, frames, len(UPPER_JOINTS), 6)
    six_d[:, :, list(LOWER_JOINTS)] = lower[..., : 6 * len(LOWER_JOINTS)].reshape(batch, frames, -1, 6)
    return six_d


def body_positions(six_d: torch.Tensor) -> torch.Tensor:
    """(B, T, 24, 6) -> (B, T, 24, 3) joint positions with the pelvis at the origin."""
    rotations = rotation_6d_to_matrix(six_d)
    return forward_kinematics(rotations, six_d.new_zeros(*six_d.shape[:2], 3))


def losses(model: torch.nn.Module, upper: torch.Tensor, lower: torch.Tensor, cfg: TrainConfig, vqvae: MotionVQVAE):
    out = model(upper, lower)
    rot_dim = vqvae.cfg.lower_dim
    root_target = (lower[..., rot_dim:] - vqvae.root_mean) / vqvae.root_std
    rec_upper, rec_lower = out["upper"], out["lower_rotations"]
    rotation = F.smooth_l1_loss(rec_upper, upper) + F.smooth_l1_loss(rec_lower, lower[..., :rot_dim])
    velocity = F.smooth_l1_loss(rec_upper.diff(dim=1), upper.diff(dim=1)) + F.smooth_l1_loss(
        rec_lower.diff(dim=1), lower[..., :rot_dim].diff(dim=1)
    )
    root = F.smooth_l1_loss(out["root_normalised"], root_target)
    positions = body_positions(split_streams(rec_upper, rec_lower)) - body_positions(split_streams(upper, lower))
    position = positions.norm(dim=-1).mean()
    total = (
        rotation
        + cfg.velocity_weight * velocity
        + cfg.root_weight * root
        + cfg.position_weight * position
        + cfg.commit_weight * out["commit_loss"]
    )
    return total, {
        "rotation": rotation.item(),
        "velocity": velocity.item(),
        "root": root.item(),
        "position_m": position.item(),
        "commit": out["commit_loss"].item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget of this run")
    parser.add_argument("--max-steps", type=int, default=100_000)
    args = parser.parse_args()
    cfg = TrainConfig()
    env = setup_distributed()
    torch.manual_seed(env.rank)
    rng = np.random.default_rng(1000 + env.rank)
    data = Dataset.load(args.data)
    train = data.indices(held_out=False)

    vqvae = MotionVQVAE(VQVAEConfig())
    root = np.concatenate([data.lower[i][:, -ROOT_DIM:] for i in train])
    vqvae.root_mean.copy_(torch.tensor(root.mean(0)))
    vqvae.root_std.copy_(torch.tensor(root.std(0) + 1e-6))
    vqvae.to(env.device)
    optimiser = torch.optim.AdamW(vqvae.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    state_path = args.out / "train_state.pt"
    args.out.mkdir(parents=True, exist_ok=True)
    step = load_train_state(state_path, vqvae, optimiser)
    model = env.wrap(vqvae)
    logger = Logger(args.out / "log.jsonl", env.main)
    deadline = time.monotonic() + args.minutes * 60
    vqvae.train()
    while env.keep_going(step < args.max_steps and time.monotonic() < deadline):
        upper, lower = (
            torch.from_numpy(a).to(env.device)
            for a in sample_windows(rng, [data.upper, data.lower], train, cfg.window, cfg.batch)
        )
        for group in optimiser.param_groups:
            group["lr"] = cfg.learning_rate * min(1.0, (step + 1) / cfg.warmup_steps)
        total, parts = losses(model, upper, lower, cfg, vqvae)
        optimiser.zero_grad(set_to_none=True)
        total.backward()
        optimiser.step()
        step += 1
        if step % cfg.log_every == 0:
            logger.log(
                step,
                loss=total.item(),
                **parts,
                usage_upper=vqvae.upper.quantiser.usage(),
                usage_lower=vqvae.lower.quantiser.usage(),
            )
        if env.main and step % cfg.save_every == 0:
            save_train_state(state_path, step, vqvae, optimiser)
    if env.main:
        save_train_state(state_path, step, vqvae, optimiser)
        save_checkpoint(
            args.out / "vqvae.safetensors", {"vqvae": vqvae}, {"vqvae": vqvae.cfg}, extra={"steps": str(step)}
        )
        vqvae.eval()
        held = data.indices(held_out=True)
        with torch.no_grad():
            upper, lower = (
                torch.from_numpy(a).to(env.device)
                for a in sample_windows(np.random.default_rng(0), [data.upper, data.lower], held, cfg.window, 256)
            )
            _, parts = losses(vqvae, upper, lower, cfg, vqvae)
        logger.log(step, **{f"held_out_{k}": v for k, v in parts.items()})
    env.finish()


if __name__ == "__main__":
    main()
