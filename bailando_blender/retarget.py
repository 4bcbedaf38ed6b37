"""An SMPL dance onto any humanoid armature (pure numpy): pose channels for its bones.

Each mapped bone takes its SMPL joint's rotation **relative to each skeleton's own rest
pose, in the armature's space**: with ``D`` the joint's posed-from-rest rotation (SMPL's
global rotation seen in Blender's frame) and ``A`` the rotation that lays the bone's rest
direction onto the SMPL joint's rest direction, the posed bone is ``D A R`` (``R`` its rest
rotation). So a T-posed source drives an A-posed target with the arms where the source has
them, whatever the bones' rolls. A mapped bone's rest direction is taken towards the bone
mapped to the next SMPL joint of its limb, so the bones the map skips in between (a fifth
spine bone, a second neck bone, twist bones) turn with it rigidly and the next mapped bone
lands where the source's joint points: a longer chain bends at the bones the map names,
which a map spreads along it. Unmapped bones keep their rest pose relative to their
parents. Local channels then follow from the parents' poses (``L = Rᵀ R_parent P_parentᵀ P``).

The hips travel as the SMPL pelvis does, scaled by the ratio of hip heights above the
ankles, and then move up or down each frame so that the lowest foot is as high above the
target's floor as the source's is above its own, times that ratio.

Which way is up and which way the character faces in its armature's space is read from the
mapped joints' rest positions, nothing else (``armature_turn``): an FBX or glTF import often
keeps the file's Y-up space inside the armature and turns the object instead, and importers
guess bone tails, so neither the armature's axes nor the bones' tails can be trusted. The
work is done in Blender's frame (Z up, the body facing -Y) on the rig turned into it, which
leaves every bone's local channel unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rig_layout import TAIL_JOINT, rest_layout
from .skeleton import (
    FOOT_JOINTS,
    SMPL_TO_BLENDER,
    forward_kinematics,
    make_quaternions_continuous,
    matrix_to_quaternion,
    quaternion_to_matrix,
)

PELVIS, LEFT_ANKLE, RIGHT_ANKLE = 0, 7, 8
# The body's frame from its joints: up from the pelvis to the first of UP_JOINTS mapped (neck,
# spine3, head, spine2, spine1), left from the right to the left joint of the first pair mapped
# (hips, shoulders, collars).
UP_JOINTS = (12, 9, 15, 6, 3)
SIDE_PAIRS = ((1, 2), (16, 17), (13, 14))
# Limbs the quality figure compares (SMPL joint -> the joint its bone points at): thighs,
# shins, upper arms, forearms, and the spine from the pelvis to the neck.
QUALITY_LIMBS = ((1, 4), (2, 5), (4, 7), (5, 8), (16, 18), (17, 19), (18, 20), (19, 21), (0, 12))
POOR_RETARGET_DEG = 20.0  # a mean limb angle above this is reported as a broken map


@dataclass(frozen=True)
class Rig:
    """A target armature: bone names, parent indices (-1: none; parents before children),
    (B, 4, 4) rest matrices in armature space (Blender's ``bone.matrix_local``)."""

    names: list[str]
    parents: list[int]
    rest: np.ndarray


@dataclass(frozen=True)
class RetargetedDance:
    """rotations (T, B, 4) every bone's ``rotation_quaternion`` channel (w first);
    hips_location (T, 3) the mapped pelvis bone's ``location`` channel; hips: its index."""

    rotations: np.ndarray
    hips_location: np.ndarray
    hips: int


def _normalised(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3) directions -> (..., 3, 3) the smallest rotations taking each a onto its b (a half
    turn about an axis across a where b points the other way)."""
    a, b = _normalised(a), _normalised(b)
    axis = np.cross(a, b)
    sine, cosine = np.linalg.norm(axis, axis=-1), np.sum(a * b, axis=-1)
    parallel = sine < 1e-9
    helper = np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    across = _normalised(np.cross(a, helper))
    axis = np.where(parallel[..., None], across, axis / np.where(parallel, 1.0, sine)[..., None])
    sine, cosine = np.where(parallel, 0.0, sine), np.where(parallel, np.sign(cosine), cosine)
    zero = np.zeros_like(sine)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    cross = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    return np.eye(3) + sine[..., None, None] * cross + (1.0 - cosine)[..., None, None] * cross @ cross


def _source_rest_directions() -> np.ndarray:
    """(24, 3) each SMPL joint's rest direction (its bone on our dancer), Blender's frame."""
    layout = rest_layout()
    return _normalised(layout.tails - layout.heads)


def _target_rest_direction(rig: Rig, bone: int, joint: int, mapped: dict[int, int]) -> np.ndarray:
    """Towards the bone mapped to the joint that continues the SMPL limb; for a leaf (head, toes,
    hands), towards its child bones' heads (a head's end bone, the fingers); else along the bone."""
    child = TAIL_JOINT.get(joint)
    if child is not None and child in mapped:
        return rig.rest[mapped[child], :3, 3] - rig.rest[bone, :3, 3]
    children = [other for other, parent in enumerate(rig.parents) if parent == bone]
    if children:
        direction = rig.rest[children, :3, 3].mean(axis=0) - rig.rest[bone, :3, 3]
        if np.linalg.norm(direction) > 1e-6 * np.linalg.norm(rig.rest[bone, :3, :3]):
            return direction
    return rig.rest[bone, :3, 1]


def body_frame(heads: dict[int, np.ndarray]) -> np.ndarray | None:
    """(3, 3) columns the body's left, back and up, from SMPL joint -> position; None when the
    joints that tell are not there."""
    up_joint = next((joint for joint in UP_JOINTS if joint in heads), None)
    pair = next(((left, right) for left, right in SIDE_PAIRS if left in heads and right in heads), None)
    if PELVIS not in heads or up_joint is None or pair is None:
        return None
    up = _normalised(heads[up_joint] - heads[PELVIS])
    left = heads[pair[0]] - heads[pair[1]]
    left = _normalised(left - (left @ up) * up)
    return np.stack([left, np.cross(up, left), up], axis=1)


def _snapped(frame: np.ndarray) -> np.ndarray | None:
    """The axis-aligned rotation nearest ``frame`` (armatures' spaces are axis-aligned; a rest
    pose's lean is not a turn of the space), or None if it is not one."""
    snapped = np.zeros((3, 3))
    for column in range(3):
        axis = int(np.argmax(np.abs(frame[:, column])))
        snapped[axis, column] = np.sign(frame[axis, column])
    return snapped if np.isclose(np.linalg.det(snapped), 1.0) else None


def armature_turn(rig: Rig, bone_map: dict[int, int]) -> np.ndarray:
    """(3, 3) the rotation from Blender's frame (Z up, the body facing -Y) to the armature's
    space, read from the mapped joints' rest positions; the identity when they cannot tell."""
    target = body_frame({joint: rig.rest[bone, :3, 3] for joint, bone in bone_map.items()})
    if target is None:
        return np.eye(3)
    turn = _snapped(target)
    return np.eye(3) if turn is None else turn


def in_blender_frame(rig: Rig, turn: np.ndarray) -> Rig:
    """``rig`` with its rest matrices turned by ``turn``ᵀ, from its armature's space into Blender's frame."""
    change = np.eye(4)
    change[:3, :3] = turn.T
    return Rig(rig.names, rig.parents, change @ rig.rest)


def rest_alignments(rig: Rig, bone_map: dict[int, int]) -> dict[int, np.ndarray]:
    """SMPL joint -> (3, 3) the rotation ``A`` laying its bone's rest direction onto the joint's,
    in the armature's space (the joint's direction turned into it by ``armature_turn``)."""
    turn = armature_turn(rig, bone_map)
    source_directions = _source_rest_directions() @ turn.T
    return {
        joint: rotation_between(_target_rest_direction(rig, bone, joint, bone_map), source_directions[joint])
        for joint, bone in bone_map.items()
    }


def retarget(
    joint_rotations: np.ndarray, root_translation: np.ndarray, rig: Rig, bone_map: dict[int, int]
) -> RetargetedDance:
    """(T, 24, 3, 3) SMPL local rotations + (T, 3) pelvis positions (SMPL frame, floor y = 0)
    -> channels for ``rig``; ``bone_map``: SMPL joint -> bone index (the pelvis must be mapped)."""
    if PELVIS not in bone_map:
        raise ValueError("the bone map has no bone for SMPL's pelvis")
    rig = in_blender_frame(rig, armature_turn(rig, bone_map))  # local channels do not change
    frames, bones = len(joint_rotations), len(rig.names)
    positions, global_rotations = forward_kinematics(joint_rotations, root_translation)
    turn = SMPL_TO_BLENDER @ global_rotations @ SMPL_TO_BLENDER.T  # (T, 24, 3, 3): D per joint
    rest_rotation = rig.rest[:, :3, :3] / np.linalg.norm(rig.rest[:, :3, :3], axis=1, keepdims=True)
    align = rest_alignments(rig, bone_map)
    is_mapped = np.zeros(bones, dtype=bool)
    joint_of = {}
    for joint, bone in bone_map.items():
        is_mapped[bone] = True
        joint_of[bone] = joint

    posed = np.empty((frames, bones, 3, 3))
    local = np.empty((frames, bones, 3, 3))
    for bone in range(bones):
        parent = rig.parents[bone]
        if is_mapped[bone]:
            joint = joint_of[bone]
            posed[:, bone] = turn[:, joint] @ align[joint] @ rest_rotation[bone]
        elif parent >= 0:  # unmapped: keeps its rest pose relative to its parent
            posed[:, bone] = posed[:, parent] @ rest_rotation[parent].T @ rest_rotation[bone]
        else:
            posed[:, bone] = rest_rotation[bone]
        if parent >= 0:
            local[:, bone] = rest_rotation[bone].T @ rest_rotation[parent] @ np.swapaxes(posed[:, parent], -1, -2)
            local[:, bone] = local[:, bone] @ posed[:, bone]
        else:
            local[:, bone] = rest_rotation[bone].T @ posed[:, bone]
    rotations = np.stack(
        [make_quaternions_continuous(matrix_to_quaternion(local[:, bone])) for bone in range(bones)], axis=1
    )

    hips = bone_map[PELVIS]
    source = positions @ SMPL_TO_BLENDER.T  # Blender's frame, floor z = 0
    source_rest = rest_layout().heads
    ratio, target_floor = scale_and_floor(rig, bone_map, source_rest)
    head = np.empty((frames, 3))
    head[:, :2] = rig.rest[hips, :2, 3] + ratio * (source[:, PELVIS, :2] - source_rest[PELVIS, :2])
    head[:, 2] = target_floor + ratio * source[:, PELVIS, 2]
    frame = _hips_frame(rig, rotations, hips)
    feet = [joint for joint in FOOT_JOINTS if joint in bone_map]
    if feet:
        # Moving the hips' head moves every bone below it by as much: one pass finds the lift.
        heads = _chain_matrices(rig, rotations, hips, _location_for(frame, head))[..., :3, 3]
        lowest = heads[:, [bone_map[joint] for joint in feet], 2].min(axis=1)
        head[:, 2] += target_floor + ratio * source[:, feet, 2].min(axis=1) - lowest
    return RetargetedDance(rotations=rotations, hips_location=_location_for(frame, head), hips=hips)


def scale_and_floor(rig: Rig, bone_map: dict[int, int], source_rest: np.ndarray) -> tuple[float, float]:
    """The hip-height ratio target / source (above the ankles) and the target's floor height
    (along its up axis: ``rig`` in Blender's frame, ``in_blender_frame``)."""
    ankles = [joint for joint in (LEFT_ANKLE, RIGHT_ANKLE) if joint in bone_map]
    hips_z = rig.rest[bone_map[PELVIS], 2, 3]
    if not ankles:  # no legs mapped: the armature's origin is the floor
        return hips_z / source_rest[PELVIS, 2], 0.0
    target_ankle = np.mean([rig.rest[bone_map[joint], 2, 3] for joint in ankles])
    source_ankle = np.mean([source_rest[joint, 2] for joint in ankles])
    ratio = (hips_z - target_ankle) / (source_rest[PELVIS, 2] - source_ankle)
    return float(ratio), float(target_ankle - ratio * source_ankle)


def limb_angles(
    dance: RetargetedDance,
    rig: Rig,
    bone_map: dict[int, int],
    joint_rotations: np.ndarray,
    root_translation: np.ndarray,
) -> np.ndarray:
    """(T, L) degrees between each of the QUALITY_LIMBS mapped on ``rig`` and the source's same
    limb, frame by frame, both in the armature's space (the figure the batch and panel report)."""
    limbs = [(a, b) for a, b in QUALITY_LIMBS if a in bone_map and b in bone_map]
    heads = _chain_matrices(rig, dance.rotations, dance.hips, dance.hips_location)[..., :3, 3]
    source, _ = forward_kinematics(joint_rotations, root_translation)
    source = source @ (armature_turn(rig, bone_map) @ SMPL_TO_BLENDER).T
    angles = np.empty((len(heads), len(limbs)))
    for column, (a, b) in enumerate(limbs):
        target = _normalised(heads[:, bone_map[b]] - heads[:, bone_map[a]])
        wanted = _normalised(source[:, b] - source[:, a])
        angles[:, column] = np.degrees(np.arccos(np.clip(np.sum(target * wanted, axis=-1), -1.0, 1.0)))
    return angles


def _chain_matrices(rig: Rig, rotations: np.ndarray, hips: int, hips_location: np.ndarray | None) -> np.ndarray:
    """(T, B, 4, 4) posed bone matrices in armature space from the channels."""
    frames, bones = rotations.shape[:2]
    basis = np.tile(np.eye(4), (frames, bones, 1, 1))
    basis[..., :3, :3] = quaternion_to_matrix(rotations)
    if hips_location is not None:
        basis[:, hips, :3, 3] = hips_location
    posed = np.empty_like(basis)
    for bone in range(bones):
        parent = rig.parents[bone]
        offset = rig.rest[bone] if parent < 0 else np.linalg.inv(rig.rest[parent]) @ rig.rest[bone]
        above = np.eye(4) if parent < 0 else posed[:, parent]
        posed[:, bone] = above @ offset @ basis[:, bone]
    return posed


def _hips_frame(rig: Rig, rotations: np.ndarray, hips: int) -> np.ndarray:
    """(T, 4, 4) the frame the hips bone's location channel is in: its rest matrix carried by its
    parent's pose (the parent does not depend on that channel)."""
    parent = rig.parents[hips]
    if parent < 0:
        return np.broadcast_to(rig.rest[hips], (len(rotations), 4, 4))
    posed = _chain_matrices(rig, rotations, hips, None)
    return posed[:, parent] @ np.linalg.inv(rig.rest[parent]) @ rig.rest[hips]


def _location_for(frame: np.ndarray, head: np.ndarray) -> np.ndarray:
    """The hips bone's location channel that puts its head at ``head`` (T, 3), armature space."""
    target = np.concatenate([head, np.ones((len(head), 1))], axis=1)
    return np.einsum("tij,tj->ti", np.linalg.inv(frame), target)[:, :3]
