"""Keying speed in Blender: a whole dance onto the SMPL dancer as one new action.

    .venv/bin/python benchmarks/keying.py [--seconds 180] [--fps 60] [--repeats 3]

Prints, per run, the time to turn SMPL rotations into bone channels, to build the action
(F-curves filled in bulk) and to assign it: everything ``apply_dance`` does after the
backend's file is read. A random but continuous dance stands in for the backend's.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import bpy
import numpy as np

from bailando_blender import generation
from bailando_blender.armature import build_dancer
from bailando_blender.skeleton import NUM_JOINTS, REST_PELVIS_HEIGHT, axis_angle_to_quaternion


def smooth_random_dance(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = np.arange(frames)[:, None, None]
    phases = rng.uniform(0, 2 * np.pi, (1, NUM_JOINTS, 3))
    axis_angles = 0.4 * np.sin(2 * np.pi * times / 60.0 + phases)
    translation = np.zeros((frames, 3))
    translation[:, 1] = REST_PELVIS_HEIGHT
    return axis_angle_to_quaternion(axis_angles), translation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--fps", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    frames = round(args.seconds * args.fps)
    rotations, translation = smooth_random_dance(frames)
    dance = generation.DanceArrays(args.fps, rotations, translation, np.zeros(0), trained=False)
    machine = platform.processor() or platform.machine()
    print(f"Blender {bpy.app.version_string}, {machine}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{frames} frames ({args.seconds:g} s at {args.fps:g} fps), 24 bones x 4 channels + root location")
    print(f"{'run':>4} {'seconds':>8}")
    for run in range(1, args.repeats + 1):
        bpy.ops.wm.read_homefile(use_empty=True)
        scene = bpy.context.scene
        rig = build_dancer(scene.collection)
        started = time.perf_counter()
        generation.key_arrays(bpy.context, dance, rig.name)
        elapsed = time.perf_counter() - started
        print(f"{run:>4} {elapsed:8.3f}")


if __name__ == "__main__":
    main()
