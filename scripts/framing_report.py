"""How the 2D pose pass frames dances: the measurement behind the following camera's numbers.

    .venv/bin/python scripts/framing_report.py dance.npz [more.npz ...] [--camera AUTO|WIDE]

Each dance (the backend's NPZ) is keyed on a new SMPL dancer and the pass is run at its
defaults (512 x 896 at 30 fps) without the video; from its files: the median share of the
frame's height the body's keypoints span, the share of frames with every body keypoint in
frame, and the camera's largest acceleration (m/s^2, from its per-frame matrices).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import bpy
import numpy as np

from bailando_blender import armature, follow_camera, generation, pose_pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dances", type=Path, nargs="+")
    parser.add_argument("--camera", default="AUTO", choices=("AUTO", "WIDE"))
    args = parser.parse_args()
    for path in args.dances:
        bpy.ops.wm.read_homefile(use_empty=True)
        scene = bpy.context.scene
        scene.render.fps = 30
        dance = generation.read_dance(str(path), 30.0)
        rig = armature.build_dancer(scene.collection)
        generation.key_arrays(bpy.context, dance, rig.name)
        scene.frame_start, scene.frame_end = 1, len(dance.joint_rotations)
        with tempfile.TemporaryDirectory() as folder:
            settings = pose_pass.PosePassSettings(folder, 1, scene.frame_end, camera=args.camera, video=False)
            pose_pass.run_pose_pass(scene, rig, settings)
            stored = np.load(Path(folder) / "keypoints.npz")
            pixels = stored["keypoints"][:, : pose_pass.BODY_KEYPOINTS, :2]
            matrices = stored["camera_matrices"]
        positions = matrices[:, :3, 3] if matrices.ndim == 3 else np.tile(matrices[:3, 3], (len(pixels), 1))
        framing = follow_camera.framing(pixels, settings.width, settings.height, positions, settings.fps)
        summary = framing.summary()
        low = np.percentile(framing.fill, 5) * 100
        print(
            f"{path.name} ({len(pixels) / settings.fps:.0f} s, {args.camera}): body spans a median "
            f"{summary['median_fill'] * 100:.1f} % of the height (5th percentile {low:.1f} %), "
            f"all in frame in {summary['inside_share'] * 100:.2f} % of frames, camera acceleration at most "
            f"{summary['max_acceleration_m_s2']:.2f} m/s^2"
        )


if __name__ == "__main__":
    main()
