"""Dance to songs with a checkpoint and print the motion metrics, averaged over seeds.

    python -m training.evaluate --weights models/weights/generator.safetensors --seeds 0 1 \
        SONG.ogg [SONG.ogg ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from backend.generator import DanceGenerator
from backend.music_features import song_features
from backend.pipeline import generate
from backend.sampling import SamplingConfig
from bailando_blender import skeleton as sk

from .metrics import summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("songs", type=Path, nargs="+")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    generator = DanceGenerator.load(args.weights, args.device)
    rows = []
    for song in args.songs:
        music = song_features(song)
        for seed in args.seeds:
            dance = generate(music, generator, SamplingConfig(seed=seed))
            positions, _ = sk.forward_kinematics(sk.quaternion_to_matrix(dance.joint_rotations), dance.root_translation)
            rows.append(summary(positions, dance.fps, dance.beat_times))
            print(song.name, f"seed {seed}", " ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()), flush=True)
    print("mean", " ".join(f"{k} {np.mean([r[k] for r in rows]):.3f}" for k in rows[0]))
    print("worst frozen stretch", f"{max(r['longest_frozen_s'] for r in rows):.2f} s")


if __name__ == "__main__":
    main()
