"""What FID and diversity real dances get against the held-out captures: the floor under any generator.

    python -m training.reference_scores --dataset data/dataset.npz --generator models/weights/generator.safetensors

The quality report's FID_k, FID_g and Div (``training/dance_features.py``) compare 10-s clips
with the held-out captures. This prints the same scores for real motion on its way through
our pipeline, so that a generator's numbers can be read against what is reachable at all:

- **training captures** (the other songs): real ballroom, other dancers and songs;
- **held-out captures, through the VQ-VAE**: each capture encoded to tokens and decoded, the
  best any generator that speaks in this VQ-VAE's tokens could do;
- each of those **as generation leaves a dance**: feet planted and, with a stage radius,
  the slow part of the root's path held near its start (``backend.pipeline.settle_root``);
- **mirrored left-right**, as the training data's mirrored copies are: the same dances with
  the other handedness, which the held-out captures (all one way) never show.

Needs torch (the VQ-VAE's encoder is not among the shipped ONNX graphs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from backend.motion_representation import decode_motion
from backend.music_features import FPS
from backend.pipeline import STAGE_RADIUS_M, settle_root
from models.checkpoint import read_checkpoint, restore_network
from models.vqvae import MotionVQVAE, VQVAEConfig

from . import dance_features
from .quality_report import Motion, clips, load_captures, mirrored_motion, motion_from


@torch.inference_mode()
def through_vqvae(vqvae: MotionVQVAE, upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Motion vectors -> tokens -> motion vectors (the length cut to whole tokens)."""
    usable = len(upper) // vqvae.cfg.frames_per_token * vqvae.cfg.frames_per_token
    upper_tokens, lower_tokens = vqvae.encode(
        *(torch.from_numpy(stream[:usable].astype(np.float32))[None] for stream in (upper, lower))
    )
    decoded_upper, decoded_lower = vqvae.decode(upper_tokens, lower_tokens)
    return decoded_upper[0].numpy(), decoded_lower[0].numpy()


def settled(streams: tuple[np.ndarray, np.ndarray], stage_radius_m: float) -> Motion:
    rotations, translation = decode_motion(*streams)
    return motion_from(rotations, settle_root(rotations, translation, stage_radius_m))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="prepare_data fit output (captures)")
    parser.add_argument("--generator", type=Path, required=True, help="checkpoint with the VQ-VAE to use")
    parser.add_argument("--stage-radius", type=float, default=STAGE_RADIUS_M, help="metres (the pipeline's default)")
    args = parser.parse_args()

    configs, tensors, _ = read_checkpoint(args.generator)
    vqvae = restore_network(configs, tensors, "vqvae", VQVAEConfig, MotionVQVAE, str(args.generator)).eval()
    captures = load_captures(args.dataset)
    held = [streams for streams, held_out in zip(captures.streams, captures.held_out, strict=True) if held_out]
    trained = [streams for streams, held_out in zip(captures.streams, captures.held_out, strict=True) if not held_out]
    real = clips([motion for motion, held_out in zip(captures.motions, captures.held_out, strict=True) if held_out])
    coded = [through_vqvae(vqvae, *streams) for streams in held]
    radius = args.stage_radius
    rows = {
        "training captures (other songs)": [
            motion for motion, held_out in zip(captures.motions, captures.held_out, strict=True) if not held_out
        ],
        "held-out captures, feet planted": [settled(streams, 0.0) for streams in held],
        f"held-out captures, feet planted, stage radius {radius:g} m": [settled(streams, radius) for streams in held],
        "held-out captures through the VQ-VAE": [motion_from(*decode_motion(*streams)) for streams in coded],
        "through the VQ-VAE, feet planted": [settled(streams, 0.0) for streams in coded],
        f"through the VQ-VAE, feet planted, stage radius {radius:g} m": [settled(streams, radius) for streams in coded],
        "held-out captures, mirrored": [mirrored_motion(streams) for streams in held],
        "training captures, mirrored": [mirrored_motion(streams) for streams in trained],
    }
    print(f"against {len(real)} clips of {len(held)} held-out captures\n")
    print("| reference | clips | FID_k | FID_g | Div_k | Div_g | FID_k fixed | Div_k fixed |")
    print("|---|---|---|---|---|---|---|---|")
    for name, motions in rows.items():
        pieces = clips(motions)
        scores = dance_features.distribution_scores(real, pieces, FPS)
        print(
            f"| {name} | {len(pieces)} | {scores['fid_k']:.1f} | {scores['fid_g']:.1f} | "
            f"{scores['div_k']:.2f} | {scores['div_g']:.2f} | "
            f"{scores['fid_k_fixed']:.1f} | {scores['div_k_fixed']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
