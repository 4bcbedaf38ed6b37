"""Dance quality measures on joint positions (pure numpy).

Positions are (T, 24, 3) metres in SMPL's frame (Y up, floor at y = 0) at ``fps``.
Definitions follow the field's (see the README's metric section): BAS as Bailando's released
evaluation code computes it, the rest as plain physical quantities.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from backend.beat_reward import FOOT_CONTACT_HEIGHT_M, FROZEN_SPEED_M_S
from bailando_blender.skeleton import FOOT_JOINTS

BAS_FPS = 60.0  # Bailando measured beat alignment at 60 fps
BAS_SMOOTHING_FRAMES = 5.0  # Gaussian sigma on the kinetic velocity, frames at BAS_FPS
BAS_SIGMA_FRAMES = 3.0  # tolerance of a beat hit, frames at BAS_FPS (50 ms)
EVALUATION_FPS = 30.0  # speeds, jerk and skating are measured at this rate
PFC_FPS = 30.0  # EDGE computes PFC at 30 fps
PFC_SCALE = 1e4  # EDGE reports PFC times 10^4
HYPEREXTENSION_DEG = 10.0  # a knee or elbow bent backwards past this counts as a violation
KNEES = (4, 5)  # left, right
ELBOWS = (18, 19)  # left, right
SUNK_DEPTH_M = 0.01  # a joint deeper than this under the floor shows (the goal: none, every frame)


def resample_positions(positions: np.ndarray, fps: float, target_fps: float) -> np.ndarray:
    """(T, J, 3) at fps -> linearly interpolated frames at target_fps over the same span."""
    times = np.arange(positions.shape[0]) / fps
    count = int(np.floor(times[-1] * target_fps)) + 1
    new_times = np.arange(count) / target_fps
    flat = positions.reshape(positions.shape[0], -1)
    out = np.stack([np.interp(new_times, times, flat[:, i]) for i in range(flat.shape[1])], axis=1)
    return out.reshape(count, *positions.shape[1:])


def motion_beats(positions: np.ndarray, fps: float) -> np.ndarray:
    """Frame indices (at BAS_FPS) of the local minima of the smoothed kinetic velocity."""
    at_bas_rate = resample_positions(positions, fps, BAS_FPS)
    velocity = np.linalg.norm(np.diff(at_bas_rate, axis=0), axis=-1).mean(axis=1)
    smooth = gaussian_filter1d(velocity, BAS_SMOOTHING_FRAMES)
    return np.flatnonzero((smooth[1:-1] < smooth[:-2]) & (smooth[1:-1] < smooth[2:])) + 1


def beat_alignment_score(positions: np.ndarray, fps: float, beat_times: np.ndarray) -> float:
    """Mean over music beats of exp(-d^2 / (2 sigma^2)), d the distance to the nearest motion beat."""
    beats = np.asarray(beat_times) * BAS_FPS
    duration_frames = (positions.shape[0] - 1) / fps * BAS_FPS
    beats = beats[beats <= duration_frames]
    kinetic = motion_beats(positions, fps)
    if beats.size == 0 or kinetic.size == 0:
        return 0.0
    distance = np.abs(beats[:, None] - kinetic[None, :]).min(axis=1)
    return float(np.mean(np.exp(-(distance**2) / (2 * BAS_SIGMA_FRAMES**2))))


def joint_speeds(positions: np.ndarray, fps: float) -> np.ndarray:
    """(T-1,) mean joint speed per frame, m/s, at EVALUATION_FPS."""
    resampled = resample_positions(positions, fps, EVALUATION_FPS)
    return np.linalg.norm(np.diff(resampled, axis=0), axis=-1).mean(axis=1) * EVALUATION_FPS


def mean_jerk(positions: np.ndarray, fps: float) -> float:
    """Mean norm of the third time derivative of joint positions, m/s^3, at EVALUATION_FPS."""
    resampled = resample_positions(positions, fps, EVALUATION_FPS)
    return float(np.linalg.norm(np.diff(resampled, n=3, axis=0), axis=-1).mean() * EVALUATION_FPS**3)


def foot_skating(positions: np.ndarray, fps: float) -> float:
    """Mean horizontal speed (m/s) of the lowest foot joint while within FOOT_CONTACT_HEIGHT_M of the floor."""
    resampled = resample_positions(positions, fps, EVALUATION_FPS)
    feet = resampled[:, list(FOOT_JOINTS)]
    lowest = feet[..., 1].argmin(axis=1)
    rows = np.arange(len(feet))
    horizontal = np.diff(feet[..., [0, 2]], axis=0)
    speed = np.linalg.norm(horizontal[rows[:-1], lowest[:-1]], axis=-1) * EVALUATION_FPS
    contact = feet[rows[:-1], lowest[:-1], 1] < FOOT_CONTACT_HEIGHT_M
    return float(speed[contact].mean()) if contact.any() else 0.0


def longest_frozen_s(positions: np.ndarray, fps: float) -> float:
    """Longest run (s) with mean joint speed under FROZEN_SPEED_M_S."""
    frozen = joint_speeds(positions, fps) < FROZEN_SPEED_M_S
    longest = run = 0
    for still in frozen:
        run = run + 1 if still else 0
        longest = max(longest, run)
    return longest / EVALUATION_FPS


def physical_foot_contact(positions: np.ndarray, fps: float) -> float:
    """EDGE's PFC (lower is better): mean over time of the root's normalised acceleration (its
    upward part clamped to >= 0) times each foot's smaller horizontal joint displacement per
    frame (ankle or toes), left times right, at PFC_FPS, scaled by PFC_SCALE.

    The body may only accelerate while a foot is still: a root pushed around with both feet
    sliding scores high, a planted stance scores 0.
    """
    joints = resample_positions(positions, fps, PFC_FPS)
    root_velocity = np.diff(joints[:, 0], axis=0) * PFC_FPS
    root_acceleration = np.diff(root_velocity, axis=0) * PFC_FPS
    root_acceleration[:, 1] = np.maximum(root_acceleration[:, 1], 0.0)
    magnitude = np.linalg.norm(root_acceleration, axis=-1)
    if magnitude.max() <= 0:
        return 0.0
    magnitude /= magnitude.max()
    feet = joints[:, list(FOOT_JOINTS)][..., [0, 2]]  # left ankle, left toes, right ankle, right toes
    displacement = np.linalg.norm(feet[2:] - feet[1:-1], axis=-1)
    left = np.minimum(displacement[:, 0], displacement[:, 1])
    right = np.minimum(displacement[:, 2], displacement[:, 3])
    return float(np.mean(left * right * magnitude) * PFC_SCALE)


def ground_penetration(positions: np.ndarray) -> tuple[float, float]:
    """(max, mean) over frames of how far the lowest joint is below the floor, metres."""
    depth = np.maximum(0.0, -positions[..., 1].min(axis=1))
    return float(depth.max()), float(depth.mean())


def sunk_share(positions: np.ndarray, depth_m: float = SUNK_DEPTH_M) -> float:
    """Share of frames in which a joint is more than ``depth_m`` under the floor."""
    return float(np.mean(positions[..., 1].min(axis=1) < -depth_m))


def hinge_flexion_deg(joint_rotations: np.ndarray) -> dict[str, np.ndarray]:
    """(T,) signed flexion of each knee and elbow from (T, 24, 3, 3) local rotations, degrees.

    In SMPL's rest pose the shins hang along -Y and the forearms point along +X (left) and
    -X (right). A knee flexes when its shin swings back (-Z), an elbow when its forearm swings
    forward (+Z); negative angles bend the hinge the wrong way.
    """
    angles = {}
    for side, knee in zip(("left", "right"), KNEES, strict=True):
        shin = joint_rotations[:, knee] @ np.array([0.0, -1.0, 0.0])
        angles[f"{side}_knee"] = np.degrees(np.arctan2(-shin[:, 2], -shin[:, 1]))
    for side, elbow, outward in zip(("left", "right"), ELBOWS, (1.0, -1.0), strict=True):
        forearm = joint_rotations[:, elbow] @ np.array([outward, 0.0, 0.0])
        angles[f"{side}_elbow"] = np.degrees(np.arctan2(forearm[:, 2], outward * forearm[:, 0]))
    return angles


def joint_limit_violations(joint_rotations: np.ndarray) -> float:
    """Fraction of frames with a knee or elbow bent backwards past HYPEREXTENSION_DEG."""
    angles = np.stack(list(hinge_flexion_deg(joint_rotations).values()), axis=1)
    return float(np.mean((angles < -HYPEREXTENSION_DEG).any(axis=1)))


def summary(positions: np.ndarray, fps: float, beat_times: np.ndarray) -> dict[str, float]:
    return {
        "bas": beat_alignment_score(positions, fps, beat_times),
        "joint_speed_m_s": float(joint_speeds(positions, fps).mean()),
        "jerk_m_s3": mean_jerk(positions, fps),
        "foot_skating_m_s": foot_skating(positions, fps),
        "longest_frozen_s": longest_frozen_s(positions, fps),
        "pfc": physical_foot_contact(positions, fps),
        "penetration_max_m": ground_penetration(positions)[0],
        "sunk_share": sunk_share(positions),
        "root_max_distance_m": float(np.linalg.norm(positions[:, 0, [0, 2]] - positions[0, 0, [0, 2]], axis=1).max()),
    }
