"""SMPL motion <-> the per-frame vectors the VQ-VAE encodes (pure numpy).

A dance of T frames becomes two streams:

- upper (T, 90): the 6D local rotations of the 15 upper-body joints;
- lower (T, 58): the 6D rotations of the 9 lower-body joints, the pelvis's with its heading
  (rotation about the vertical) removed, then 4 root numbers: heading change to the next
  frame (rad/frame), the pelvis's horizontal step to the next frame in the body's heading
  frame (sideways x, forward z; m/frame) and the pelvis height above its rest height (m).

Heading and horizontal position are integrated back on decoding, so a dance can turn and
travel for any length without the codebook ever seeing absolute positions or headings.
"""

from __future__ import annotations

import numpy as np

from bailando_blender.skeleton import (
    LOWER_JOINTS,
    NUM_JOINTS,
    REST_PELVIS_HEIGHT,
    UPPER_JOINTS,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
)

UPPER_DIM = 6 * len(UPPER_JOINTS)  # 90
ROOT_DIM = 4  # heading velocity, sideways step, forward step, height offset
LOWER_DIM = 6 * len(LOWER_JOINTS) + ROOT_DIM  # 58


def yaw_matrix(heading: np.ndarray) -> np.ndarray:
    """(...,) heading angles about +Y (radians) -> (..., 3, 3) rotations."""
    cos, sin = np.cos(heading), np.sin(heading)
    zero, one = np.zeros_like(heading), np.ones_like(heading)
    return np.stack(
        [np.stack([cos, zero, sin], -1), np.stack([zero, one, zero], -1), np.stack([-sin, zero, cos], -1)], -2
    )


def heading_of(root_rotation: np.ndarray) -> np.ndarray:
    """(..., 3, 3) pelvis orientations -> (...,) heading about +Y; 0 when facing +Z."""
    forward = root_rotation[..., :, 2]
    return np.arctan2(forward[..., 0], forward[..., 2])


def encode_motion(joint_rotations: np.ndarray, root_translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 24, 3, 3) local rotations, (T, 3) pelvis positions (m) -> upper (T, 90), lower (T, 58)."""
    joint_rotations = np.asarray(joint_rotations, dtype=np.float64)
    root_translation = np.asarray(root_translation, dtype=np.float64)
    heading = np.unwrap(heading_of(joint_rotations[:, 0]))
    facing = yaw_matrix(heading)
    local = joint_rotations.copy()
    local[:, 0] = np.swapaxes(facing, -1, -2) @ joint_rotations[:, 0]

    step = np.diff(root_translation, axis=0, append=root_translation[-1:])
    step[:, 1] = 0.0
    body_step = np.einsum("tji,tj->ti", facing, step)  # facing^T @ step
    heading_velocity = np.diff(heading, append=heading[-1])
    root = np.stack(
        [heading_velocity, body_step[:, 0], body_step[:, 2], root_translation[:, 1] - REST_PELVIS_HEIGHT], axis=1
    )
    six_d = matrix_to_rotation_6d(local)
    upper = six_d[:, list(UPPER_JOINTS)].reshape(len(six_d), -1)
    lower = np.concatenate([six_d[:, list(LOWER_JOINTS)].reshape(len(six_d), -1), root], axis=1)
    return upper.astype(np.float32), lower.astype(np.float32)


def decode_motion(upper: np.ndarray, lower: np.ndarray, start_heading: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """upper (..., T, 90), lower (..., T, 58) -> (..., T, 24, 3, 3) local rotations, (..., T, 3)
    pelvis positions (m); the leading axes are dances decoded side by side (beat search's candidates).

    Each dance starts at the origin (horizontally) facing ``start_heading``.
    """
    upper = np.asarray(upper, dtype=np.float64)
    lower = np.asarray(lower, dtype=np.float64)
    frames = upper.shape[:-1]  # (..., T)
    six_d = np.zeros((*frames, NUM_JOINTS, 6))
    six_d[..., list(UPPER_JOINTS), :] = upper.reshape(*frames, len(UPPER_JOINTS), 6)
    six_d[..., list(LOWER_JOINTS), :] = lower[..., : 6 * len(LOWER_JOINTS)].reshape(*frames, len(LOWER_JOINTS), 6)
    joint_rotations = rotation_6d_to_matrix(six_d)

    root = lower[..., 6 * len(LOWER_JOINTS) :]
    turned = np.cumsum(root[..., :-1, 0], axis=-1)
    heading = start_heading + np.concatenate([np.zeros((*frames[:-1], 1)), turned], axis=-1)
    facing = yaw_matrix(heading)
    joint_rotations[..., 0, :, :] = facing @ joint_rotations[..., 0, :, :]

    body_step = np.stack([root[..., 1], np.zeros(frames), root[..., 2]], axis=-1)
    world_step = np.einsum("...ij,...j->...i", facing, body_step)
    travelled = np.cumsum(world_step[..., :-1, :], axis=-2)
    root_translation = np.concatenate([np.zeros((*frames[:-1], 1, 3)), travelled], axis=-2)
    root_translation[..., 1] = root[..., 3] + REST_PELVIS_HEIGHT
    return joint_rotations, root_translation
