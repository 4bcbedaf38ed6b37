"""The SMPL dancer in the scene: an armature with SMPL's joints and a capsule body skinned to it."""

from __future__ import annotations

import bpy
import numpy as np

from .rig_layout import capsule_body, rest_layout
from .skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, points_to_blender

BODY_SUFFIX = " Body"
SKIN_WEIGHT_EPSILON = 1e-4  # SMPL's weights below this move nothing visible
# Marks objects this extension made, so a later run can tell its dancer from the user's rigs.
DANCER_PROPERTY = "bailando_dancer"


class ArmatureError(Exception):
    """The chosen armature cannot carry the dance (one line for the user)."""


def build_dancer(
    collection: bpy.types.Collection, name: str = "SMPL Dancer", body: dict[str, np.ndarray] | None = None
) -> bpy.types.Object:
    """A new armature with SMPL's 24 bones in its rest pose (feet on z = 0) and a body child:
    the user's SMPL mesh when ``body`` holds it (keys as in the backend's NPZ), else capsules."""
    layout = rest_layout()
    data = bpy.data.armatures.new(name)
    data.display_type = "OCTAHEDRAL"
    armature = bpy.data.objects.new(name, data)
    armature.show_in_front = True
    armature[DANCER_PROPERTY] = True
    collection.objects.link(armature)
    _add_bones(armature, layout.heads, layout.tails)
    for pose_bone in armature.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    if body is None:
        _add_body(armature, collection, name + BODY_SUFFIX)
    else:
        _add_smpl_body(armature, collection, name + BODY_SUFFIX, body, layout.heads[0])
    return armature


def _add_bones(armature: bpy.types.Object, heads: np.ndarray, tails: np.ndarray) -> None:
    # Edit bones exist only in edit mode, which needs the object active in a view layer
    # and a context; a temporary override keeps the user's selection and mode as they were.
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    view_layer.objects.active = armature
    with bpy.context.temp_override(active_object=armature, object=armature, selected_objects=[armature]):
        bpy.ops.object.mode_set(mode="EDIT")
        try:
            edit_bones = armature.data.edit_bones
            bones = []
            for joint in range(NUM_JOINTS):
                bone = edit_bones.new(JOINT_NAMES[joint])
                bone.head = heads[joint].tolist()
                bone.tail = tails[joint].tolist()
                bone.roll = 0.0
                bones.append(bone)
            for joint, parent in enumerate(PARENTS):
                if parent >= 0:
                    bones[joint].parent = bones[parent]
        finally:
            bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = previous_active


def _skinned_mesh(
    armature: bpy.types.Object, collection: bpy.types.Collection, name: str, vertices: np.ndarray, faces: list
) -> bpy.types.Object:
    """A smooth-shaded mesh object, child of ``armature`` and deformed by it (vertex groups: the caller's)."""
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(vertices.tolist(), [], faces)
    mesh.shade_smooth()
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    obj[DANCER_PROPERTY] = True
    collection.objects.link(obj)
    obj.parent = armature
    modifier = obj.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature
    return obj


def _add_body(armature: bpy.types.Object, collection: bpy.types.Collection, name: str) -> bpy.types.Object:
    body = capsule_body(rest_layout())
    obj = _skinned_mesh(armature, collection, name, body.vertices, body.faces)
    for joint in np.unique(body.vertex_bones):
        group = obj.vertex_groups.new(name=JOINT_NAMES[joint])
        group.add(np.flatnonzero(body.vertex_bones == joint).tolist(), 1.0, "REPLACE")
    return obj


def _add_smpl_body(
    armature: bpy.types.Object,
    collection: bpy.types.Collection,
    name: str,
    body: dict[str, np.ndarray],
    pelvis_head: np.ndarray,
) -> bpy.types.Object:
    """The SMPL mesh, its pelvis joint on the armature's pelvis, skinned with SMPL's own weights."""
    vertices = points_to_blender(body["body_vertices"] - body["body_joints"][0]) + pelvis_head
    obj = _skinned_mesh(armature, collection, name, vertices, body["body_faces"].tolist())
    weights = body["body_weights"]
    for joint in range(NUM_JOINTS):
        group = obj.vertex_groups.new(name=JOINT_NAMES[joint])
        # One call per distinct weight: Blender's API adds a list of vertices at one weight.
        influenced = np.flatnonzero(weights[:, joint] > SKIN_WEIGHT_EPSILON)
        values, inverse = np.unique(weights[influenced, joint], return_inverse=True)
        for number, value in enumerate(values):
            group.add(influenced[inverse == number].tolist(), float(value), "REPLACE")
    return obj


def remove_dancer(armature: bpy.types.Object) -> None:
    """Delete a dancer made by build_dancer (its body, armature data and meshes too)."""
    for child in list(armature.children):
        mesh = child.data
        bpy.data.objects.remove(child)
        if isinstance(mesh, bpy.types.Mesh) and mesh.users == 0:
            bpy.data.meshes.remove(mesh)
    data = armature.data
    bpy.data.objects.remove(armature)
    if data.users == 0:
        bpy.data.armatures.remove(data)


def has_smpl_names(obj: bpy.types.Object) -> bool:
    """Whether the armature ``obj`` has a bone for every SMPL joint, named as SMPL names it."""
    return all(name in obj.data.bones for name in JOINT_NAMES)


def check_smpl_armature(obj: bpy.types.Object | None) -> None:
    """Raise ArmatureError unless ``obj`` is an armature with every SMPL joint as a bone."""
    if obj is None:
        raise ArmatureError("no armature is selected")
    if obj.type != "ARMATURE":
        raise ArmatureError(f"'{obj.name}' is not an armature")
    missing = [name for name in JOINT_NAMES if name not in obj.data.bones]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ArmatureError(f"armature '{obj.name}' has no bone named {shown} (it needs SMPL's 24 joint names)")


def rest_rotations(obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """(24, 3, 3) rest rotations and (24, 3) rest heads of the SMPL bones, armature space."""
    rotations = np.empty((NUM_JOINTS, 3, 3))
    heads = np.empty((NUM_JOINTS, 3))
    for joint, name in enumerate(JOINT_NAMES):
        bone = obj.data.bones[name]
        matrix = np.array(bone.matrix_local)
        rotations[joint] = matrix[:3, :3] / np.linalg.norm(matrix[:3, :3], axis=0)
        heads[joint] = np.array(bone.head_local)
    return rotations, heads
