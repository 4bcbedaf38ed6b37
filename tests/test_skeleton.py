"""The skeleton module against independent computations: SciPy, hand-worked FK, torch, smplx."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from bailando_blender import skeleton as sk
from models import kinematics

from .conftest import write_synthetic_smpl_model


@pytest.fixture
def rotations() -> Rotation:
    return Rotation.random(500, random_state=7)


def test_tables_match_the_reference() -> None:
    assert sk.NUM_JOINTS == 24 and len(sk.PARENTS) == 24 and sk.REST_OFFSETS.shape == (24, 3)
    assert all(parent < joint for joint, parent in enumerate(sk.PARENTS))
    assert sorted(sk.LOWER_JOINTS + sk.UPPER_JOINTS) == list(range(24))
    rest = sk.rest_positions()
    # The reference's check values: head y ~ +0.619, ankles ~ -0.896, toes ~ -0.956.
    assert rest[15, 1] == pytest.approx(0.619, abs=1e-3)
    assert rest[7, 1] == pytest.approx(-0.896, abs=1e-3) and rest[8, 1] == pytest.approx(-0.896, abs=2e-3)
    assert sk.REST_PELVIS_HEIGHT == pytest.approx(0.956, abs=1e-3)


def test_quaternions_match_scipy(rotations: Rotation) -> None:
    matrices = rotations.as_matrix()
    expected = rotations.as_quat(scalar_first=True, canonical=True)
    np.testing.assert_allclose(sk.matrix_to_quaternion(matrices), expected, atol=1e-12)
    np.testing.assert_allclose(sk.quaternion_to_matrix(expected), matrices, atol=1e-12)
    # Unnormalised and negated quaternions are the same rotations.
    np.testing.assert_allclose(sk.quaternion_to_matrix(-3.0 * expected), matrices, atol=1e-12)


def test_axis_angle_matches_scipy(rotations: Rotation) -> None:
    rotvecs = rotations.as_rotvec()
    np.testing.assert_allclose(sk.axis_angle_to_matrix(rotvecs), rotations.as_matrix(), atol=1e-12)
    np.testing.assert_allclose(sk.matrix_to_axis_angle(rotations.as_matrix()), rotvecs, atol=1e-9)
    np.testing.assert_allclose(
        sk.axis_angle_to_quaternion(rotvecs), rotations.as_quat(scalar_first=True, canonical=True), atol=1e-12
    )
    # Tiny angles stay accurate, zero is the identity.
    tiny = np.array([[1e-10, -2e-10, 3e-10], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(sk.quaternion_to_axis_angle(sk.axis_angle_to_quaternion(tiny)), tiny, atol=1e-16)


def test_matrix_to_quaternion_near_half_turns() -> None:
    half_turns = Rotation.from_rotvec(np.pi * np.eye(3) * (1 - 1e-9))
    np.testing.assert_allclose(
        sk.quaternion_to_matrix(sk.matrix_to_quaternion(half_turns.as_matrix())), half_turns.as_matrix(), atol=1e-9
    )


def test_6d_round_trip_and_column_convention(rotations: Rotation) -> None:
    matrices = rotations.as_matrix()
    six_d = sk.matrix_to_rotation_6d(matrices)
    np.testing.assert_array_equal(six_d[:, :3], matrices[:, :, 0])
    np.testing.assert_allclose(sk.rotation_6d_to_matrix(six_d), matrices, atol=1e-12)
    # Any non-degenerate 6D vector maps to a proper rotation.
    noisy = sk.rotation_6d_to_matrix(six_d * 3.0 + np.random.default_rng(0).normal(0, 0.1, six_d.shape))
    np.testing.assert_allclose(noisy @ np.swapaxes(noisy, 1, 2), np.broadcast_to(np.eye(3), noisy.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(noisy), 1.0, atol=1e-12)
    torch_matrices = kinematics.rotation_6d_to_matrix(torch.from_numpy(six_d))
    np.testing.assert_allclose(torch_matrices.numpy(), matrices, atol=1e-12)


def test_forward_kinematics_by_hand() -> None:
    rotations = np.broadcast_to(np.eye(3), (24, 3, 3)).copy()
    translation = np.array([0.5, 1.0, -2.0])
    positions, _ = sk.forward_kinematics(rotations, translation)
    np.testing.assert_allclose(positions, sk.rest_positions() + translation, atol=1e-12)

    # Bend the left elbow (18) 90 degrees about +Y: the wrist's rest offset (x, y, z)
    # turns to (z, y, -x) about the elbow; the elbow itself does not move.
    rotations[18] = Rotation.from_euler("y", 90, degrees=True).as_matrix()
    bent, _ = sk.forward_kinematics(rotations, np.zeros(3))
    rest = sk.rest_positions()
    np.testing.assert_allclose(bent[18], rest[18], atol=1e-12)
    x, y, z = sk.REST_OFFSETS[20]
    np.testing.assert_allclose(bent[20], rest[18] + [z, y, -x], atol=1e-12)

    # Turning the whole body (joint 0) 180 degrees about Y mirrors x and z of every joint.
    rotations = np.broadcast_to(np.eye(3), (24, 3, 3)).copy()
    rotations[0] = Rotation.from_euler("y", 180, degrees=True).as_matrix()
    turned, _ = sk.forward_kinematics(rotations, np.zeros(3))
    np.testing.assert_allclose(turned, rest * [-1, 1, -1], atol=1e-12)


def test_forward_kinematics_batched_numpy_equals_torch() -> None:
    rng = np.random.default_rng(3)
    rotations = Rotation.random(5 * 7 * 24, random_state=3).as_matrix().reshape(5, 7, 24, 3, 3)
    translation = rng.normal(size=(5, 7, 3))
    positions, global_rotations = sk.forward_kinematics(rotations, translation)
    assert positions.shape == (5, 7, 24, 3) and global_rotations.shape == (5, 7, 24, 3, 3)
    torch_positions = kinematics.forward_kinematics(torch.from_numpy(rotations), torch.from_numpy(translation))
    np.testing.assert_allclose(torch_positions.numpy(), positions, atol=1e-12)
    # Bone lengths never change, whatever the pose.
    lengths = np.linalg.norm(positions[..., 1:, :] - positions[..., list(sk.PARENTS[1:]), :], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(np.linalg.norm(sk.REST_OFFSETS[1:], axis=-1), lengths.shape))


def test_forward_kinematics_matches_smplx_on_a_synthetic_model(tmp_path) -> None:
    smplx = pytest.importorskip("smplx")
    (tmp_path / "smpl").mkdir()
    write_synthetic_smpl_model(tmp_path / "smpl")
    model = smplx.create(str(tmp_path), model_type="smpl", gender="neutral", batch_size=3)
    pose = Rotation.random(3 * 24, random_state=11).as_rotvec().reshape(3, 24, 3)
    translation = np.random.default_rng(5).normal(size=(3, 3))
    output = model(
        global_orient=torch.tensor(pose[:, 0], dtype=torch.float32),
        body_pose=torch.tensor(pose[:, 1:].reshape(3, -1), dtype=torch.float32),
        transl=torch.tensor(translation, dtype=torch.float32),
    )
    ours, _ = sk.forward_kinematics(sk.axis_angle_to_matrix(pose), translation)
    np.testing.assert_allclose(output.joints[:, :24].detach().numpy(), ours, atol=1e-5)
    np.testing.assert_allclose(output.vertices[:, :24].detach().numpy(), ours, atol=1e-5)


def test_blender_frame_conversion() -> None:
    # SMPL up (+Y) is Blender up (+Z); SMPL's facing (+Z) becomes Blender's -Y (front view).
    np.testing.assert_allclose(sk.points_to_blender([0, 1, 0]), [0, 0, 1])
    np.testing.assert_allclose(sk.points_to_blender([0, 0, 1]), [0, -1, 0])
    np.testing.assert_allclose(sk.points_to_blender([1, 0, 0]), [1, 0, 0])
    points = np.random.default_rng(1).normal(size=(10, 3))
    np.testing.assert_allclose(sk.points_to_smpl(sk.points_to_blender(points)), points)
    # Converting the root orientation turns the whole posed body like its points.
    rotations = Rotation.random(24, random_state=2).as_matrix()
    translation = np.array([0.1, 0.9, 0.3])
    positions, _ = sk.forward_kinematics(rotations, translation)
    converted = rotations.copy()
    converted[0] = sk.root_rotation_to_blender(rotations[0])
    # The rest offsets stay in the skeleton's own frame: the root conversion turns them.
    blender_positions, _ = sk.forward_kinematics(converted, sk.points_to_blender(translation))
    np.testing.assert_allclose(blender_positions, sk.points_to_blender(positions), atol=1e-12)
    np.testing.assert_allclose(sk.root_rotation_to_smpl(converted[0]), rotations[0], atol=1e-12)


def test_quaternion_continuity() -> None:
    quaternions = Rotation.from_euler("z", np.linspace(0, 4 * np.pi, 50)[:, None]).as_quat(
        scalar_first=True, canonical=True
    )
    continuous = sk.make_quaternions_continuous(quaternions)
    assert np.all(np.sum(continuous[1:] * continuous[:-1], axis=-1) > 0)
    np.testing.assert_allclose(sk.quaternion_to_matrix(continuous), sk.quaternion_to_matrix(quaternions), atol=1e-12)
    # Per joint, each frame on its own: random rotations of 24 joints, every second one negated.
    joints = Rotation.random(40 * 24, random_state=3).as_quat(scalar_first=True).reshape(40, 24, 4)
    joints[::2] *= -1
    continuous = sk.make_quaternions_continuous(joints)
    assert np.all(np.sum(continuous[1:] * continuous[:-1], axis=-1) >= 0)
    assert np.all(np.abs(np.abs(continuous) - np.abs(joints)) == 0)


def test_quaternion_product_composes_rotations_like_scipy() -> None:
    left, right = Rotation.random(50, random_state=1), Rotation.random(50, random_state=2)
    product = sk.quaternion_multiply(left.as_quat(scalar_first=True), right.as_quat(scalar_first=True))
    expected = (left * right).as_matrix()
    np.testing.assert_allclose(sk.quaternion_to_matrix(product), expected, atol=1e-12)
