"""Each metric on constructed motions whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from bailando_blender import skeleton as sk
from training import metrics


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
