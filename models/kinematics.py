"""Rotation conversions and SMPL forward kinematics in torch, for training losses.

Same conventions as ``bailando_blender.skeleton`` (its numpy twin): 6D = the first two
columns of the rotation matrix; SMPL frame, Y up, metres.
"""

from __future__ import annotations

import torch

from bailando_blender.skeleton import NUM_JOINTS, PARENTS, REST_OFFSETS


def rotation_6d_to_matrix(rotation_6d: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt; differentiable."""
    a1, a2 = rotation_6d[..., :3], rotation_6d[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns."""
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def forward_kinematics(
    joint_rotations: torch.Tensor, root_translation: torch.Tensor, offsets: torch.Tensor | None = None
) -> torch.Tensor:
    """(..., 24, 3, 3) local rotations, (..., 3) pelvis position -> (..., 24, 3) joint positions.

    ``offsets``: (24, 3) rest offsets in metres, or (..., 24, 3) per frame (a skeleton per sequence).
    """
    if offsets is None:
        offsets = torch.as_tensor(REST_OFFSETS, dtype=joint_rotations.dtype, device=joint_rotations.device)
    global_rotations = [joint_rotations[..., 0, :, :]]
    positions = [root_translation]
    for joint in range(1, NUM_JOINTS):
        parent = PARENTS[joint]
        global_rotations.append(global_rotations[parent] @ joint_rotations[..., joint, :, :])
        offset = offsets[..., joint, :].unsqueeze(-1)
        positions.append(positions[parent] + (global_rotations[parent] @ offset).squeeze(-1))
    return torch.stack(positions, dim=-2)
