"""Nothing under the floor: a sinking foot is raised by its own leg, the rest of the body left
where it was; what a leg cannot fix lifts the root."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from backend.floor_contact import FLOOR_GIVE_M, LEGS, keep_above_floor, lift_out
from bailando_blender.skeleton import FOOT_JOINTS, NUM_JOINTS, REST_PELVIS_HEIGHT, forward_kinematics

FRAMES = 60
LEFT_FOOT, RIGHT_FOOT = (7, 10), (8, 11)
RIGHT_HIP, LEFT_SHOULDER, LEFT_ELBOW = 2, 16, 18


def standing(frames: int = FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """The rest pose, feet on y = 0, for ``frames`` frames."""
    rotations = np.tile(np.eye(3), (frames, NUM_JOINTS, 1, 1))
    root = np.tile([0.0, REST_PELVIS_HEIGHT, 0.0], (frames, 1))
    return rotations, root


def sink(root: np.ndarray, depth_m: float, frames: slice) -> np.ndarray:
    """The root lowered by ``depth_m`` over ``frames``, smoothly in and out."""
    sunk = root.copy()
    span = np.arange(FRAMES)[frames]
    sunk[span, 1] -= depth_m * np.sin(np.linspace(0.0, np.pi, len(span)))
    return sunk


def test_sinking_feet_are_raised_by_their_legs_and_stay_where_they_were() -> None:
    rotations, root = standing()
    root = sink(root, 0.10, slice(15, 45))  # both feet 10 cm into the floor at the deepest
    before, before_global = forward_kinematics(rotations, root)
    assert before[..., 1].min() < -0.09
    fixed, fixed_root = keep_above_floor(rotations, root)
    after, after_global = forward_kinematics(fixed, fixed_root)
    assert after[..., 1].min() >= -FLOOR_GIVE_M - 1e-9  # nothing deeper than the floor's give
    np.testing.assert_allclose(fixed_root, root, atol=1e-9)  # the legs reached: the root untouched
    feet = list(FOOT_JOINTS)
    np.testing.assert_allclose(after[:, feet][..., [0, 2]], before[:, feet][..., [0, 2]], atol=1e-9)  # planted
    np.testing.assert_allclose(after_global[:, feet], before_global[:, feet], atol=1e-9)  # feet keep their turn
    assert np.all(after[:, feet, 1].min(axis=1) <= 1e-9)  # on the floor, not in the air
    upper = [joint for joint in range(NUM_JOINTS) if joint not in {1, 2, 4, 5, 7, 8, 10, 11}]
    np.testing.assert_array_equal(fixed[:, upper], rotations[:, upper])
    knees = np.degrees(Rotation.from_matrix(fixed[:, 4]).magnitude())
    assert knees.max() > 10 and np.all(knees[:10] == 0)  # bent where it sank, straight elsewhere


def test_only_the_sinking_leg_moves() -> None:
    rotations, root = standing()
    rotations[:, RIGHT_HIP] = Rotation.from_euler("x", -40, degrees=True).as_matrix()  # right leg raised
    root = sink(root, 0.06, slice(10, 50))
    fixed, fixed_root = keep_above_floor(rotations, root)
    after, _ = forward_kinematics(fixed, fixed_root)
    assert after[..., 1].min() >= -FLOOR_GIVE_M - 1e-9
    right_leg = next(leg for leg in LEGS if leg[0] == RIGHT_HIP)
    np.testing.assert_array_equal(fixed[:, list(right_leg)], rotations[:, list(right_leg)])
    np.testing.assert_allclose(fixed_root, root, atol=1e-9)


def test_a_hand_through_the_floor_lifts_the_root_smoothly() -> None:
    """A hand (no leg to bend) under the floor: the root rises just enough, and gradually."""
    rotations, root = standing()
    reach = Rotation.from_euler("z", -80, degrees=True).as_matrix()  # the left arm down, then further
    rotations[20:40, LEFT_SHOULDER] = reach
    rotations[20:40, LEFT_ELBOW] = reach
    root[20:40, 1] -= 0.6  # crouched so that the hand goes 5+ cm through the floor
    before, _ = forward_kinematics(rotations, root)
    assert before[..., 1].min() < -0.05
    fixed, fixed_root = keep_above_floor(rotations, root)
    after, _ = forward_kinematics(fixed, fixed_root)
    assert after[..., 1].min() >= -FLOOR_GIVE_M - 1e-9
    lift = fixed_root[:, 1] - root[:, 1]
    assert lift.min() >= 0 and lift[:10].max() == 0 and lift[50:].max() == 0


def test_the_give_keeps_the_deeper_foot_deeper_and_eases_in() -> None:
    depth = np.linspace(0.0, 0.1, 1001)  # to 10 cm (deeper, float rounding ties the residues)
    left = depth - lift_out(depth)  # how deep a joint stays
    assert np.all(left <= FLOOR_GIVE_M) and np.all(np.diff(left) > 0)  # the order of depths kept
    assert np.all(lift_out(depth) >= 0) and np.all(np.diff(lift_out(depth)) >= 0)
    assert lift_out(np.array([0.001]))[0] < 0.0001  # a graze is barely touched: no sudden stop
