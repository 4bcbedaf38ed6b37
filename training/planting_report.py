"""Foot planting settings measured on a generator's own dances (held-out Tang songs).

    python -m training.planting_report --dataset data/dataset.npz \
        [--model models/weights/generator.safetensors] [--seeds 0 1] [--stage-radius 3]

The generator dances each held-out song once per seed, its root neither planted nor held on
stage; then each setting (passes, smoothing) of ``backend.pipeline.settle_root`` (foot
planting, then the stage radius) is applied to that raw output, and the dances are scored as
the quality report scores them: BAS, jerk, foot skating, PFC, FID_k (published and corrected
kinetic features), Div_k corrected and FID_g against the held-out captures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from backend import pipeline
from backend.generator import DanceGenerator
from backend.motion_representation import decode_motion
from backend.music_features import FPS
from backend.sampling import SamplingConfig

from . import dance_features, metrics
from .evaluate import features_as_music
from .quality_report import clips, load_captures, motion_from

# (passes, smoothing sigma in frames at 30 fps); (2, 1.0) is the product's setting.
SETTINGS = ((0, 1.0), (1, 2.0), (1, 1.0), (2, 1.0), (2, 2.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="prepare_data fit output (captures)")
    parser.add_argument("--model", type=Path, default=None, help="generator checkpoint (default: the shipped one)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--stage-radius", type=float, default=pipeline.STAGE_RADIUS_M)
    args = parser.parse_args()

    captures = load_captures(args.dataset)
    held = [k for k, held_out in enumerate(captures.held_out) if held_out]
    real = clips([captures.motions[k] for k in held])
    generator = DanceGenerator.load(args.model, "cpu")
    raw = []  # the generator's own motion, its root neither planted nor held on stage
    for k in held:
        music = features_as_music(captures.features[k])
        for seed in args.seeds:
            upper, lower = generator.decode(*generator.tokens(music.features, SamplingConfig(seed=seed)))
            rotations, root = decode_motion(upper[: music.num_frames], lower[: music.num_frames])
            raw.append((rotations, root, music.beat_times))
    print("| planting passes, σ (frames) | BAS | jerk | skating | PFC | FID_k | FID_k fixed | Div_k fixed | FID_g |")
    print("|---|---|---|---|---|---|---|---|---|")
    for passes, sigma in SETTINGS:
        motions, rows = [], []
        for rotations, root, beat_times in raw:
            motion = motion_from(rotations, pipeline.settle_root(rotations, root, args.stage_radius, passes, sigma))
            motions.append(motion)
            rows.append(metrics.summary(motion.positions, FPS, beat_times))
        pieces = clips(motions)
        scores = dance_features.distribution_scores(real, pieces, FPS)

        def mean(key: str, rows: list[dict[str, float]] = rows) -> float:
            return float(np.mean([row[key] for row in rows]))

        label = "none" if passes == 0 else f"{passes}, σ {sigma:g}"
        print(
            f"| {label} | {mean('bas'):.3f} | {mean('jerk_m_s3'):.0f} | {mean('foot_skating_m_s'):.2f} | "
            f"{mean('pfc'):.2f} | {scores['fid_k']:.1f} | {scores['fid_k_fixed']:.1f} | {scores['div_k_fixed']:.2f} | "
            f"{scores['fid_g']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
