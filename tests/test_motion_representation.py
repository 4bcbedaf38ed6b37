"""Motion <-> VQ-VAE streams: a turning, travelling dance survives the round trip."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from backend.motion_representation import LOWER_DIM, UPPER_DIM, decode_motion, encode_motion, yaw_matrix
from bailando_blender.skeleton import REST_PELVIS_HEIGHT


def turning_dance(num_frames: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(num_frames) / 30.0
    heading = 1.0 + 2.5 * t  # turns past +-pi: unwrapping must hold
    rotations = Rotation.from_rotvec(rng.normal(0, 0.4, (num_frames * 24, 3))).as_matrix().reshape(num_frames, 24, 3, 3)
    tilt = Rotation.from_rotvec(np.stack([0.2 * np.sin(3 * t), 0 * t, 0 * t], 1)).as_matrix()  # pitch only
    rotations[:, 0] = yaw_matrix(heading) @ tilt
    translation = np.stack([np.cos(t), 0.9 + 0.05 * np.sin(6 * t), np.sin(t)], 1)
    return rotations, translation, heading


def test_shapes() -> None:
    rotations, translation, _ = turning_dance()
    upper, lower = encode_motion(rotations, translation)
    assert upper.shape == (120, UPPER_DIM) == (120, 90) and lower.shape == (120, LOWER_DIM) == (120, 58)
    assert upper.dtype == np.float32


def test_round_trip_keeps_rotations_heading_and_path() -> None:
    rotations, translation, heading = turning_dance()
    upper, lower = encode_motion(rotations, translation)
    decoded_rotations, decoded_translation = decode_motion(upper, lower, start_heading=heading[0])
    np.testing.assert_allclose(decoded_rotations, rotations, atol=2e-5)
    np.testing.assert_allclose(decoded_translation[:, 1], translation[:, 1], atol=1e-6)
    np.testing.assert_allclose(
        decoded_translation[:, [0, 2]], translation[:, [0, 2]] - translation[0, [0, 2]], atol=1e-5
    )


def test_root_numbers_are_body_relative() -> None:
    rotations, translation, _ = turning_dance()
    _, lower = encode_motion(rotations, translation)
    root = lower[:, -4:]
    np.testing.assert_allclose(root[:-1, 0], 2.5 / 30.0, atol=1e-6)  # heading velocity, rad/frame
    np.testing.assert_allclose(root[:, 3], translation[:, 1] - REST_PELVIS_HEIGHT, atol=1e-6)
    # The same dance turned and moved elsewhere encodes to the same streams.
    offset_yaw = yaw_matrix(np.array(2.0))
    moved_rotations = rotations.copy()
    moved_rotations[:, 0] = offset_yaw @ rotations[:, 0]
    moved_translation = translation @ offset_yaw.T + [3.0, 0.0, -1.0]
    _, moved_lower = encode_motion(moved_rotations, moved_translation)
    np.testing.assert_allclose(moved_lower, lower, atol=1e-5)
