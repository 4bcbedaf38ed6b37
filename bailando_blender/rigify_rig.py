"""Rigify's generated rigs: the dance baked onto their FK controls.

A generated rig's deform bones follow its controls through constraints (DEF <- ORG <- FK or
IK controls, with MCH bones between), so keys on the deform bones do nothing. Instead the
dance is retargeted, as on any humanoid, onto a helper armature laid out as the rig's ORG
bones (the meta-rig it was generated from). Under each helper bone that a control follows
hangs a "follower" bone at that control's rest, so it turns and moves with the helper bone
relative to both rests; each control copies its follower's transform (a Copy Transforms
constraint, which ignores whatever the control's parents do); the controls' visual pose is
read frame by frame through Blender's own evaluation; then constraints and helper go, and the
controls are keyed in bulk in one new action, with the limbs switched to FK (Rigify's
``IK_FK`` = 1).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import bpy
import numpy as np
from mathutils import Matrix

from . import bone_maps
from .keyframes import Channel, pose_channels
from .skeleton import make_quaternions_continuous

# Bones only a generated Rigify rig has (all three: a meta-rig or a hand-made rig has none of them).
GENERATED_RIG_BONES = ("torso", "ORG-spine", "DEF-spine")
ORG_PREFIX = "ORG-"
HELPER_NAME = "Rigify Dance Helper"
SIDES = ("L", "R")
# FK control -> the meta-rig bone it follows (the ORG bone it drives, without "ORG-").
# The torso carries the whole body with the pelvis; the spine's FK controls (spine_fk hangs down
# from spine_fk.001, the hips' pivot) turn each spine bone, with the hips and chest controls at rest.
CONTROLS = {
    "torso": "spine",
    "spine_fk": "spine",
    "spine_fk.001": "spine.001",
    "spine_fk.002": "spine.002",
    "spine_fk.003": "spine.003",
    "neck": "spine.004",
    "head": "spine.006",
    **{
        f"{control}.{side}": f"{bone}.{side}"
        for side in SIDES
        for control, bone in (
            ("shoulder", "shoulder"),
            ("upper_arm_fk", "upper_arm"),
            ("forearm_fk", "forearm"),
            ("hand_fk", "hand"),
            ("thigh_fk", "thigh"),
            ("shin_fk", "shin"),
            ("foot_fk", "foot"),
            ("toe_fk", "toe"),
        )
    },
}
ROOT_CONTROL = "torso"
# Pose bones holding each limb's IK/FK switch (a custom property; 1 = FK).
FK_SWITCH_BONES = tuple(f"{bone}.{side}" for bone in ("upper_arm_parent", "thigh_parent") for side in SIDES)
FK_SWITCH = "IK_FK"
# Seconds of baking between two yields: a modal operator bakes one slice a timer tick (0.1 s),
# so the UI redraws and takes ESC about ten times a second.
BAKE_SLICE_S = 0.1
CHAIN_NAME = re.compile(r"^(?P<base>.+)\.(?P<number>\d{3})$")  # Rigify chains: spine, spine.001, ...

T = TypeVar("T")


def is_generated_rig(obj: bpy.types.Object | None) -> bool:
    return obj is not None and obj.type == "ARMATURE" and all(name in obj.data.bones for name in GENERATED_RIG_BONES)


def deform_bone_map(rig: bpy.types.Object) -> dict[str, str]:
    """SMPL joint -> the generated rig's deform bone carrying it (the meta-rig preset's bone, DEF-)."""
    preset = bone_maps.PRESETS[bone_maps.RIGIFY_META_RIG]
    return {joint: f"DEF-{bone}" for joint, bone in preset.items() if f"DEF-{bone}" in rig.data.bones}


def visit_frames(scene: bpy.types.Scene, scene_frames: Iterable[float]) -> Iterator[int]:
    """Set the scene to each (fractional) frame in turn, yielding its index, so that Blender
    evaluates it (constraints included); the scene's own frame is put back after."""
    current = (scene.frame_current, scene.frame_subframe)
    try:
        for index, frame in enumerate(scene_frames):
            whole = math.floor(frame)
            scene.frame_set(whole, subframe=float(frame - whole))
            yield index
    finally:
        scene.frame_set(current[0], subframe=current[1])


