"""Each metric on constructed motions whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bailando_blender import skeleton as sk
from training import dance_features, metrics


def standing(num_frames: int) -> np.ndarray:
    rest = sk.rest_positions()
    rest[:, 1] += sk.REST_PELVIS_HEIGHT
    return np.repeat(rest[None], num_frames, axis=0)


def bobbing(num_frames: int, fps: float, beat_times: np.ndarray) -> np.ndarray:
    """The body moves between beats and stops exactly on each beat (speed |sin| with zeros on beats)."""
    t = np.arange(num_frames) / fps
    period = np.diff(beat_times).mean()
    # A quarter of a 60 fps frame off the grid: two equal speeds either side of a beat would
    # make a flat minimum, which the strict local-minimum rule (Bailando's) does not count.
    phase = (t - beat_times[0] - 1 / 240) / period
    height = 0.05 * (phase - np.sin(2 * np.pi * phase) / (2 * np.pi))  # speed ~ 1 - cos: zero on beats
    positions = standing(num_frames)
    positions[..., 1] += height[:, None] - height.min()
    return positions


def test_a_statue_freezes_and_never_skates() -> None:
    statue = standing(300)
    assert metrics.longest_frozen_s(statue, 30.0) == pytest.approx(299 / 30)
    assert metrics.joint_speeds(statue, 30.0).max() == 0.0
    assert metrics.mean_jerk(statue, 30.0) == 0.0
    assert metrics.foot_skating(statue, 30.0) == 0.0


def test_moving_exactly_between_beats_scores_the_maximum() -> None:
    fps, beats = 30.0, np.arange(1.0, 9.5, 0.5)  # from 1 s: the smoothing needs motion before a beat
    aligned = bobbing(300, fps, beats)
    assert metrics.beat_alignment_score(aligned, fps, beats) == pytest.approx(1.0)
    # The same motion half a beat late misses every beat by 15 frames at 60 fps.
    assert metrics.beat_alignment_score(aligned, fps, beats + 0.25) < 0.05
    assert metrics.longest_frozen_s(aligned, fps) < 0.5  # it slows to a stop on each beat only
    # Jitter finds a velocity minimum near any beat by chance: BAS alone rewards it.
    noisy = aligned + np.random.default_rng(0).normal(0, 0.02, aligned.shape)
    assert metrics.beat_alignment_score(noisy, fps, beats + 0.25) > 0.05  # the clean miss scores < 0.05


def test_skating_is_the_sliding_speed_of_a_grounded_foot() -> None:
    sliding = standing(91)
    sliding[..., 0] += np.linspace(0, 3.0, 91)[:, None]  # 1 m/s for 3 s at 30 fps
    sliding[..., 1] -= sliding[:, list(sk.FOOT_JOINTS), 1].min()
    assert metrics.foot_skating(sliding, 30.0) == pytest.approx(1.0, rel=1e-6)
    lifted = sliding.copy()
    lifted[..., 1] += 0.5
    assert metrics.foot_skating(lifted, 30.0) == 0.0


def test_jerk_of_a_cubic_path() -> None:
    t = np.arange(120) / 30.0
    moving = standing(120)
    moving[..., 2] += (2.0 * t**3)[:, None]  # third derivative 12 m/s^3 everywhere
    assert metrics.mean_jerk(moving, 30.0) == pytest.approx(12.0, rel=1e-6)
    assert metrics.mean_jerk(metrics.resample_positions(moving, 30.0, 60.0), 60.0) == pytest.approx(12.0, rel=1e-3)


# --- PFC, penetration, joint limits -------------------------------------------------


def test_pfc_is_zero_when_the_feet_are_planted_and_high_when_the_body_slides() -> None:
    frames = 90
    still = standing(frames)
    assert metrics.physical_foot_contact(still, 30.0) == 0.0
    # The whole body accelerates sideways: both feet slide while the root accelerates.
    t = np.arange(frames) / 30.0
    sliding = still + (0.5 * t**2)[:, None, None] * np.array([1.0, 0.0, 0.0])
    assert metrics.physical_foot_contact(sliding, 30.0) > 1.0
    # The root bobs up and down but the feet never move: no penalty.
    bobbing = still.copy()
    bobbing[:, [0, 3, 6, 9, 12, 15]] += (0.05 * np.sin(2 * np.pi * t))[:, None, None] * np.array([0.0, 1.0, 0.0])
    assert metrics.physical_foot_contact(bobbing, 30.0) == 0.0


def test_ground_penetration_measures_how_deep_the_lowest_joint_goes() -> None:
    body = standing(10)
    body[..., 1] -= body[..., 1].min()
    body[5, :, 1] -= 0.1
    deepest, mean = metrics.ground_penetration(body)
    assert deepest == pytest.approx(0.1) and mean == pytest.approx(0.01)
    assert metrics.sunk_share(body) == pytest.approx(0.1)
    body[6, :, 1] -= 0.005  # half a centimetre under: not counted
    assert metrics.sunk_share(body) == pytest.approx(0.1)


def test_a_knee_bent_backwards_is_a_joint_limit_violation() -> None:
    frames = 10
    rotations = np.tile(np.eye(3), (frames, 24, 1, 1))
    assert metrics.joint_limit_violations(rotations) == 0.0
    rotations[:3, 4] = Rotation.from_euler("x", 60, degrees=True).as_matrix()  # a normal knee bend
    rotations[:3, 19] = Rotation.from_euler("y", 70, degrees=True).as_matrix()  # right forearm forward
    angles = metrics.hinge_flexion_deg(rotations)
    assert angles["left_knee"][0] == pytest.approx(60) and angles["right_elbow"][0] == pytest.approx(70)
    assert metrics.joint_limit_violations(rotations) == 0.0
    rotations[5:7, 5] = Rotation.from_euler("x", -30, degrees=True).as_matrix()  # right knee backwards
    assert metrics.joint_limit_violations(rotations) == pytest.approx(0.2)


# --- FID and diversity features ------------------------------------------------------


def test_kinetic_features_of_a_uniform_glide() -> None:
    frames, speed = 120, 1.5  # m/s along x, at 60 fps
    body = standing(frames) + (np.arange(frames) / 60.0 * speed)[:, None, None] * np.array([1.0, 0.0, 0.0])
    features = dance_features.kinetic_features(dance_features.prepare(body, 60.0), published_quirk=False)
    per_joint = features.reshape(24, 3)
    np.testing.assert_allclose(per_joint[:, 0], speed**2, rtol=1e-9)  # horizontal kinetic energy
    np.testing.assert_allclose(per_joint[:, 1], 0.0, atol=1e-9)  # vertical
    np.testing.assert_allclose(per_joint[:, 2], 0.0, atol=1e-6)  # no acceleration
    # The published features carry the reference's slip: position magnitude leaks into "acceleration".
    quirky = dance_features.kinetic_features(dance_features.prepare(body, 60.0)).reshape(24, 3)
    assert (quirky[:, 2] > 1.0).all()


def test_geometric_features_see_a_fast_root_and_a_standing_trunk() -> None:
    frames = 60
    still = dance_features.prepare(standing(frames), 60.0)
    features = dance_features.geometric_features(still)
    assert features.shape == (32,) and ((features == 0) | (features == 1)).all()
    assert features[31] == 0.0  # root not fast
    assert features[28] == 0.0  # the trunk is not lying (neck-to-root at 70-110 degrees from up)
    running = still + (np.arange(frames) / 60.0 * 5.0)[:, None, None] * np.array([0.0, 0.0, 1.0])
    assert dance_features.geometric_features(running)[31] == 1.0


def test_frechet_distance_of_gaussians_with_known_answer() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(4000, 3))
    assert dance_features.frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)
    shifted = real * 2.0 + np.array([1.0, 0.0, 0.0])
    # |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2)) with s1 = 1, s2 = 4 per dimension: 1 + 3 * 1.
    assert dance_features.frechet_distance(real, shifted) == pytest.approx(4.0, rel=0.05)


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_frechet_distance_with_fewer_clips_than_dimensions() -> None:
    from scipy import linalg

    rng = np.random.default_rng(1)
    # 6 and 9 clips in 32 dimensions, a third of which never vary (relations that never hold):
    # both covariances singular, as in a small evaluation set.
    real, generated = rng.normal(size=(6, 32)), 1.5 * rng.normal(size=(9, 32)) + 0.2
    real[:, ::3] = generated[:, ::3] = 0.0
    distance = dance_features.frechet_distance(real, generated)
    sigma1, sigma2 = np.cov(real, rowvar=False), np.cov(generated, rowvar=False)
    by_square_root = np.sum((real.mean(0) - generated.mean(0)) ** 2) + np.trace(
        sigma1 + sigma2 - 2.0 * np.real(linalg.sqrtm(sigma1 @ sigma2))
    )
    assert np.isfinite(distance) and distance == pytest.approx(by_square_root, rel=1e-3)
    assert dance_features.frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)


def test_diversity_is_the_mean_pairwise_distance() -> None:
    assert dance_features.diversity(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    assert dance_features.diversity(np.zeros((5, 2))) == 0.0


def test_distribution_scores_prefer_the_real_distribution() -> None:
    rng = np.random.default_rng(1)
    base = standing(90)

    def wobble(amplitude: float) -> np.ndarray:
        t = np.arange(90)[:, None, None] / 30.0
        return base + amplitude * np.sin(2 * np.pi * rng.uniform(0.5, 2.0, (1, 24, 3)) * t)

    real = [wobble(0.1) for _ in range(12)]
    similar = [wobble(0.1) for _ in range(12)]
    different = [wobble(0.4) for _ in range(12)]
    near, far = (dance_features.distribution_scores(real, group, 30.0) for group in (similar, different))
    assert near["fid_k"] < far["fid_k"] and near["fid_g"] <= far["fid_g"]
    assert near["div_k"] < far["div_k"]


def test_corrected_kinetic_scores_ignore_travel_that_the_published_ones_count() -> None:
    """Dances that differ only in a steady glide: the published kinetic features' slip turns the
    distance travelled into "acceleration", the corrected ones see none."""
    rng = np.random.default_rng(2)
    t = np.arange(90)[:, None, None] / 30.0

    def dance(glide_m_s: float) -> np.ndarray:
        wobble = 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0, (1, 24, 3)) * t)
        return standing(90) + wobble + glide_m_s * t * np.array([1.0, 0.0, 0.0])

    real = [dance(0.0) for _ in range(12)]
    gliding = [dance(1.0) for _ in range(12)]
    scores = dance_features.distribution_scores(real, gliding, 30.0)
    expenditure = slice(2, None, 3)
    moved = [dance_features.kinetic_features(dance_features.prepare(d, 30.0), published_quirk=False) for d in gliding]
    still = [dance_features.kinetic_features(dance_features.prepare(d, 30.0), published_quirk=False) for d in real]
    assert np.mean([m[expenditure] for m in moved]) == pytest.approx(np.mean([s[expenditure] for s in still]), rel=0.05)
    quirky_moved = [dance_features.kinetic_features(dance_features.prepare(d, 30.0))[expenditure] for d in gliding]
    quirky_still = [dance_features.kinetic_features(dance_features.prepare(d, 30.0))[expenditure] for d in real]
    assert np.mean(quirky_moved) > 1.5 * np.mean(quirky_still)
    assert scores["fid_k_fixed"] < scores["fid_k"]
