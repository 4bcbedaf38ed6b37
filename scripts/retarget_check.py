"""How well a dance lands on a character file: the measurement behind docs/retargeting.md.

    .venv/bin/python scripts/retarget_check.py dance.npz character.glb [more.fbx ...] [--export-dir out/check]

Each character is imported by Blender's own importer (glTF or FBX) into an empty scene, keyed
with the dance through the panel's code (bone map guessed), and measured against the SMPL
source every 20th frame: the mean angle between the world directions of its thighs, shins,
upper arms, forearms and spine and the source's, and the head's height above the lowest foot
against its rest height (median and lowest frame). With ``--export-dir`` the keyed character
is exported to FBX and GLB through the extension's exporter, each file imported again, and the
largest distance between a bone's world head in the file and in the scene is reported, as a
share of the character's height (the file's first keyed frame taken as the scene's first).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import bpy
import numpy as np

from bailando_blender import export, generation, rig_mapping
from bailando_blender.preview import quiet_stdout
from bailando_blender.skeleton import JOINT_NAMES, SMPL_TO_BLENDER, forward_kinematics, quaternion_to_matrix

LIMBS = ((1, 4), (2, 5), (4, 7), (5, 8), (16, 18), (17, 19), (18, 20), (19, 21), (0, 12))
FEET = ("left_ankle", "right_ankle", "left_foot", "right_foot")
EVERY = 20  # frames between samples
FPS = 30


def import_character(path: Path) -> bpy.types.Object:
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.scene.render.fps = FPS
    with quiet_stdout():
        if path.suffix.lower() in (".glb", ".gltf"):
            bpy.ops.import_scene.gltf(filepath=str(path))
        else:
            bpy.ops.import_scene.fbx(filepath=str(path))
    return next(obj for obj in bpy.context.scene.objects if obj.type == "ARMATURE")


def world_heads(rig: bpy.types.Object, frame: int) -> dict[str, np.ndarray]:
    bpy.context.scene.frame_set(frame)
    return {bone.name: np.array(rig.matrix_world @ bone.head) for bone in rig.pose.bones}


def measure(rig: bpy.types.Object, arrays: generation.DanceArrays) -> tuple[float, float, float]:
    """(mean limb angle in degrees, median and lowest head height above the lowest foot / rest)."""
    _, bone_map = rig_mapping.guessed_map(rig)
    positions, _ = forward_kinematics(quaternion_to_matrix(arrays.joint_rotations), arrays.root_translation)
    source = positions @ SMPL_TO_BLENDER.T
    rest = {bone.name: np.array(rig.matrix_world @ bone.head_local) for bone in rig.data.bones}
    feet = [bone_map[joint] for joint in FEET if joint in bone_map]
    rest_height = rest[bone_map["head"]][2] - min(rest[foot][2] for foot in feet)
    angles, heights = [], []
    for index in range(0, len(source), EVERY):
        heads = world_heads(rig, index + 1)
        for a, b in LIMBS:
            target = heads[bone_map[JOINT_NAMES[b]]] - heads[bone_map[JOINT_NAMES[a]]]
            wanted = source[index, b] - source[index, a]
            cosine = target @ wanted / np.linalg.norm(target) / np.linalg.norm(wanted)
            angles.append(math.degrees(math.acos(float(np.clip(cosine, -1.0, 1.0)))))
        heights.append((heads[bone_map["head"]][2] - min(heads[foot][2] for foot in feet)) / rest_height)
    return float(np.mean(angles)), float(np.median(heights)), float(np.min(heights))


def round_trip(rig: bpy.types.Object, folder: Path, frames: int) -> dict[str, float]:
    """Suffix -> the largest bone-head distance between the re-imported file and the scene, / height.
    (Leaves an empty scene holding the last file.)"""
    sampled = range(1, frames + 1, EVERY)
    expected = {frame: world_heads(rig, frame) for frame in sampled}
    height = max(np.ptp(np.array(list(heads.values()))[:, 2]) for heads in expected.values())
    paths = {suffix: folder / f"{rig.name.replace(':', '_')}{suffix}" for suffix in (".fbx", ".glb")}
    for path in paths.values():
        export.export_dance(bpy.context.scene, rig, path)
    result = {}
    for suffix, path in paths.items():
        other = import_character(path)
        # Blender's FBX importer starts the action one frame later than the exporter's first frame.
        shift = round(other.animation_data.action.frame_range[0]) - 1
        worst = 0.0
        for frame in sampled:
            heads = world_heads(other, frame + shift)
            for name, head in expected[frame].items():
                if name in heads:
                    worst = max(worst, float(np.linalg.norm(heads[name] - head)))
        result[suffix] = worst / height
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dance", type=Path, help="the backend's .npz")
    parser.add_argument("characters", type=Path, nargs="+", help="glTF (.glb) or FBX files")
    parser.add_argument("--export-dir", type=Path, default=None, help="also check FBX and GLB exports here")
    args = parser.parse_args()
    arrays = generation.read_dance(str(args.dance), FPS)
    for path in args.characters:
        rig = import_character(path)
        generation.key_arrays(bpy.context, arrays, rig.name)
        limbs, upright, lowest = measure(rig, arrays)
        line = (
            f"{path.name}: limbs {limbs:.1f} deg off the source (the panel's check: "
            f"{generation.limb_error_of(rig):.1f}), head above the lowest foot {upright:.2f} of rest "
            f"(lowest {lowest:.2f})"
        )
        if args.export_dir is not None:
            args.export_dir.mkdir(parents=True, exist_ok=True)
            gaps = round_trip(rig, args.export_dir, len(arrays.joint_rotations))
            line += "; re-imported " + ", ".join(f"{s} {gap * 100:.2f} % of height off" for s, gap in gaps.items())
        print(line)


if __name__ == "__main__":
    main()
