"""SMPL joint rotations -> the pose channels of Blender bones (pure numpy).

A Blender pose bone rotates in its own rest frame (its Y axis along the bone, its roll as
the rig has it), while SMPL rotates each joint in a frame aligned with the world (Y up).
With ``C`` the SMPL -> Blender frame change and ``R`` a bone's rest rotation in armature
space, the bone's channel that reproduces SMPL's local rotation ``Q`` is

    L = Rᵀ C Q Cᵀ R

(by induction down the chain: each posed bone then sits at ``C G Cᵀ R`` with ``G`` the SMPL
joint's global rotation). The same holds for any roll and any bone direction, so it works
on every armature whose bones carry SMPL's joints, not only on the one we build.
"""

from __future__ import annotations

import numpy as np

from .skeleton import (
    BLENDER_TO_SMPL,
    SMPL_TO_BLENDER,
    make_quaternions_continuous,
    matrix_to_quaternion,
    quaternion_to_matrix,
)


def bone_rotations(joint_rotations: np.ndarray, rest_rotations: np.ndarray) -> np.ndarray:
    """(T, J, 4) SMPL local quaternions (w first) + (J, 3, 3) bone rest rotations in armature space
    -> (T, J, 4) ``rotation_quaternion`` channels (w first), continuous in time."""
    to_bone = BLENDER_TO_SMPL @ rest_rotations  # (J, 3, 3): Cᵀ R
    local = quaternion_to_matrix(joint_rotations)
    channels = np.swapaxes(to_bone, -1, -2) @ local @ to_bone
    return make_quaternions_continuous(matrix_to_quaternion(channels))


def root_location(root_translation: np.ndarray, rest_rotation: np.ndarray, rest_head: np.ndarray) -> np.ndarray:
    """(T, 3) SMPL pelvis positions (Y up, metres) -> (T, 3) ``location`` channels of the pelvis
    bone whose rest rotation and head (armature space, metres) are given."""
    target = np.asarray(root_translation) @ SMPL_TO_BLENDER.T
    return (target - rest_head) @ rest_rotation  # Rᵀ (C t - head) for every frame
