"""2D pose pass speed in Blender: a whole dance's keypoints, OpenPose JSON and NPZ, then the guide video.

    .venv/bin/python benchmarks/pose_pass.py [--seconds 180] [--scene-fps 30] [--video-seconds 10]

Keys a smooth random dance (as ``benchmarks/keying.py``) on the SMPL dancer, then times the
pass at its defaults (512 x 896 at 30 fps, Auto camera) without the video over the whole
dance, and with the video over its first ``--video-seconds`` (reported per frame).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import bpy
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from keying import smooth_random_dance

from bailando_blender import generation, pose_pass
from bailando_blender.armature import build_dancer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--scene-fps", type=int, default=30)
    parser.add_argument("--video-seconds", type=float, default=10.0)
    args = parser.parse_args()
    frames = round(args.seconds * args.scene_fps)
    rotations, translation = smooth_random_dance(frames)
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = args.scene_fps, 1.0
    rig = build_dancer(scene.collection)
    dance = generation.DanceArrays(float(args.scene_fps), rotations, translation, np.zeros(0), False)
    generation.key_arrays(bpy.context, dance, rig.name)
    machine = platform.processor() or platform.machine()
    print(f"Blender {bpy.app.version_string}, {machine}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as folder:
        settings = pose_pass.PosePassSettings(folder, 1, frames, camera="AUTO", video=False)
        started = time.perf_counter()
        summary = pose_pass.run_pose_pass(scene, rig, settings)
        elapsed = time.perf_counter() - started
        print(f"keypoints + JSON + NPZ, {args.seconds:g} s dance: {elapsed:.2f} s ({summary})")
        video_frames = round(args.video_seconds * args.scene_fps)
        settings = pose_pass.PosePassSettings(folder, 1, video_frames, camera="AUTO", video=True)
        started = time.perf_counter()
        pose_pass.run_pose_pass(scene, rig, settings)
        elapsed = time.perf_counter() - started
        samples = len(pose_pass.sample_frames(scene, settings))
        per_frame_ms = 1000 * elapsed / samples
        print(f"with the guide video, {args.video_seconds:g} s: {elapsed:.2f} s ({per_frame_ms:.0f} ms a frame)")


if __name__ == "__main__":
    main()
