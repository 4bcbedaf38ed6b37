"""Position -> SMPL rotation fitting (inverse kinematics by optimisation, batched in torch).

Given joint or marker positions over time and a map from SMPL joints to them, find the 24
local rotations, the root path and one skeleton scale per sequence whose forward
kinematics land on the targets. Bone lengths of captured markers wobble (Tang et al.'s by
about 10 %), so the skeleton keeps SMPL's proportions and the residual is reported; the
rotations are regularised toward temporal smoothness and, for joints no marker pins down
(twists, spine split, collars, hands), toward rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bailando_blender.skeleton import NUM_JOINTS, REST_OFFSETS
from models.kinematics import forward_kinematics, matrix_to_rotation_6d, rotation_6d_to_matrix


@dataclass(frozen=True)
class JointMap:
    """Which target rows each SMPL joint follows: ``targets[joint] = (rows averaged, weight)``."""

    targets: dict[int, tuple[tuple[int, ...], float]]
    name: str = "custom"

    def gather(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(T, M, 3) source positions -> (T, K, 3) targets, (K,) SMPL joints, (K,) weights."""
        joints = sorted(self.targets)
        targets = np.stack([positions[:, list(self.targets[j][0])].mean(axis=1) for j in joints], axis=1)
        weights = np.array([self.targets[j][1] for j in joints])
        return targets, np.array(joints), weights


# SMPL joints itself (e.g. Bailando's joint-position output): every joint, weight 1.
SMPL_JOINT_MAP = JointMap({joint: ((joint,), 1.0) for joint in range(NUM_JOINTS)}, name="smpl")


@dataclass
class FitConfig:
    iterations: int = 400
    learning_rate: float = 0.03
    smoothness_weight: float = 0.01  # on squared frame-to-frame change of the 6D rotations
    rest_weight: float = 1e-3  # on every rotation's distance from rest
    # Extra pull to rest for joints the markers say little about (spine split, collars, hands, head twist).
    weak_joints: tuple[int, ...] = (3, 6, 9, 13, 14, 15, 22, 23)
    weak_joint_weight: float = 0.02
    translation_smoothness_weight: float = 10.0
    scale_bounds: tuple[float, float] = (0.7, 1.3)  # skeleton scale relative to SMPL's neutral body
    # Each bone may also stretch within these bounds (markers sit on the skin, hip markers
    # wider apart than hip joints); rotations transfer to the plain SMPL skeleton afterwards.
    bone_scale_bounds: tuple[float, float] = (0.8, 1.25)
    bone_scale_weight: float = 0.01  # pull of each bone's log-scale toward 0
    device: str = "cpu"
    log_every: int = 0  # iterations between printed losses; 0 = silent


@dataclass
class FitResult:
    """joint_rotations (T, 24, 3, 3); root_translation (T, 3) metres in the unscaled SMPL body's
    units (each segment's fitted pelvis path divided by its ``scale``); mean position errors
    in metres per mapped joint (over all frames) and per segment."""

    joint_rotations: np.ndarray
    root_translation: np.ndarray
    scales: np.ndarray
    joint_error: dict[int, float]
    segment_error: np.ndarray
    mean_error: float


def initial_heading(targets: torch.Tensor, joints: list[int]) -> torch.Tensor:
    """(T,) yaw from the hips (left hip minus right hip is the body's +X), 0 if hips unmapped."""
    if 1 not in joints or 2 not in joints:
        return torch.zeros(targets.shape[0], dtype=targets.dtype, device=targets.device)
    left = targets[:, joints.index(1)] - targets[:, joints.index(2)]
    # +X (left) at heading h is (cos h, 0, -sin h).
    return torch.atan2(-left[:, 2], left[:, 0])


