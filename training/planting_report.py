"""Foot planting settings measured on a generator's own dances (held-out Tang songs).

    python -m training.planting_report --dataset data/dataset.npz \
        [--model models/weights/generator.safetensors] [--seeds 0 1] [--stage-radius 1.5]

The generator dances each held-out song once per seed with planting off; then each setting
(passes, smoothing) of ``backend.pipeline.plant_feet`` is applied to that raw output, the stage
radius after it, as ``settle_root`` does, and the dances are scored as the quality report
scores them: BAS, jerk, foot skating, PFC, and FID_k (published and corrected kinetic
features), Div_k corrected and FID_g against the held-out captures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from backend import pipeline
from backend.generator import DanceGenerator
from backend.music_features import FPS
from backend.sampling import SamplingConfig
from bailando_blender.skeleton import quaternion_to_matrix

from . import dance_features, metrics
from .evaluate import features_as_music
from .quality_report import clips, load_captures, motion_from

# (passes, smoothing sigma in frames at 30 fps); (2, 1.0) is the product's setting.
SETTINGS = ((0, 1.0), (1, 2.0), (1, 1.0), (2, 1.0), (2, 2.0))


def planted_root(rotations: np.ndarray, root: np.ndarray, passes: int, sigma: float, radius_m: float) -> np.ndarray:
    for _ in range(passes):
        root = pipeline.plant_feet(rotations, root, sigma)
    return pipeline.keep_on_stage(root, FPS, radius_m)


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
    raw = []
    for k in held:
        music = features_as_music(captures.features[k])
        for seed in args.seeds:
            plant_passes = pipeline.PLANT_PASSES
            pipeline.PLANT_PASSES = 0  # the generator's own root path, neither planted nor held
            try:
                dance = pipeline.generate(music, generator, SamplingConfig(seed=seed), stage_radius_m=0.0)
            finally:
                pipeline.PLANT_PASSES = plant_passes
            raw.append((quaternion_to_matrix(dance.joint_rotations), dance.root_translation, music.beat_times))
    print("| planting passes, σ (frames) | BAS | jerk | skating | PFC | FID_k | FID_k fixed | Div_k fixed | FID_g |")
    print("|---|---|---|---|---|---|---|---|---|")
    for passes, sigma in SETTINGS:
        motions, rows = [], []
        for rotations, root, beat_times in raw:
            motion = motion_from(rotations, planted_root(rotations, root, passes, sigma, args.stage_radius))
            motions.append(motion)
            rows.append(metrics.summary(motion.positions, FPS, beat_times))
        pieces = clips(motions)
        published = dance_features.distribution_scores(real, pieces, FPS)
        fixed = dance_features.distribution_scores(real, pieces, FPS, published_quirk=False)

        def mean(key: str, rows: list[dict[str, float]] = rows) -> float:
            return float(np.mean([row[key] for row in rows]))

        label = "none" if passes == 0 else f"{passes}, σ {sigma:g}"
        print(
            f"| {label} | {mean('bas'):.3f} | {mean('jerk_m_s3'):.0f} | {mean('foot_skating_m_s'):.2f} | "
            f"{mean('pfc'):.2f} | {published['fid_k']:.1f} | {fixed['fid_k']:.1f} | {fixed['div_k']:.2f} | "
            f"{published['fid_g']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