def evaluated_pose(rig: bpy.types.Object, names: list[str], scene_frames: np.ndarray) -> dict[str, np.ndarray]:
    """Bone name -> (T, 4, 4) armature-space matrices at the (fractional) scene frames, as Blender
    evaluates them (constraints included): one scene update a frame."""
    posed = {name: np.empty((len(scene_frames), 4, 4)) for name in names}
    for index in visit_frames(bpy.context.scene, scene_frames):
        for name in names:
            posed[name][index] = np.array(rig.pose.bones[name].matrix)
    return posed


def org_parent(bone: bpy.types.Bone) -> str | None:
    """The meta-rig parent of an ORG bone: its nearest ORG ancestor, else (the spine, whose ORG
    bones hang under tweak controls) the previous link of its chain by Rigify's naming."""
    ancestor = bone.parent
    while ancestor is not None and not ancestor.name.startswith(ORG_PREFIX):
        ancestor = ancestor.parent
    if ancestor is not None:
        return ancestor.name[len(ORG_PREFIX) :]
    match = CHAIN_NAME.match(bone.name[len(ORG_PREFIX) :])
    if match is None:
        return None
    number = int(match["number"])
    return match["base"] if number == 1 else f"{match['base']}.{number - 1:03d}"


def follower(control: str) -> str:
    return f"follow {control}"


def build_helper(rig: bpy.types.Object, collection: bpy.types.Collection) -> bpy.types.Object:
    """An armature of the rig's ORG bones under their meta-rig names, at the rig's transform,
    with a follower bone (``follower(control)``) for each FK control the rig has."""
    data = bpy.data.armatures.new(HELPER_NAME)
    helper = bpy.data.objects.new(HELPER_NAME, data)
    collection.objects.link(helper)
    bpy.context.view_layer.update()  # the rig's matrix_world, after any change of its transform
    helper.matrix_world = rig.matrix_world.copy()
    org_bones = [bone for bone in rig.data.bones if bone.name.startswith(ORG_PREFIX)]
    previous = bpy.context.view_layer.objects.active
    bpy.context.view_layer.objects.active = helper
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit_bones = {}
        for bone in org_bones:
            edit = data.edit_bones.new(bone.name[len(ORG_PREFIX) :])
            edit.head, edit.tail = bone.head_local, bone.tail_local
            edit.matrix = bone.matrix_local
            edit_bones[edit.name] = edit
        for bone in org_bones:
            parent = org_parent(bone)
            if parent in edit_bones:
                edit_bones[bone.name[len(ORG_PREFIX) :]].parent = edit_bones[parent]
        for control, followed in CONTROLS.items():
            if control in rig.data.bones and followed in edit_bones:
                bone = rig.data.bones[control]
                edit = data.edit_bones.new(follower(control))
                edit.head, edit.tail = bone.head_local, bone.tail_local
                edit.matrix = bone.matrix_local
                edit.parent = edit_bones[followed]
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        bpy.context.view_layer.objects.active = previous
    return helper


def remove_helper(helper: bpy.types.Object) -> None:
    data = helper.data
    action = helper.animation_data.action if helper.animation_data else None
    bpy.data.objects.remove(helper)
    bpy.data.armatures.remove(data)
    if action is not None and action.users == 0:
        bpy.data.actions.remove(action)


@dataclass
class SavedState:
    """What the bake changes on the rig, to put back: its action, FK switches and control poses."""

    action: bpy.types.Action | None
    slot: object
    switches: dict[str, float]
    poses: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...], str]]


