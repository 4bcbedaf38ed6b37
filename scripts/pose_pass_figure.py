"""The README's figure: a rendered 3D frame beside the 2D pose pass's guide frame at the same moment.

    .venv/bin/python scripts/pose_pass_figure.py out/florist_excerpt_dance.blend --frame 200 --out docs/pose_pass.png

Opens a dance .blend (from ``bailando_blender.batch``), places the pass's Auto camera, renders
that frame with Workbench through it and draws the guide frame of the same instant.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import bpy
import numpy as np

from bailando_blender import pose_guides, pose_pass
from bailando_blender.preview import quiet_stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("blend", type=Path)
    parser.add_argument("--frame", type=int, default=200)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    bpy.ops.wm.open_mainfile(filepath=str(args.blend.resolve()))
    scene = bpy.context.scene
    rig = next(obj for obj in scene.objects if obj.type == "ARMATURE")
    with tempfile.TemporaryDirectory() as folder:
        settings = pose_pass.PosePassSettings(folder, scene.frame_start, scene.frame_end, camera="AUTO", video=False)
        pose_pass.run_pose_pass(scene, rig, settings)
        stored = np.load(Path(folder) / "keypoints.npz")
        sample = int(np.argmin(np.abs(stored["scene_frames"] - args.frame)))
        guide = pose_guides.draw_pose(stored["keypoints"][sample], settings.width, settings.height)
        scene.camera = bpy.data.objects[pose_pass.AUTO_CAMERA_NAME]
        render = scene.render
        render.engine = "BLENDER_WORKBENCH"
        render.resolution_x, render.resolution_y, render.resolution_percentage = settings.width, settings.height, 100
        render.image_settings.file_format = "PNG"
        render.filepath = str(Path(folder) / "render.png")
        scene.frame_set(round(float(stored["scene_frames"][sample])))
        with quiet_stdout():
            bpy.ops.render.render(write_still=True)
        image = bpy.data.images.load(render.filepath)
        rendered = np.array(image.pixels[:], dtype=np.float32).reshape(settings.height, settings.width, -1)[::-1, :, :3]
    gap = np.full((settings.height, 16, 3), 255, dtype=np.uint8)
    figure = np.concatenate([(rendered * 255).round().astype(np.uint8), gap, guide], axis=1)
    out = bpy.data.images.new("figure", figure.shape[1], figure.shape[0], alpha=False)
    rgba = np.ones((*figure.shape[:2], 4), dtype=np.float32)
    rgba[..., :3] = figure[::-1] / 255.0
    out.pixels.foreach_set(rgba.ravel())
    out.filepath_raw, out.file_format = str(args.out.resolve()), "PNG"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.save()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
