"""A user's armature as the retargeting sees it: its bone map (kept on the object) and its rest skeleton."""

from __future__ import annotations

import bpy
import numpy as np

from . import bone_maps, rigify_rig
from .armature import ArmatureError, check_smpl_armature, has_smpl_names
from .retarget import Rig
from .skeleton import JOINT_NAMES

MIN_MAPPED_JOINTS = 10  # fewer than this (pelvis, spine, limbs) is not a humanoid the dance can drive


def armature_rig(obj: bpy.types.Object) -> Rig:
    """The armature's bones, parents first, with their rest matrices (armature space)."""
    bones = sorted(obj.data.bones, key=lambda bone: len(bone.parent_recursive))
    index = {bone.name: number for number, bone in enumerate(bones)}
    return Rig(
        names=[bone.name for bone in bones],
        parents=[index[bone.parent.name] if bone.parent else -1 for bone in bones],
        rest=np.array([np.array(bone.matrix_local) for bone in bones]).reshape(len(bones), 4, 4),
    )


def stored_map(obj: bpy.types.Object) -> dict[str, str]:
    """The map kept on the object (``Object.bailando_bone_map``): joint -> bone, empty rows left out.
    (The batch CLI runs without the extension's properties registered: no stored map there.)"""
    return {item.joint: item.bone for item in getattr(obj, "bailando_bone_map", ()) if item.bone}


def store_map(obj: bpy.types.Object, bone_map: dict[str, str]) -> None:
    """Keep ``bone_map`` on the object as one row per SMPL joint (the panel edits these rows)."""
    rows = obj.bailando_bone_map
    rows.clear()
    for joint in JOINT_NAMES:
        row = rows.add()
        row.joint, row.bone = joint, bone_map.get(joint, "")


def guessed_map(obj: bpy.types.Object) -> tuple[str, dict[str, str]]:
    rig = armature_rig(obj)
    return bone_maps.guess_map(rig.names, rig.parents, rig.rest[:, :3, 3])


def check_dancer(obj: bpy.types.Object | None) -> None:
    """Raise ArmatureError unless ``obj`` is an armature the dance can drive: SMPL's joint names,
    or a bone map (its own, or one guessed from presets and its hierarchy)."""
    if obj is None or obj.type != "ARMATURE":
        check_smpl_armature(obj)  # says what is wrong
    if not has_smpl_names(obj):
        bone_map_for(obj)


def bone_map_for(obj: bpy.types.Object) -> dict[str, str]:
    """The object's own map if it has one, else a guess; raises ArmatureError if it cannot drive the rig.
    A generated Rigify rig's map is its deform bones (the panel keeps no map for it)."""
    if rigify_rig.is_generated_rig(obj):
        bone_map = rigify_rig.deform_bone_map(obj)
    else:
        bone_map = stored_map(obj) or guessed_map(obj)[1]
    missing = [bone for bone in bone_map.values() if bone not in obj.data.bones]
    if missing:
        raise ArmatureError(f"armature '{obj.name}' has no bone '{missing[0]}' (its bone map names it)")
    if "pelvis" not in bone_map or len(bone_map) < MIN_MAPPED_JOINTS:
        raise ArmatureError(
            f"armature '{obj.name}': only {len(bone_map)} SMPL joints could be mapped (the pelvis and at least "
            f"{MIN_MAPPED_JOINTS}: map them under Bone Map)"
        )
    return bone_map
