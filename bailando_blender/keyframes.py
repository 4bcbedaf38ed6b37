"""Keying a whole dance onto an armature in bulk: one new action, F-curves filled by ``foreach_set``.

Blender 4.4 made actions "slotted" (layers, strips, channelbags) and 5.0 removed the old
``action.fcurves``; 4.2 and 4.3 have only the old API. Both paths build the complete action
first and assign it last, so the armature's previous animation is never half-replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

LINEAR = 1  # index of "LINEAR" in Blender's keyframe interpolation enum
SLOTTED_ACTIONS = bpy.app.version >= (4, 4, 0)


@dataclass(frozen=True)
class Channel:
    """One animated property: ``values`` (T, N) keyed on ``data_path`` indices 0..N-1, F-curves grouped by ``group``."""

    data_path: str
    values: np.ndarray
    group: str


def pose_channels(
    bone_names: list[str], rotations: np.ndarray, root_bone: str, root_location: np.ndarray
) -> list[Channel]:
    """Channels for (T, J, 4) bone quaternions and the (T, 3) location of the root bone."""
    channels = [Channel(f'pose.bones["{root_bone}"].location', root_location, root_bone)]
    channels += [
        Channel(f'pose.bones["{name}"].rotation_quaternion', rotations[:, joint], name)
        for joint, name in enumerate(bone_names)
    ]
    return channels


def build_action(
    name: str, channels: list[Channel], first_frame: int, frames: np.ndarray | None = None
) -> tuple[bpy.types.Action, object]:
    """A new action keying each channel on frames first_frame, first_frame + 1, ... (linear), or
    on ``frames`` (T,) when given (fractional scene frames allowed).

    Returns the action and its slot (None before Blender 4.4).
    """
    action = bpy.data.actions.new(name)
    try:
        if SLOTTED_ACTIONS:
            slot = action.slots.new(id_type="OBJECT", name=name)
            strip = action.layers.new("Dance").strips.new(type="KEYFRAME")
            bag = strip.channelbag(slot, ensure=True)
            groups = {}

            def new_fcurve(data_path: str, index: int, group: str) -> bpy.types.FCurve:
                fcurve = bag.fcurves.new(data_path, index=index)
                if group not in groups:
                    groups[group] = bag.groups.new(group)
                fcurve.group = groups[group]
                return fcurve
        else:
            slot = None

            def new_fcurve(data_path: str, index: int, group: str) -> bpy.types.FCurve:
                return action.fcurves.new(data_path, index=index, action_group=group)

        for channel in channels:
            keyed = (
                np.arange(first_frame, first_frame + len(channel.values), dtype=np.float32)
                if frames is None
                else np.asarray(frames, dtype=np.float32)
            )
            interpolation = np.full(len(keyed), LINEAR, dtype=np.int32)
            for index in range(channel.values.shape[1]):
                fcurve = new_fcurve(channel.data_path, index, channel.group)
                points = fcurve.keyframe_points
                points.add(len(keyed))
                coordinates = np.empty((len(keyed), 2), dtype=np.float32)
                coordinates[:, 0] = keyed
                coordinates[:, 1] = channel.values[:, index]
                points.foreach_set("co", coordinates.ravel())
                points.foreach_set("interpolation", interpolation)
                fcurve.update()
    except BaseException:
        bpy.data.actions.remove(action)
        raise
    return action, slot


def assign_action(obj: bpy.types.Object, action: bpy.types.Action, slot: object) -> None:
    """Make ``action`` the object's active action; the previous one stays in the file (fake user)."""
    animation = obj.animation_data or obj.animation_data_create()
    if animation.action is not None:
        animation.action.use_fake_user = True
    animation.action = action
    if slot is not None:
        animation.action_slot = slot
