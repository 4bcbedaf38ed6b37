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

from .skeleton import BLENDER_TO_SMPL, SMPL_TO_BLENDER, matrix_to_quaternion, quaternion_multiply


def bone_rotations(joint_rotations: np.ndarray, rest_rotations: np.ndarray) -> np.ndarray:
    """(T, J, 4) SMPL local quaternions (w first) + (J, 3, 3) bone rest rotations in armature space
    -> (T, J, 4) ``rotation_quaternion`` channels (w first).

    Conjugating by a fixed rotation is an orthogonal map of quaternions, so channels stay
    on the same hemisphere frame to frame exactly when the input does (the backend's do).
    """
    to_bone = matrix_to_quaternion(BLENDER_TO_SMPL @ rest_rotations)  # (J, 4): Cᵀ R
    inverse = to_bone * np.array([1.0, -1.0, -1.0, -1.0])
    return quaternion_multiply(quaternion_multiply(inverse, joint_rotations), to_bone)


def root_location(root_translation: np.ndarray, rest_rotation: np.ndarray, rest_head: np.ndarray) -> np.ndarray:
    """(T, 3) SMPL pelvis positions (Y up, metres) -> (T, 3) ``location`` channels of the pelvis
    bone whose rest rotation and head (armature space, metres) are given."""
    target = np.asarray(root_translation) @ SMPL_TO_BLENDER.T
    return (target - rest_head) @ rest_rotation  # Rᵀ (C t - head) for every frame
