"""Nothing under the floor: a foot that sinks is raised by bending its leg, anything else by the root.

The floor (``beat_reward.floor_height``) sits at a low percentile of the lowest joint, so that a
jump stays in the air and one odd frame does not sink the whole dance; in the frames under that
percentile a foot goes through the stage (up to 14 cm in a 3-minute dance before this module).

Per leg and frame, the foot's lowest point (ankle or toes) is lifted to within FLOOR_GIVE_M of
the floor (``lift_out``), so the foot lands and stays there while the dance would have sunk it:
the ankle's target is straight above where it was, and two-bone IK finds the knee in the plane of the
hip, the new ankle and the old knee (the knee bends the way it bent). The foot keeps its
orientation and its horizontal path, so a planted foot stays where it was and the other leg and
the root are untouched. Whatever is still under the floor after that (a knee, a hand, a leg
straight, which cannot be shortened) lifts the root by what is deeper than FLOOR_GIVE_M.
"""

from __future__ import annotations

import numpy as np

from bailando_blender.retarget import rotation_between
from bailando_blender.skeleton import PARENTS, REST_OFFSETS, forward_kinematics

# (hip, knee, ankle, toes) of each leg, SMPL's joint indices.
LEGS = ((1, 4, 7, 10), (2, 5, 8, 11))
# The floor gives this much, metres: a joint d under it is raised to GIVE * (1 - exp(-d / GIVE))
# under it, never deeper than GIVE (the goal is 1 cm). The give keeps which of two sinking feet
# is the lower (lifting both to exactly 0 made a tie of them: the lowest foot, whose sliding
# counts as skating, became the other one) and eases a foot onto the floor instead of stopping it.
FLOOR_GIVE_M = 0.009


def lift_out(depth: np.ndarray) -> np.ndarray:
    """(T,) depths under the floor (>= 0, metres) -> (T,) lifts that leave each at most
    FLOOR_GIVE_M under it, the deeper still the deeper (a smooth, increasing map)."""
    return depth - FLOOR_GIVE_M * (1.0 - np.exp(-depth / FLOOR_GIVE_M))


def raise_foot(
    joint_rotations: np.ndarray,
    positions: np.ndarray,
    global_rotations: np.ndarray,
    leg: tuple[int, int, int, int],
    lift: np.ndarray,
) -> np.ndarray:
    """The rotations with ``leg``'s ankle raised by ``lift`` (T,) metres (straight up, the foot's
    orientation kept) where lift > 0, by turning the hip and the knee; returns the new
    (T, 24, 3, 3) local rotations (the leg's hip, knee and ankle changed)."""
    hip, knee, ankle, _ = leg
    frames = np.flatnonzero(lift > 0)
    rotations = joint_rotations.copy()
    if frames.size == 0:
        return rotations
    thigh_length = np.linalg.norm(REST_OFFSETS[knee])
    shin_length = np.linalg.norm(REST_OFFSETS[ankle])
    hip_at, knee_at = positions[frames, hip], positions[frames, knee]
    ankle_to = positions[frames, ankle] + lift[frames, None] * np.array([0.0, 1.0, 0.0])
    reach = ankle_to - hip_at
    distance = np.linalg.norm(reach, axis=-1)
    longest, shortest = thigh_length + shin_length, abs(thigh_length - shin_length) + 1e-4
    distance_used = np.clip(distance, shortest, longest)
    toward = reach / np.maximum(distance, 1e-9)[:, None]
    ankle_to = hip_at + toward * distance_used[:, None]  # out of reach: as near as the leg gets
    # The knee: in the plane of hip, new ankle and old knee, at the two bones' lengths.
    pole = knee_at - hip_at
    pole -= np.sum(pole * toward, axis=-1, keepdims=True) * toward
    pole /= np.maximum(np.linalg.norm(pole, axis=-1, keepdims=True), 1e-9)
    along = (thigh_length**2 - shin_length**2 + distance_used**2) / (2 * distance_used)
    across = np.sqrt(np.maximum(thigh_length**2 - along**2, 0.0))
    knee_to = hip_at + along[:, None] * toward + across[:, None] * pole
    hip_turn = rotation_between(knee_at - hip_at, knee_to - hip_at)
    shin = (hip_turn @ (positions[frames, ankle] - knee_at)[..., None])[..., 0]
    knee_turn = rotation_between(shin, ankle_to - knee_to)
    hip_global = hip_turn @ global_rotations[frames, hip]
    knee_global = knee_turn @ hip_turn @ global_rotations[frames, knee]
    parent_global = global_rotations[frames, PARENTS[hip]]
    rotations[frames, hip] = np.swapaxes(parent_global, 1, 2) @ hip_global
    rotations[frames, knee] = np.swapaxes(hip_global, 1, 2) @ knee_global
    rotations[frames, ankle] = np.swapaxes(knee_global, 1, 2) @ global_rotations[frames, ankle]
    return rotations


def keep_above_floor(joint_rotations: np.ndarray, root_translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 24, 3, 3) local rotations, (T, 3) root (the floor at y = 0) -> both with no joint more
    than FLOOR_GIVE_M under the floor: each sinking foot raised by its leg, then the root lifted
    for what is left."""
    positions, global_rotations = forward_kinematics(joint_rotations, root_translation)
    rotations = joint_rotations
    for leg in LEGS:
        depth = np.maximum(0.0, -positions[:, list(leg[2:]), 1].min(axis=1))
        rotations = raise_foot(rotations, positions, global_rotations, leg, lift_out(depth))
    positions, _ = forward_kinematics(rotations, root_translation)
    depth = np.maximum(0.0, -positions[..., 1].min(axis=1) - FLOOR_GIVE_M)  # what the legs could not reach
    lifted = root_translation.copy()
    lifted[:, 1] += depth
    return rotations, lifted
