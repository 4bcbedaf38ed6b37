"""Motion metrics: of dances generated for songs, or of the held-out captures themselves.

python -m training.evaluate songs --weights models/weights/generator.safetensors --seeds 0 1 SONG.ogg ...
python -m training.evaluate held-out-music --inputs data/inputs.npz     (generated, on held-out songs)
python -m training.evaluate held-out-captures --dataset data/dataset.npz  (the fitted captures)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from backend.generator import DanceGenerator
from backend.motion_representation import decode_motion
from backend.music_features import BEAT_COLUMN, FPS, MusicFeatures, song_features
from backend.pipeline import floor_height, generate
from backend.sampling import SamplingConfig
from bailando_blender import skeleton as sk

from .metrics import summary


def print_rows(rows: list[dict[str, float]]) -> None:
    print("mean", " ".join(f"{k} {np.mean([r[k] for r in rows]):.3f}" for k in rows[0]))
    print("worst frozen stretch", f"{max(r['longest_frozen_s'] for r in rows):.2f} s")


def dance_metrics(generator: DanceGenerator, music: MusicFeatures, seed: int) -> dict[str, float]:
    dance = generate(music, generator, SamplingConfig(seed=seed))
    positions, _ = sk.forward_kinematics(sk.quaternion_to_matrix(dance.joint_rotations), dance.root_translation)
    return summary(positions, dance.fps, dance.beat_times)


def features_as_music(features: np.ndarray) -> MusicFeatures:
    """Stored per-frame features of a capture's song (30 fps) as the generator's input."""
    beats = np.flatnonzero(features[:, BEAT_COLUMN] > 0.5) / FPS
    return MusicFeatures(features=features, beat_times=beats, tempo_bpm=0.0, duration_s=len(features) / FPS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    songs = commands.add_parser("songs")
    songs.add_argument("songs", type=Path, nargs="+")
    held_music = commands.add_parser("held-out-music")
    held_music.add_argument("--inputs", type=Path, required=True)
    held_captures = commands.add_parser("held-out-captures")
    held_captures.add_argument("--dataset", type=Path, required=True)
    for command in (songs, held_music):
        command.add_argument("--weights", type=Path, default=None)
        command.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
        command.add_argument("--device", default="auto")
    args = parser.parse_args()
    rows = []
    if args.command == "held-out-captures":
        data = np.load(args.dataset)
        bounds = np.concatenate([[0], np.cumsum(data["lengths"])])
        for i, name in enumerate(data["names"]):
            if not data["held_out"][i] or data["mirrored"][i]:
                continue
            frames = slice(bounds[i], bounds[i + 1])
            rotations, translation = decode_motion(data["upper"][frames], data["lower"][frames])
            positions, _ = sk.forward_kinematics(rotations, translation)
            positions[..., 1] -= floor_height(positions)
            music = features_as_music(data["features"][frames].astype(np.float32))
            rows.append(summary(positions, FPS, music.beat_times))
            print(name, " ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()), flush=True)
        print_rows(rows)
        return
    generator = DanceGenerator.load(args.weights, args.device)
    if args.command == "held-out-music":
        data = np.load(args.inputs)
        bounds = np.concatenate([[0], np.cumsum(data["lengths"])])
        pieces = [
            (str(name), features_as_music(data["features"][bounds[i] : bounds[i + 1]].astype(np.float32)))
            for i, name in enumerate(data["names"])
            if data["held_out"][i]
        ]
    else:
        pieces = [(song.name, song_features(song)) for song in args.songs]
    for name, music in pieces:
        for seed in args.seeds:
            rows.append(dance_metrics(generator, music, seed))
            print(name, f"seed {seed}", " ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()), flush=True)
    print_rows(rows)


if __name__ == "__main__":
    main()
