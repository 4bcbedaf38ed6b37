"""The README's retargeting figures: one dance on different rigs, rendered side by side.

    .venv/bin/python -m backend generate examples/florist_excerpt.ogg --out out/florist.npz
    .venv/bin/python scripts/retarget_figure.py out/florist.npz --frame 200 --out docs/retargeting.png
    .venv/bin/python scripts/retarget_figure.py out/florist.npz --frame 200 --out docs/characters.png \
        --characters Xbot.glb Ely.glb

Rigs: our SMPL dancer, then either the character files given (imported by Blender's glTF or
FBX importer, as a user's are) or Rigify's human meta-rig (Rigify ships inside Blender) and a
rig with Unreal's UE4 names, arms in an A-pose, built in centimetres at object scale 0.01;
those two get a plain capsule per bone so they can be seen. Each is keyed through the same
code as the panel's Generate (bone map guessed from its names).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from bailando_blender import armature, bone_maps, generation
from bailando_blender.preview import quiet_stdout
from bailando_blender.rig_layout import capsule, rest_layout
from bailando_blender.skeleton import JOINT_NAMES, PARENTS

SPACING_M = 1.6  # between the dancers, metres
A_POSE_DEG = 45.0  # the UE-named rig's arms, down from the T-pose
CAPSULE_SHARE = 0.25  # a bone's capsule radius, as a share of its length
CAPSULE_MAX_M = 0.09  # and at most this, metres


def capsule_skin(rig: bpy.types.Object) -> None:
    """A capsule around every deforming bone longer than 2 cm, each following its bone; none on
    the face's and fingers' small bones (below the bones mapped to the head and the wrists)."""
    _, bone_map = bone_maps.guess_map([bone.name for bone in rig.data.bones], [], None)
    ends = {bone_map.get(joint) for joint in ("head", "left_wrist", "right_wrist")}
    unit = rig.scale[0]
    vertices, faces, groups = [], [], []
    for bone in rig.data.bones:
        head, tail = np.array(bone.head_local), np.array(bone.tail_local)
        length = float(np.linalg.norm(tail - head))
        below_an_end = any(parent.name in ends for parent in bone.parent_recursive)
        if length < 0.02 / unit or not bone.use_deform or below_an_end:
            continue
        points, polygons = capsule(head, tail, min(CAPSULE_SHARE * length, CAPSULE_MAX_M / unit))
        faces += [tuple(index + len(vertices) for index in polygon) for polygon in polygons]
        groups.append((bone.name, range(len(vertices), len(vertices) + len(points))))
        vertices += points.tolist()
    mesh = bpy.data.meshes.new(rig.name + " Skin")
    mesh.from_pydata(vertices, [], faces)
    body = bpy.data.objects.new(rig.name + " Skin", mesh)
    bpy.context.scene.collection.objects.link(body)
    body.parent = rig
    body.modifiers.new("Armature", "ARMATURE").object = rig
    for name, members in groups:
        body.vertex_groups.new(name=name).add(list(members), 1.0, "REPLACE")


def unreal_rig() -> bpy.types.Object:
    """Our skeleton's layout with UE4 names, arms in an A-pose, in centimetres, at scale 0.01."""
    names = bone_maps.PRESETS["Unreal UE4 / MPFB game engine"]
    layout = rest_layout()
    heads, tails = layout.heads.copy(), layout.tails.copy()
    for side, chain in ((1.0, (16, 18, 20, 22)), (-1.0, (17, 19, 21, 23))):
        pivot, angle = heads[chain[0]].copy(), side * math.radians(A_POSE_DEG)
        turn = np.array(Matrix.Rotation(angle, 3, "Y"))
        for joint in chain:
            heads[joint], tails[joint] = pivot + turn @ (heads[joint] - pivot), pivot + turn @ (tails[joint] - pivot)
    data = bpy.data.armatures.new("UE4 Mannequin")
    rig = bpy.data.objects.new("UE4 Mannequin", data)
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    bones = {}
    for joint, name in enumerate(JOINT_NAMES):
        bone = data.edit_bones.new(names.get(name, f"{name}_extra"))
        bone.head, bone.tail = (heads[joint] * 100).tolist(), (tails[joint] * 100).tolist()
        bone.parent = bones.get(PARENTS[joint]) if joint else None
        bones[joint] = bone
    bpy.ops.object.mode_set(mode="OBJECT")
    rig.scale = (0.01, 0.01, 0.01)
    return rig


def imported_character(path: Path) -> bpy.types.Object:
    """The armature of a character file, as Blender's own importer brings it in."""
    before = set(bpy.data.objects)
    with quiet_stdout():
        if path.suffix.lower() in (".glb", ".gltf"):
            bpy.ops.import_scene.gltf(filepath=str(path))
        else:
            bpy.ops.import_scene.fbx(filepath=str(path))
    return next(obj for obj in set(bpy.data.objects) - before if obj.type == "ARMATURE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dance", type=Path, help="an NPZ from `python -m backend generate`")
    parser.add_argument("--frame", type=int, default=200)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--characters", type=Path, nargs="*", default=[], help="glTF/FBX characters to show")
    args = parser.parse_args()
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    dance = generation.read_dance(str(args.dance), 30.0)
    scene.render.fps = 30
    smpl = armature.build_dancer(scene.collection)
    if args.characters:
        others = [imported_character(path) for path in args.characters]
    else:
        bpy.ops.preferences.addon_enable(module="rigify")
        bpy.ops.object.armature_human_metarig_add()
        others = [bpy.context.active_object, unreal_rig()]
        for rig in others:
            capsule_skin(rig)
    for offset, rig in zip((-SPACING_M, 0.0, SPACING_M), (smpl, *others), strict=True):
        rig.location.x = offset
        generation.key_arrays(bpy.context, dance, rig.name)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    scene.frame_set(args.frame)
    centre = (smpl.matrix_world @ smpl.pose.bones["pelvis"].head).x + SPACING_M  # the middle dancer
    camera.location, camera.rotation_euler = (centre, -7.5, 1.1), (math.radians(88), 0.0, 0.0)
    camera.data.lens = 35.0
    scene.camera = camera
    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.resolution_x, render.resolution_y, render.resolution_percentage = 1200, 600, 100
    render.image_settings.file_format = "PNG"
    render.filepath = str(args.out.resolve())
    scene.display.shading.color_type = "RANDOM"
    scene.frame_set(args.frame)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with quiet_stdout():
        bpy.ops.render.render(write_still=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
