"""Training-side pieces that run on a CPU in seconds: IK fitting, mirroring, data alignment."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from bailando_blender import skeleton as sk
from training.ik import SMPL_JOINT_MAP, FitConfig, fit_positions
from training.prepare_data import aligned_features, mirror_motion


def known_dance(num_frames: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Smoothly varying moderate poses, and a pelvis path."""
    t = np.linspace(0, 1, num_frames)[:, None, None]
    axes = np.random.default_rng(4).normal(0, 0.35, (1, 24, 3))
    rotations = Rotation.from_rotvec((axes * np.sin(2 * t + 0.3)).reshape(-1, 3)).as_matrix()
    translation = np.stack([0.3 * t[:, 0, 0], 0.95 + 0.02 * t[:, 0, 0], -0.2 * t[:, 0, 0]], axis=1)
    return rotations.reshape(num_frames, 24, 3, 3), translation


def test_fitting_recovers_positions_of_a_known_pose_sequence() -> None:
    rotations, translation = known_dance()
    positions, _ = sk.forward_kinematics(rotations, translation)
    result = fit_positions(positions, SMPL_JOINT_MAP, FitConfig(iterations=600, learning_rate=0.05))
    fitted, _ = sk.forward_kinematics(result.joint_rotations, result.root_translation)
    error = np.linalg.norm(fitted - positions, axis=-1)
    # On its own fitted skeleton within 1 cm; on the plain SMPL body (bones back to their
    # rest lengths) within 3 cm.
    assert result.mean_error < 0.01 and error.mean() < 0.03
    assert abs(result.scales[0] - 1.0) < 0.03


def test_fitting_batches_independent_segments_with_their_own_scale() -> None:
    rotations, translation = known_dance()
    positions, _ = sk.forward_kinematics(rotations, translation)
    bigger = positions * 1.15  # a taller dancer, same dance
    result = fit_positions(
        np.concatenate([positions, bigger]),
        SMPL_JOINT_MAP,
        FitConfig(iterations=600, learning_rate=0.05),
        segment_lengths=[len(positions), len(bigger)],
    )
    assert result.segment_error.shape == (2,) and np.all(result.segment_error < 0.015)
    assert result.scales[1] / result.scales[0] > 1.08


def test_mirroring_twice_is_the_identity_and_reflects_the_path() -> None:
    rotations, translation = known_dance(10)
    mirrored_rotations, mirrored_translation = mirror_motion(rotations, translation)
    np.testing.assert_allclose(mirrored_translation[:, 0], -translation[:, 0])
    back_rotations, back_translation = mirror_motion(mirrored_rotations, mirrored_translation)
    np.testing.assert_allclose(back_rotations, rotations, atol=1e-12)
    np.testing.assert_allclose(back_translation, translation)
    # A proper rotation stays proper, and the left elbow's bend becomes the right elbow's.
    np.testing.assert_allclose(np.linalg.det(mirrored_rotations), 1.0, atol=1e-12)
    reflect = np.diag([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(mirrored_rotations[:, 19], reflect @ rotations[:, 18] @ reflect, atol=1e-12)


def test_music_rows_follow_the_motions_start_in_the_song() -> None:
    features = np.arange(100, dtype=np.float32)[:, None].repeat(3, axis=1)
    aligned = aligned_features(features, offset_s=1.0, num_frames=80)  # 1 s = 30 rows at 30 fps
    np.testing.assert_array_equal(aligned[:70, 0], np.arange(30, 100))
    np.testing.assert_array_equal(aligned[70:, 0], 99)  # the song ran out: its last row holds
