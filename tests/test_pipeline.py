"""The whole path, audio file to SMPL dance, in process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from backend.errors import CancelledError, UserInputError
from backend.floor_contact import FLOOR_GIVE_M
from backend.generator import DanceGenerator
from backend.pipeline import generate, resample
from backend.sampling import SamplingConfig
from bailando_blender import skeleton as sk


@pytest.fixture(scope="module")
def generator() -> DanceGenerator:
    return DanceGenerator.untrained("cpu")


@pytest.fixture(scope="module")
def dance(generator: DanceGenerator, click_song: Path):
    return generate(click_song, generator, SamplingConfig(seed=3))


def test_dance_shapes_units_and_floor(dance) -> None:
    assert dance.fps == 30.0 and dance.num_frames == 240  # 8 s at 30 fps
    assert dance.joint_rotations.shape == (240, 24, 4) and dance.joint_rotations.dtype == np.float32
    assert dance.root_translation.shape == (240, 3)
    assert np.all(np.isfinite(dance.joint_rotations)) and np.all(np.isfinite(dance.root_translation))
    np.testing.assert_allclose(np.linalg.norm(dance.joint_rotations, axis=-1), 1.0, atol=1e-5)
    assert np.all(np.sum(dance.joint_rotations[1:] * dance.joint_rotations[:-1], axis=-1) >= 0)  # continuous
    positions, _ = sk.forward_kinematics(sk.quaternion_to_matrix(dance.joint_rotations), dance.root_translation)
    lowest = positions[..., 1].min(axis=1)
    assert np.percentile(lowest, 5) == pytest.approx(0.0, abs=1e-3)  # standing on the floor
    assert lowest.min() >= -FLOOR_GIVE_M - 1e-5  # never through it (float32 rotations round)
    assert dance.tempo_bpm == pytest.approx(120, rel=0.03) and len(dance.beat_times) >= 12
    assert not dance.trained


def test_same_seed_same_dance_other_seed_other_dance(generator: DanceGenerator, click_song: Path, dance) -> None:
    again = generate(click_song, generator, SamplingConfig(seed=3))
    np.testing.assert_array_equal(again.joint_rotations, dance.joint_rotations)
    np.testing.assert_array_equal(again.root_translation, dance.root_translation)
    other = generate(click_song, generator, SamplingConfig(seed=4))
    assert np.abs(other.joint_rotations - dance.joint_rotations).max() > 0.1


@pytest.mark.parametrize("fps", [24.0, 60.0, 29.97])
def test_any_frame_rate(generator: DanceGenerator, click_song: Path, dance, fps: float) -> None:
    resampled = generate(click_song, generator, SamplingConfig(seed=3), fps=fps)
    assert resampled.num_frames == round(8.0 * fps)
    # Frame i plays at i / fps: the pose at 1.0 s matches the 30 fps dance's frame 30.
    frame = round(1.0 * fps)
    if abs(frame / fps - 1.0) < 1e-9:
        dot = np.abs(np.sum(resampled.joint_rotations[frame] * dance.joint_rotations[30], axis=-1))
        np.testing.assert_allclose(dot, 1.0, atol=1e-5)


def test_resample_interpolates_rotations_on_the_sphere() -> None:
    angles = np.array([0.0, np.pi / 2])
    rotations = sk.axis_angle_to_matrix(np.stack([np.zeros(2), angles, np.zeros(2)], 1))[:, None]
    translation = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    middle_rotations, middle_translation = resample(rotations, translation, 1.0, 2.0, 3)
    np.testing.assert_allclose(sk.matrix_to_axis_angle(middle_rotations[1, 0]), [0, np.pi / 4, 0], atol=1e-12)
    np.testing.assert_allclose(middle_translation[1], [0.5, 1.0, 1.5])
    np.testing.assert_allclose(middle_translation[2], translation[1])


def test_progress_and_cancel(generator: DanceGenerator, click_song: Path) -> None:
    seen: list[tuple[float, str]] = []
    generate(click_song, generator, progress=lambda f, s: seen.append((f, s)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert seen[0][1] == "decoding" and {"features", "tokens", "rotations"} <= {s for _, s in seen}
    calls = []

    def cancel_during_tokens() -> bool:
        calls.append(1)
        return len(calls) > 10

    with pytest.raises(CancelledError):
        generate(click_song, generator, cancelled=cancel_during_tokens)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fps": 0.0}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"sampling": SamplingConfig(top_k=-1)}, "top_k"),
        ({"sampling": SamplingConfig(beat_candidates=0)}, "beat_candidates"),
    ],
)
def test_bad_options(generator: DanceGenerator, click_song: Path, options: dict, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        generate(click_song, generator, **options)


def test_keep_on_stage_holds_a_wandering_root_and_leaves_steps_alone() -> None:
    from backend.pipeline import STAGE_SMOOTHING_S, keep_on_stage

    fps = 30.0
    t = np.arange(round(60 * fps)) / fps
    sway = np.stack([0.2 * np.sin(2 * np.pi * t), np.full_like(t, 0.9), 0.1 * np.cos(2 * np.pi * t)], axis=1)
    walk = np.stack([0.25 * t, np.zeros_like(t), np.zeros_like(t)], axis=1)  # 15 m in a minute
    kept = keep_on_stage(sway + walk, fps, 1.5)
    slow = gaussian_filter1d(kept[:, [0, 2]], STAGE_SMOOTHING_S * fps, axis=0, mode="nearest")
    assert np.linalg.norm(slow - slow[0], axis=1).max() < 1.5 + 0.1  # re-smoothing rounds the corner a little
    assert np.abs(kept[:, 1] - 0.9).max() == 0.0  # height untouched
    # The pull is never faster than the walk it cancels, and once the walk is held the sway is intact.
    pull_speed = np.linalg.norm(np.diff(kept - (sway + walk), axis=0), axis=1) * fps
    assert pull_speed.max() < 0.25 + 0.01
    held = slice(round(20 * fps), round(55 * fps))
    np.testing.assert_allclose(kept[held, 0] - kept[held, 0].mean(), sway[held, 0], atol=0.02)
    # Within the radius, or with the radius off, nothing moves.
    np.testing.assert_array_equal(keep_on_stage(sway, fps, 1.5), sway)
    np.testing.assert_array_equal(keep_on_stage(sway + walk, fps, 0.0), sway + walk)


def test_the_extension_and_the_backend_default_to_the_same_stage_radius_and_beat_search() -> None:
    pytest.importorskip("bpy")
    from backend.pipeline import STAGE_RADIUS_M
    from backend.sampling import DEFAULT_BEAT_CANDIDATES, MAX_BEAT_CANDIDATES
    from bailando_blender import generation, properties

    assert generation.DEFAULT_STAGE_RADIUS_M == STAGE_RADIUS_M
    assert generation.DEFAULT_BEAT_CANDIDATES == DEFAULT_BEAT_CANDIDATES
    assert properties.MAX_BEAT_CANDIDATES == MAX_BEAT_CANDIDATES


def test_the_command_line_help_states_the_pipeline_default_stage_radius() -> None:
    """The CLI leaves --stage-radius unset (the pipeline, imported lazily, fills it in), so its
    help states the default in words, which must follow the constant."""
    from backend.cli import build_parser
    from backend.pipeline import STAGE_RADIUS_M

    generate = next(action for action in build_parser()._actions if action.dest == "command")
    stage = next(action for action in generate.choices["generate"]._actions if action.dest == "stage_radius")
    assert stage.help.endswith(f"default {STAGE_RADIUS_M:g})")


def test_plant_feet_stops_a_foot_sliding_on_the_floor_and_leaves_heights_alone() -> None:
    from backend.pipeline import plant_feet

    frames = 90
    rotations = np.tile(np.eye(3), (frames, 24, 1, 1))
    translation = np.zeros((frames, 3))
    translation[:, 1] = sk.REST_PELVIS_HEIGHT
    translation[:, 0] = np.arange(frames) / 30.0  # the whole body glides at 1 m/s: both feet slide
    planted = plant_feet(rotations, translation)
    np.testing.assert_array_equal(planted[:, 1], translation[:, 1])
    positions, _ = sk.forward_kinematics(rotations, planted)
    foot_speed = np.linalg.norm(np.diff(positions[:, list(sk.FOOT_JOINTS)][..., [0, 2]], axis=0), axis=-1) * 30.0
    assert foot_speed[10:-10].max() < 1e-6  # held in place (away from the smoothing's ends)
