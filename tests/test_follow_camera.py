"""The following camera (pure numpy): fill, every keypoint in frame, smooth, level, no lag."""

from __future__ import annotations

import numpy as np

from bailando_blender import follow_camera as fc
from bailando_blender.projection import CameraModel, project

FPS, WIDTH, HEIGHT = 30.0, 512, 896


def walking_dancer(seconds: float = 12.0, seed: int = 0) -> np.ndarray:
    """(T, 20, 3) points of a 1.7-m figure crossing 3 m sideways and back, swaying each step,
    swinging its arms out, crouching now and then."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * FPS)) / FPS
    base = rng.normal(0.0, 0.12, (20, 3))
    base[:, 2] = np.linspace(0.0, 1.7, 20)
    points = np.tile(base, (len(t), 1, 1))
    points[..., 0] += (1.5 * np.sin(2 * np.pi * t / seconds) + 0.08 * np.sin(2 * np.pi * 2.0 * t))[:, None]
    points[..., 1] += 0.5 * np.sin(2 * np.pi * t / 7.0)[:, None]  # towards and away from the camera
    arms = slice(12, 16)
    points[:, arms, 0] += (0.3 * np.abs(np.sin(2 * np.pi * 0.5 * t)))[:, None] * np.sign(base[arms, 0])
    crouch = 1.0 - 0.25 * np.clip(np.sin(2 * np.pi * t / 5.0), 0.0, None)
    points[..., 2] *= crouch[:, None]
    return points


def pixels_of(points: np.ndarray, path: fc.CameraPath) -> np.ndarray:
    camera = CameraModel(
        np.linalg.inv(path.matrices), False, path.lens_mm, 1.0, path.sensor_mm, 24.0, "AUTO", 0.0, 0.0, WIDTH, HEIGHT
    )
    return project(points, camera)[0]


def test_the_body_fills_the_frame_and_stays_in_it() -> None:
    points = walking_dancer()
    path = fc.follow_path(points, np.array([0.0, -1.0, 0.0]), FPS, WIDTH, HEIGHT)
    framing = fc.framing(pixels_of(points, path), WIDTH, HEIGHT, path.matrices[:, :3, 3], FPS)
    assert framing.inside.all()
    assert 0.65 <= np.median(framing.fill) <= fc.DEFAULT_FILL + 0.02
    assert framing.acceleration_m_s2 < 2.0
    still = fc.follow_path(points[:1].repeat(len(points), axis=0), np.array([0.0, -1.0, 0.0]), FPS, WIDTH, HEIGHT)
    assert np.ptp(still.matrices[:, :3, 3], axis=0).max() < 1e-9  # a dancer standing still: a still camera


def test_level_facing_the_dancer_and_without_lag() -> None:
    points = walking_dancer()
    facing = np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)
    path = fc.follow_path(points, facing, FPS, WIDTH, HEIGHT)
    rotation = path.matrices[:, :3, :3]
    np.testing.assert_allclose(rotation, np.broadcast_to(rotation[0], rotation.shape), atol=1e-12)  # never turns
    np.testing.assert_allclose(rotation[0][:, 1], [0.0, 0.0, 1.0], atol=1e-12)  # level
    np.testing.assert_allclose(rotation[0][:, 2], facing, atol=1e-12)  # in front of the dancer, looking back
    # Zero-phase smoothing: the aim is as often ahead of the body's centre as behind it (a
    # lagging camera would trail it all the way across).
    right = rotation[0][:, 0]
    offset = (path.matrices[:, :3, 3] - points.mean(axis=1)) @ right
    velocity = np.gradient(points.mean(axis=1) @ right)
    assert abs(np.corrcoef(offset[30:-30], velocity[30:-30])[0, 1]) < 0.3


def test_smoothing_keeps_a_slow_path_and_the_ends() -> None:
    ramp = np.linspace(0.0, 3.0, 300)
    np.testing.assert_allclose(fc.smoothed(ramp, 18.0)[60:-60], ramp[60:-60], atol=1e-9)
    assert fc.smoothed(np.ones(10), 5.0) == pytest_approx_ones(10)
    np.testing.assert_array_equal(fc.running_max(np.array([0.0, 3.0, 0.0, 0.0, 1.0]), 1), [3.0, 3.0, 3.0, 1.0, 1.0])


def pytest_approx_ones(count: int):
    import pytest

    return pytest.approx(np.ones(count))


def test_the_quality_report_measures_the_framing_of_a_dance() -> None:
    from bailando_blender.skeleton import REST_PELVIS_HEIGHT, axis_angle_to_matrix
    from training.quality_report import motion_from, pass_framing

    frames = 90
    rng = np.random.default_rng(2)
    t = np.arange(frames)[:, None, None] / FPS
    rotations = axis_angle_to_matrix(0.3 * np.sin(2 * np.pi * t + rng.uniform(0, 6.3, (1, 24, 3))))
    translation = np.zeros((frames, 3))
    translation[:, 0] = np.linspace(0.0, 1.5, frames)  # crossing the stage
    translation[:, 1] = REST_PELVIS_HEIGHT
    framing = pass_framing(motion_from(rotations, translation))
    assert framing.fill.shape == (frames,) and framing.inside.all()
    assert 0.3 < np.median(framing.fill) <= fc.DEFAULT_FILL + 0.02  # random arms spread wide: the width rules
