"""Feet on the floor, measured: generated dances with and without ``backend.floor_contact``.

    .venv/bin/python scripts/floor_report.py SONG ... [--seeds 0 1 2 3] [--seconds 60]

For each song (its first ``--seconds``) and seed, the default dance as the pipeline makes it, and
the same dance with the floor contact step left out: the deepest any joint goes under the floor,
the share of frames with a joint more than 1 cm under it, mean jerk and foot skating
(``training.metrics``), and the largest horizontal move of a planted foot the step caused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backend import pipeline  # noqa: E402
from backend.generator import DanceGenerator  # noqa: E402
from backend.music_features import song_features  # noqa: E402
from backend.sampling import SamplingConfig  # noqa: E402
from bailando_blender.skeleton import FOOT_JOINTS, forward_kinematics, quaternion_to_matrix  # noqa: E402
from training.metrics import foot_skating, mean_jerk  # noqa: E402

TOLERANCE_M = 0.01


def positions_of(dance: pipeline.Dance) -> np.ndarray:
    return forward_kinematics(quaternion_to_matrix(dance.joint_rotations), dance.root_translation)[0]


def row(positions: np.ndarray, fps: float) -> dict[str, float]:
    lowest = positions[..., 1].min(axis=1)
    return {
        "max_under_cm": float(max(0.0, -lowest.min()) * 100),
        "frames_over_1cm_pct": float(np.mean(lowest < -TOLERANCE_M) * 100),
        "jerk": mean_jerk(positions, fps),
        "skating": foot_skating(positions, fps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("songs", type=Path, nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    generator = DanceGenerator.load(None, "cpu")
    print(
        "| song | seed | max under floor cm (before → after) | frames > 1 cm under % | jerk m/s³ | skating m/s "
        "| planted foot moved cm |"
    )
    print("|---|---|---|---|---|---|---|")
    for song in args.songs:
        music = song_features(song, 0.0, args.seconds)
        for seed in args.seeds:
            sampling = SamplingConfig(seed=seed)
            after = pipeline.generate(music, generator, sampling)
            with mock.patch.object(pipeline, "keep_above_floor", lambda rotations, root: (rotations, root)):
                before = pipeline.generate(music, generator, sampling)
            old, new = positions_of(before), positions_of(after)
            a, b = row(old, before.fps), row(new, after.fps)
            feet = list(FOOT_JOINTS)
            planted = old[:, feet, 1] < 0.03  # on the floor before the step
            moved = np.linalg.norm((new - old)[:, feet][..., [0, 2]], axis=-1)[planted]
            print(
                f"| {song.stem} | {seed} | {a['max_under_cm']:.1f} → {b['max_under_cm']:.2f} "
                f"| {a['frames_over_1cm_pct']:.1f} → {b['frames_over_1cm_pct']:.1f} "
                f"| {a['jerk']:.0f} → {b['jerk']:.0f} | {a['skating']:.3f} → {b['skating']:.3f} "
                f"| {moved.max() * 100 if moved.size else 0.0:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
