"""The 24-joint SMPL skeleton, rotation conversions and forward kinematics (pure numpy).

Shared by the backend (training, generation) and the Blender extension, so it imports
nothing but numpy (Blender ships numpy, not SciPy; the tests check every conversion
against SciPy's ``Rotation``). Conventions, used everywhere in the project:

- Frame: SMPL's own, metres, **Y up, the body faces +Z, +X is the body's left**.
- Rotations are local (each joint relative to its parent, in the parent's rest frame;
  SMPL's rest frames are all aligned with the world). Joint 0 is the global orientation.
- Quaternions are ``(w, x, y, z)``, scalar first.
- 6D rotations (Zhou et al. 2019) are the first two **columns** of the rotation matrix,
  concatenated: ``(R[:, 0], R[:, 1])``.

Offsets are those of the neutral SMPL body with zero shape (the joint regressor applied to
the template), as published in open SMPL code; no licensed model file is needed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)
NUM_JOINTS = len(JOINT_NAMES)
FK_BLOCK_FRAMES = 512  # frames per block of forward_kinematics: 512 x 24 x 3 x 3 float64 = 0.9 MB
ROTATION_BLOCK = 8192  # rotations per block of the rotation conversions: a few MB of temporaries

PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)  # fmt: skip

# (24, 3) metres: each joint's rest position minus its parent's (pelvis row: zero).
REST_OFFSETS = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.05858135, -0.08228004, -0.01766408],
        [-0.06030973, -0.09051332, -0.01354254],
        [0.00443945, 0.12440352, -0.03838522],
        [0.04345142, -0.38646945, 0.00803700],
        [-0.04325663, -0.38368791, -0.00484304],
        [0.00448844, 0.13795640, 0.02682033],
        [-0.01479032, -0.42687458, -0.03742800],
        [0.01905555, -0.42004550, -0.03456167],
        [-0.00226458, 0.05603239, 0.00285505],
        [0.04105436, -0.06028581, 0.12204243],
        [-0.03483987, -0.06210566, 0.13032329],
        [-0.01339020, 0.21163553, -0.03346758],
        [0.07170245, 0.11399969, -0.01889817],
        [-0.08295366, 0.11247234, -0.02370739],
        [0.01011321, 0.08893734, 0.05040987],
        [0.12292141, 0.04520509, -0.01904600],
        [-0.11322832, 0.04685326, -0.00847207],
        [0.25533190, -0.01564902, -0.02294649],
        [-0.26012748, -0.01436928, -0.03126873],
        [0.26570925, 0.01269811, -0.00737473],
        [-0.26910836, 0.00679372, -0.00602676],
        [0.08669055, -0.01063603, -0.01559429],
        [-0.08875370, -0.00865157, -0.01010708],
    ],
    dtype=np.float64,
)

# Bailando's body split, kept for rotations: the lower half carries the pelvis (global
# orientation), legs and feet; the upper half the spine, head, arms and hands.
LOWER_JOINTS: tuple[int, ...] = (0, 1, 2, 4, 5, 7, 8, 10, 11)
UPPER_JOINTS: tuple[int, ...] = (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23)

FOOT_JOINTS: tuple[int, ...] = (7, 10, 8, 11)  # left ankle, left toes, right ankle, right toes


def rest_positions() -> np.ndarray:
    """(24, 3) joint positions of the rest pose with the pelvis at the origin, metres."""
    positions = np.zeros((NUM_JOINTS, 3))
    for joint, parent in enumerate(PARENTS):
        if parent >= 0:
            positions[joint] = positions[parent] + REST_OFFSETS[joint]
    return positions


# Height of the pelvis above the lowest rest joint (the toes), metres. Standing on the
# toe joints puts the pelvis this high; the sole lies a few cm lower (see smpl.md).
REST_PELVIS_HEIGHT = float(-rest_positions()[:, 1].min())


# --- rotation conversions ---------------------------------------------------------


def quaternion_multiply(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(..., 4) Hamilton products ``left ⊗ right`` (w first): the rotation ``right`` then ``left``."""
    w1, x1, y1, z1 = np.moveaxis(np.asarray(left, dtype=np.float64), -1, 0)
    w2, x2, y2, z2 = np.moveaxis(np.asarray(right, dtype=np.float64), -1, 0)
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        axis=-1,
    )