def save_state(rig: bpy.types.Object, controls: list[str]) -> SavedState:
    animation = rig.animation_data
    poses = {}
    for name in controls:
        bone = rig.pose.bones[name]
        poses[name] = (
            tuple(bone.location),
            tuple(bone.rotation_quaternion),
            tuple(bone.rotation_euler),
            bone.rotation_mode,
        )
    return SavedState(
        action=animation.action if animation else None,
        slot=getattr(animation, "action_slot", None) if animation else None,
        switches={name: rig.pose.bones[name][FK_SWITCH] for name in FK_SWITCH_BONES if name in rig.pose.bones},
        poses=poses,
    )


def restore_state(rig: bpy.types.Object, state: SavedState) -> None:
    if rig.animation_data is not None:
        rig.animation_data.action = state.action
        if state.action is not None and state.slot is not None:
            rig.animation_data.action_slot = state.slot
    for name, value in state.switches.items():
        rig.pose.bones[name][FK_SWITCH] = value
    for name, (location, quaternion, euler, mode) in state.poses.items():
        bone = rig.pose.bones[name]
        bone.rotation_mode = mode
        bone.location, bone.rotation_quaternion, bone.rotation_euler = location, quaternion, euler


def bake_steps(
    context: bpy.types.Context,
    rig: bpy.types.Object,
    helper: bpy.types.Object,
    first_frame: int,
    num_frames: int,
    slice_s: float | None = None,
) -> Generator[float, None, list[Channel]]:
    """The rig's FK controls following the helper's keyed dance over ``num_frames`` frames from
    ``first_frame``, as channels (the generator's return value); the rig is left as it was.

    Yields the fraction baked after every ``slice_s`` (default ``BAKE_SLICE_S``) seconds of
    work, so that a modal operator
    can bake a slice a timer tick and keep the UI drawing and listening for ESC; closing the
    generator early puts the rig back as it was too. ``context`` is read only at the start.
    """
    slice_s = BAKE_SLICE_S if slice_s is None else slice_s
    scene, view_layer = context.scene, context.view_layer
    controls = [name for name in CONTROLS if name in rig.pose.bones and follower(name) in helper.data.bones]
    state = save_state(rig, controls)
    constraints = []
    rotations = np.zeros((num_frames, len(controls), 4))
    location = np.zeros((num_frames, 3))
    try:
        if rig.animation_data is not None:
            rig.animation_data.action = None
        for name in state.switches:
            rig.pose.bones[name][FK_SWITCH] = 1.0
        for name in controls:
            bone = rig.pose.bones[name]
            bone.rotation_mode = "QUATERNION"
            bone.location, bone.rotation_quaternion = (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0)
            follow = bone.constraints.new("COPY_TRANSFORMS")
            follow.target, follow.subtarget = helper, follower(name)
            constraints.append((bone, follow))
        root = controls.index(ROOT_CONTROL)
        # One scene update a frame (~6 ms for Rigify's human rig): minutes of music take seconds.
        deadline = time.perf_counter() + slice_s
        for frame in visit_frames(scene, range(first_frame, first_frame + num_frames)):
            for index, name in enumerate(controls):
                bone = rig.pose.bones[name]
                local: Matrix = rig.convert_space(
                    pose_bone=bone, matrix=bone.matrix, from_space="POSE", to_space="LOCAL"
                )
                rotations[frame, index] = local.to_quaternion()
                if index == root:
                    location[frame] = local.to_translation()
            if time.perf_counter() >= deadline and frame + 1 < num_frames:
                yield (frame + 1) / num_frames
                deadline = time.perf_counter() + slice_s
    finally:
        for bone, follow in constraints:
            bone.constraints.remove(follow)
        restore_state(rig, state)
        view_layer.update()  # the rig evaluated as it was again, at the scene's frame
    rotations = make_quaternions_continuous(rotations)
    channels = pose_channels(controls, rotations, ROOT_CONTROL, location)
    channels += [
        Channel(f'pose.bones["{name}"]["{FK_SWITCH}"]', np.ones((num_frames, 1)), name) for name in state.switches
    ]
    return channels


def run_steps(steps: Generator[float, None, T]) -> T:
    """Run a stepwise job (``bake_steps`` and the jobs built on it) to its end, in one go."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value
