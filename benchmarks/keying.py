"""Keying speed in Blender: a whole dance onto the SMPL dancer as one new action.

    .venv/bin/python benchmarks/keying.py [--seconds 180] [--fps 60] [--repeats 3] [--rig smpl|rigify]

Prints, per run, the time to turn SMPL rotations into bone channels, to build the action
(F-curves filled in bulk) and to assign it: everything ``apply_dance`` does after the
backend's file is read. A random but continuous dance stands in for the backend's. With
``--rig rigify`` the dancer is Rigify's generated human rig, whose FK controls are baked
through Blender's evaluation, one scene update a frame.
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


def rigify_rig(scene: bpy.types.Scene) -> bpy.types.Object:
    bpy.ops.preferences.addon_enable(module="rigify")
    bpy.ops.object.armature_human_metarig_add()
    meta = bpy.context.active_object
    bpy.ops.pose.rigify_generate()
    return next(obj for obj in scene.objects if obj.type == "ARMATURE" and obj is not meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--fps", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rig", choices=("smpl", "rigify"), default="smpl")
    args = parser.parse_args()
    frames = round(args.seconds * args.fps)
    rotations, translation = smooth_random_dance(frames)
    dance = generation.DanceArrays(args.fps, rotations, translation, np.zeros(0), trained=False)
    machine = platform.processor() or platform.machine()
    print(f"Blender {bpy.app.version_string}, {machine}, {os.cpu_count()} cores, Python {platform.python_version()}")
    what = "24 bones x 4 channels + root location" if args.rig == "smpl" else "Rigify's FK controls, baked"
    print(f"{frames} frames ({args.seconds:g} s at {args.fps:g} fps), {what}")
    print(f"{'run':>4} {'seconds':>8}")
    for run in range(1, args.repeats + 1):
        bpy.ops.wm.read_homefile(use_empty=True)
        scene = bpy.context.scene
        rig = build_dancer(scene.collection) if args.rig == "smpl" else rigify_rig(scene)
        started = time.perf_counter()
        generation.key_arrays(bpy.context, dance, rig.name)
        elapsed = time.perf_counter() - started
        print(f"{run:>4} {elapsed:8.3f}")


if __name__ == "__main__":
    main()