def fit_positions(
    positions: np.ndarray,
    joint_map: JointMap,
    config: FitConfig | None = None,
    segment_lengths: list[int] | None = None,
) -> FitResult:
    """Fit SMPL to (T, M, 3) positions in metres, SMPL's frame (Y up).

    ``segment_lengths`` splits the frames into independent sequences fitted in one batch
    (each with its own skeleton scale, no smoothness across their borders); default one.
    """
    config = config or FitConfig()
    device = torch.device(config.device)
    dtype = torch.float32
    targets_np, joints_np, weights_np = joint_map.gather(np.asarray(positions, dtype=np.float64))
    joints = joints_np.tolist()
    targets = torch.tensor(targets_np, dtype=dtype, device=device)
    weights = torch.tensor(weights_np, dtype=dtype, device=device)
    num_frames = targets.shape[0]
    lengths = segment_lengths or [num_frames]
    if sum(lengths) != num_frames or min(lengths) < 3:
        raise ValueError("segments must cover the frames, each at least three long")
    segment = torch.repeat_interleave(torch.arange(len(lengths), device=device), torch.tensor(lengths, device=device))
    same_as_next = (segment[1:] == segment[:-1]).to(dtype)
    same_as_both = (segment[2:] == segment[:-2]).to(dtype)

    heading = initial_heading(targets, joints)
    cos, sin, zero, one = heading.cos(), heading.sin(), torch.zeros_like(heading), torch.ones_like(heading)
    yaw = torch.stack(
        [torch.stack([cos, zero, sin], -1), torch.stack([zero, one, zero], -1), torch.stack([-sin, zero, cos], -1)], -2
    )
    init = torch.eye(3, dtype=dtype, device=device).expand(num_frames, NUM_JOINTS, 3, 3).clone()
    init[:, 0] = yaw
    rotation_6d = matrix_to_rotation_6d(init).requires_grad_(True)
    pelvis_row = joints.index(0) if 0 in joints else None
    start = targets[:, pelvis_row] if pelvis_row is not None else targets.mean(dim=1)
    translation = start.clone().requires_grad_(True)
    log_scale = torch.zeros(len(lengths), dtype=dtype, device=device, requires_grad=True)
    bone_log_scale = torch.zeros(len(lengths), NUM_JOINTS, dtype=dtype, device=device, requires_grad=True)
    bone_low, bone_high = np.log(config.bone_scale_bounds[0]), np.log(config.bone_scale_bounds[1])
    offsets = torch.tensor(REST_OFFSETS, dtype=dtype, device=device)
    rest_weights = torch.full((NUM_JOINTS,), config.rest_weight, dtype=dtype, device=device)
    rest_weights[list(config.weak_joints)] += config.weak_joint_weight
    rest_weights[0] = 0.0  # the global orientation is free
    identity_6d = matrix_to_rotation_6d(torch.eye(3, dtype=dtype, device=device))
    low, high = np.log(config.scale_bounds[0]), np.log(config.scale_bounds[1])

    def skeleton() -> tuple[torch.Tensor, torch.Tensor]:
        """(S,) scales, (T, 24, 3) offsets of each frame's segment."""
        scale = log_scale.clamp(low, high).exp()
        bones = bone_log_scale.clamp(bone_low, bone_high).exp()
        return scale, (offsets * (scale[:, None, None] * bones[:, :, None]))[segment]

    optimiser = torch.optim.Adam([rotation_6d, translation, log_scale, bone_log_scale], lr=config.learning_rate)
    for iteration in range(config.iterations):
        optimiser.zero_grad()
        _, scaled_offsets = skeleton()
        rotations = rotation_6d_to_matrix(rotation_6d)
        fitted = forward_kinematics(rotations, translation, scaled_offsets)[:, joints]
        position_loss = ((fitted - targets).pow(2).sum(-1) * weights).sum(-1).mean()
        smooth = ((rotation_6d[1:] - rotation_6d[:-1]).pow(2).sum(-1).sum(-1) * same_as_next).mean()
        acceleration = translation[2:] - 2 * translation[1:-1] + translation[:-2]
        translation_smooth = (acceleration.pow(2).sum(-1) * same_as_both).mean()
        rest = ((rotation_6d - identity_6d).pow(2).sum(-1) * rest_weights).sum(-1).mean()
        loss = (
            position_loss
            + config.bone_scale_weight * bone_log_scale.pow(2).sum(-1).mean()
            + config.smoothness_weight * smooth
            + config.translation_smoothness_weight * translation_smooth
            + rest
        )
        loss.backward()
        optimiser.step()
        if config.log_every and iteration % config.log_every == 0:
            print(f"  ik {iteration:4d}: loss {loss.item():.5f} position {position_loss.item():.5f}")

    with torch.no_grad():
        scales, scaled_offsets = skeleton()
        rotations = rotation_6d_to_matrix(rotation_6d)
        fitted = forward_kinematics(rotations, translation, scaled_offsets)[:, joints]
        frame_errors = (fitted - targets).norm(dim=-1)  # (T, K)
        joint_errors = frame_errors.mean(dim=0).cpu().numpy()
        segment_errors = torch.zeros(len(lengths), device=device).index_add_(0, segment, frame_errors.mean(dim=1))
        segment_errors = (segment_errors / torch.tensor(lengths, device=device)).cpu().numpy()
        root = translation / scales[segment][:, None]
    return FitResult(
        joint_rotations=rotations.cpu().numpy().astype(np.float64),
        root_translation=root.cpu().numpy().astype(np.float64),
        scales=scales.cpu().numpy(),
        joint_error={joint: float(error) for joint, error in zip(joints, joint_errors, strict=True)},
        segment_error=segment_errors,
        mean_error=float(frame_errors.mean()),
    )