def quaternion_to_matrix(quaternion: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (w, x, y, z), any norm > 0 -> (..., 3, 3) rotation matrices."""
    q = np.asarray(quaternion, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_to_quaternion(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z), w >= 0.

    Of the four ways to read a quaternion off a matrix, each element takes the one whose
    divisor is largest, so no element loses precision near 180 degrees.
    """
    m = np.asarray(matrix, dtype=np.float64)
    flat = m.reshape(-1, 3, 3)
    quaternions = _in_blocks(_matrix_to_quaternion_block, flat, np.empty((len(flat), 4)))
    return quaternions.reshape(*m.shape[:-2], 4)


def _in_blocks(convert: Callable[[np.ndarray], np.ndarray], flat: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out[i] = convert(flat)[i], ROTATION_BLOCK rows at a time, so that the conversion's
    temporaries stay in the cache (a long dance's whole set is tens of MB)."""
    for start in range(0, len(flat), ROTATION_BLOCK):
        block = slice(start, start + ROTATION_BLOCK)
        out[block] = convert(flat[block])
    return out


def _matrix_to_quaternion_block(m: np.ndarray) -> np.ndarray:
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    candidates = np.stack(
        [
            np.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
            np.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
            np.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
            np.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
        ],
        axis=-2,
    )  # row k is 4 q_k q, whose k-th entry 4 q_k^2 is the largest for the best row
    best = np.argmax(np.stack([candidates[..., k, k] for k in range(4)], -1), axis=-1)
    quaternion = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    quaternion /= np.linalg.norm(quaternion, axis=-1, keepdims=True)
    return quaternion * np.where(quaternion[..., :1] < 0, -1.0, 1.0)


def axis_angle_to_quaternion(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle (radians) -> (..., 4) unit quaternions (w, x, y, z), w >= 0 for angles <= pi."""
    v = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(v, axis=-1, keepdims=True)
    # sin(angle / 2) / angle, finite at 0: np.sinc(x) = sin(pi x) / (pi x)
    scale = 0.5 * np.sinc(angle / (2 * np.pi))
    return np.concatenate([np.cos(angle / 2), v * scale], axis=-1)


def quaternion_to_axis_angle(quaternion: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (w, x, y, z) -> (..., 3) axis-angle, angle in [0, pi]."""
    q = np.asarray(quaternion, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = q * np.where(q[..., :1] < 0, -1.0, 1.0)
    sin_half = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2 * np.arctan2(sin_half, q[..., :1])
    # angle / sin(angle / 2) -> 2 / w as the angle goes to 0
    small = sin_half < 1e-8
    scale = np.where(small, 2.0 / q[..., :1], angle / np.where(small, 1.0, sin_half))
    return q[..., 1:] * scale


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle (radians) -> (..., 3, 3) rotation matrices."""
    return quaternion_to_matrix(axis_angle_to_quaternion(axis_angle))


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle, angle in [0, pi]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def matrix_to_rotation_6d(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 6): the first two columns, ``(R[:, 0], R[:, 1])``."""
    matrix = np.asarray(matrix)
    return np.concatenate([matrix[..., :, 0], matrix[..., :, 1]], axis=-1)


def rotation_6d_to_matrix(rotation_6d: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt on the two columns (any non-degenerate input)."""
    rotation_6d = np.asarray(rotation_6d, dtype=np.float64)
    flat = rotation_6d.reshape(-1, 6)
    matrices = _in_blocks(_rotation_6d_to_matrix_block, flat, np.empty((len(flat), 3, 3)))
    return matrices.reshape(*rotation_6d.shape[:-1], 3, 3)


def _rotation_6d_to_matrix_block(rotation_6d: np.ndarray) -> np.ndarray:
    a1, a2 = rotation_6d[..., :3], rotation_6d[..., 3:]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    a2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = a2 / np.linalg.norm(a2, axis=-1, keepdims=True)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


def make_quaternions_continuous(quaternions: np.ndarray) -> np.ndarray:
    """(T, ..., 4) quaternions -> the same rotations, each frame on the hemisphere of the last.

    q and -q are the same rotation; flipping so that consecutive frames have a positive dot
    product keeps Blender's per-channel interpolation from taking the long way round.
    """
    quaternions = np.array(quaternions, dtype=np.float64, copy=True)
    # Frame t flips when its dot product with frame t-1 as that one ends up is negative, i.e.
    # the flips' parity changes at each negative product of the raw frames: a running product,
    # no loop over frames. (A product of exactly 0, a half turn apart, keeps the parity: either
    # side is as near.)
    dots = np.sum(quaternions[1:] * quaternions[:-1], axis=-1, keepdims=True)
    signs = np.cumprod(np.where(dots < 0.0, -1.0, 1.0), axis=0)
    quaternions[1:] *= signs
    return quaternions


# --- forward kinematics -----------------------------------------------------------


def forward_kinematics(
    joint_rotations: np.ndarray,
    root_translation: np.ndarray,
    offsets: np.ndarray = REST_OFFSETS,
) -> tuple[np.ndarray, np.ndarray]:
    """World joint positions and orientations.

    Args:
        joint_rotations: (..., 24, 3, 3) local rotation matrices.
        root_translation: (..., 3) pelvis position, metres.
        offsets: (24, 3) rest offsets, metres.

    Returns:
        positions (..., 24, 3) metres and global rotations (..., 24, 3, 3).
    """
    joint_rotations = np.asarray(joint_rotations, dtype=np.float64)
    root_translation = np.asarray(root_translation, dtype=np.float64)
    batch = joint_rotations.shape[:-3]
    local = joint_rotations.reshape(-1, NUM_JOINTS, 3, 3)
    root = np.broadcast_to(root_translation, (*batch, 3)).reshape(-1, 3)
    global_rotations = np.empty_like(local)
    positions = np.empty((len(local), NUM_JOINTS, 3))
    # In blocks of frames: each joint reads its parent's block while it is still in the cache
    # (whole, a 10-minute dance took 5.6x the time of a 3-minute one; in blocks, 2.9x).
    for start in range(0, len(local), FK_BLOCK_FRAMES):
        block = slice(start, start + FK_BLOCK_FRAMES)
        _forward_kinematics_block(local[block], root[block], offsets, positions[block], global_rotations[block])
    return positions.reshape(*batch, NUM_JOINTS, 3), global_rotations.reshape(*batch, NUM_JOINTS, 3, 3)


def _forward_kinematics_block(
    local: np.ndarray, root: np.ndarray, offsets: np.ndarray, positions: np.ndarray, global_rotations: np.ndarray
) -> None:
    """forward_kinematics of (N, 24, 3, 3), (N, 3) into the given outputs."""
    global_rotations[:, 0] = local[:, 0]
    positions[:, 0] = root
    for joint in range(1, NUM_JOINTS):
        parent = PARENTS[joint]
        parent_rotation = global_rotations[:, parent]
        global_rotations[:, joint] = parent_rotation @ local[:, joint]
        positions[:, joint] = positions[:, parent] + np.einsum("nij,j->ni", parent_rotation, offsets[joint])


# --- SMPL (Y up) <-> Blender (Z up) -----------------------------------------------

# +90 degrees about X: (x, y, z)_SMPL -> (x, -z, y)_Blender. The body then faces -Y
# (Blender's front view), its left is +X and up is +Z.
SMPL_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
BLENDER_TO_SMPL = SMPL_TO_BLENDER.T


def points_to_blender(points: np.ndarray) -> np.ndarray:
    """(..., 3) points or vectors in SMPL's frame -> Blender's Z-up frame."""
    return np.asarray(points) @ SMPL_TO_BLENDER.T


def points_to_smpl(points: np.ndarray) -> np.ndarray:
    """(..., 3) points or vectors in Blender's Z-up frame -> SMPL's Y-up frame."""
    return np.asarray(points) @ BLENDER_TO_SMPL.T


def root_rotation_to_blender(root_rotation: np.ndarray) -> np.ndarray:
    """(..., 3, 3) global orientation in SMPL's frame -> the same body in Blender's frame.

    Pre-multiplying by the frame change turns the whole body; the local rotations of the
    other joints stay as they are.
    """
    return SMPL_TO_BLENDER @ np.asarray(root_rotation)


def root_rotation_to_smpl(root_rotation: np.ndarray) -> np.ndarray:
    """(..., 3, 3) global orientation in Blender's frame -> SMPL's frame."""
    return BLENDER_TO_SMPL @ np.asarray(root_rotation)
