"""Audio in, SMPL dance out: features -> tokens -> rotations -> a dance at any frame rate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation, Slerp

from bailando_blender.skeleton import (
    FOOT_JOINTS,
    forward_kinematics,
    make_quaternions_continuous,
    matrix_to_quaternion,
)

from .beat_reward import floor_height
from .beat_search import BeatScorer
from .errors import CancelledError, UserInputError
from .floor_contact import keep_above_floor
from .generator import DanceGenerator
from .motion_representation import decode_motion
from .music_features import FPS, MusicFeatures, song_features
from .sampling import SamplingConfig

MAX_OUTPUT_FPS = 240.0
# The generator integrates root velocities, so over minutes its dancer can wander off (up to
# 15 m in a 3-minute song, measured). By default the slow part of the root's path is held
# within this radius of where it started (metres; a stage ~6 m across); 0 lets it go. The
# ballroom captures travel as far (their roots go 6 m from the start): held within 1.5 m they
# lose 20 % of their kinetic variety (Div_k 11.5 -> 9.3), within 3 m 8 % (10.6; model card:
# What FID can reach here), and the pull slides the feet the more the tighter it is.
STAGE_RADIUS_M = 3.0
# Foot planting: while the lowest foot joint is this close to the floor it is held in place
# by moving the root against its slide, fully below PLANT_FULL_M and fading out by PLANT_NONE_M
# (metres above the floor; the metrics count a foot under 5 cm as in contact).
PLANT_FULL_M = 0.03
PLANT_NONE_M = 0.08
PLANT_SMOOTHING_FRAMES = 1.0  # sigma of the correction, frames at the model's 30 fps
# Passes: after one, the other foot may have become the lowest; a second pass catches it.
# Measured on two unseen songs x 2 seeds (skating m/s, jerk m/s^3): none 0.56, 361; one pass
# sigma 2: 0.35, 362; sigma 1: 0.31, 369; two passes sigma 1: 0.29, 379; sigma 0.5: 0.25, 428.
PLANT_PASSES = 2
STAGE_SMOOTHING_S = 1.0  # sigma of the "slow part": steps and sways faster than this are untouched

ProgressCallback = Callable[[float, str], None]

# Share of the whole job each stage is reported as, for one progress bar.
STAGE_SPANS = {"decoding": (0.0, 0.1), "features": (0.1, 0.2), "tokens": (0.2, 0.9), "rotations": (0.9, 1.0)}


@dataclass
class Dance:
    """A generated dance, SMPL's frame (Y up, metres; the floor at y = 0).

    joint_rotations: (T, 24, 4) unit quaternions (w, x, y, z), local to each parent, each
        frame on the same hemisphere as the last.
    root_translation: (T, 3) pelvis position, metres.
    beat_times: (B,) music beats, seconds from frame 0 (the start of the span danced to).
    Frame i plays at i / fps seconds of the song; T = round(duration_s * fps).
    """

    fps: float
    joint_rotations: np.ndarray
    root_translation: np.ndarray
    beat_times: np.ndarray
    tempo_bpm: float
    duration_s: float
    seed: int
    trained: bool
    warning: str | None = None  # one line for the user about the song (a cut-off file)

    @property
    def num_frames(self) -> int:
        return int(self.joint_rotations.shape[0])


def resample(
    joint_rotations: np.ndarray, root_translation: np.ndarray, source_fps: float, target_fps: float, num_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """(T, J, 3, 3) rotations and (T, 3) translation at source_fps -> num_frames at target_fps.

    Rotations by spherical linear interpolation per joint, translation linearly; times
    past the last source frame hold it.
    """
    source_times = np.arange(joint_rotations.shape[0]) / source_fps
    target_times = np.minimum(np.arange(num_frames) / target_fps, source_times[-1])
    if joint_rotations.shape[0] == 1:
        return np.repeat(joint_rotations, num_frames, 0), np.repeat(root_translation, num_frames, 0)
    rotations = np.stack(
        [
            Slerp(source_times, Rotation.from_matrix(joint_rotations[:, joint]))(target_times).as_matrix()
            for joint in range(joint_rotations.shape[1])
        ],
        axis=1,
    )
    translation = np.stack([np.interp(target_times, source_times, root_translation[:, i]) for i in range(3)], 1)
    return rotations, translation


def body_positions(joint_rotations: np.ndarray) -> np.ndarray:
    """(T, 24, 3, 3) local rotations -> (T, 24, 3) joint positions with the root at the origin:
    moving the root moves them all, so one forward kinematics serves every root path below."""
    return forward_kinematics(joint_rotations, np.zeros(3))[0]


def put_on_floor(
    joint_rotations: np.ndarray, root_translation: np.ndarray, body: np.ndarray | None = None
) -> np.ndarray:
    """Shift the root vertically so the feet stand on y = 0 (see floor_height); ``body``: the
    rotations' ``body_positions`` when the caller has them."""
    body = body_positions(joint_rotations) if body is None else body
    grounded = root_translation.copy()
    grounded[:, 1] -= floor_height(body + root_translation[:, None])
    return grounded


def plant_feet(
    joint_rotations: np.ndarray,
    root_translation: np.ndarray,
    smoothing_frames: float = PLANT_SMOOTHING_FRAMES,
    body: np.ndarray | None = None,
) -> np.ndarray:
    """(T, 24, 3, 3) rotations + (T, 3) root -> the root with the foot on the floor kept from sliding.

    Each frame, the root's horizontal step is reduced by the step of the foot joint that was
    lowest, weighted by how close that foot is to the floor: a planted foot then stays where
    it is and the body moves over it, as a dancer pushes off the floor. Heights are untouched.
    ``body``: the rotations' ``body_positions`` when the caller has them.
    """
    body = body_positions(joint_rotations) if body is None else body
    positions = body + root_translation[:, None]
    feet = positions[:, list(FOOT_JOINTS)]
    lowest = feet[..., 1].argmin(axis=1)
    rows = np.arange(len(feet))
    height = feet[rows, lowest, 1] - floor_height(positions)
    weight = np.clip((PLANT_NONE_M - height) / (PLANT_NONE_M - PLANT_FULL_M), 0.0, 1.0)
    slide = np.diff(feet[..., [0, 2]], axis=0)[rows[:-1], lowest[:-1]]  # (T-1, 2), root step included
    # Smoothed (a little), so that the hand-over from one foot to the other does not jerk the body.
    correction = gaussian_filter1d(weight[:-1, None] * slide, smoothing_frames, axis=0, mode="nearest")
    steps = np.diff(root_translation[:, [0, 2]], axis=0) - correction
    planted = root_translation.copy()
    planted[1:, [0, 2]] = root_translation[0, [0, 2]] + np.cumsum(steps, axis=0)
    return planted


def keep_on_stage(root_translation: np.ndarray, fps: float, radius_m: float) -> np.ndarray:
    """(T, 3) root positions (Y up) -> the same with the smoothed horizontal path pulled back to
    within ``radius_m`` of its start. The pull follows the smoothed path, so it is as slow as
    the wandering it cancels; everything within the radius is left exactly as it was."""
    if radius_m <= 0 or len(root_translation) < 2:
        return root_translation
    ground = root_translation[:, [0, 2]].astype(np.float64)
    path = gaussian_filter1d(ground, STAGE_SMOOTHING_S * fps, axis=0, mode="nearest")
    offset = path - path[0]
    distance = np.linalg.norm(offset, axis=1, keepdims=True)
    pull = offset * (np.maximum(distance - radius_m, 0.0) / np.maximum(distance, 1e-9))
    kept = root_translation.copy()
    kept[:, [0, 2]] -= pull
    return kept


def settle_root(
    joint_rotations: np.ndarray,
    root_translation: np.ndarray,
    stage_radius_m: float,
    plant_passes: int = PLANT_PASSES,
    plant_smoothing_frames: float = PLANT_SMOOTHING_FRAMES,
    body: np.ndarray | None = None,
) -> np.ndarray:
    """(T, 24, 3, 3), (T, 3) at FPS -> the root path as generation leaves it: feet planted
    (``plant_passes`` passes of ``plant_feet``), then kept on stage (``keep_on_stage``; 0: not)."""
    body = body_positions(joint_rotations) if body is None else body
    for _ in range(plant_passes):
        root_translation = plant_feet(joint_rotations, root_translation, plant_smoothing_frames, body)
    return keep_on_stage(root_translation, FPS, stage_radius_m)


def generate(
    audio: str | Path | MusicFeatures,
    generator: DanceGenerator,
    sampling: SamplingConfig | None = None,
    fps: float = FPS,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    stage_radius_m: float = STAGE_RADIUS_M,
) -> Dance:
    """Dance to a song (a file, or its features already computed).

    For a file, only its [start_s, end_s) seconds are danced to (the whole song by default);
    frame 0 of the dance is then ``start_s`` into the file. ``stage_radius_m``: see
    ``keep_on_stage`` (0: the root goes where the generator takes it).

    Raises UserInputError for unusable audio or options, CancelledError when
    ``cancelled()`` turns true.
    """
    if not np.isfinite(fps) or not 0 < fps <= MAX_OUTPUT_FPS:
        raise UserInputError("fps", f"must be in (0, {MAX_OUTPUT_FPS:g}], got {fps}")
    if not np.isfinite(stage_radius_m) or stage_radius_m < 0:
        raise UserInputError("stage radius", f"must be 0 (off) or more metres, got {stage_radius_m}")
    sampling = sampling or SamplingConfig()
    try:
        sampling.validate()
    except ValueError as error:
        raise UserInputError("sampling", str(error)) from None

    def report(stage: str, fraction: float) -> None:
        if cancelled is not None and cancelled():
            raise CancelledError()
        if progress is not None:
            start, end = STAGE_SPANS[stage]
            progress(start + (end - start) * fraction, stage)

    report("decoding", 0.0)
    music = audio if isinstance(audio, MusicFeatures) else song_features(audio, start_s, end_s)
    report("features", 1.0)
    score = BeatScorer(music.features, generator.decode_candidates, generator.frames_per_token)
    upper_tokens, lower_tokens = generator.tokens(
        music.features, sampling, progress=lambda f: report("tokens", f), cancelled=cancelled, score=score
    )
    report("rotations", 0.0)
    upper, lower = generator.decode(upper_tokens, lower_tokens)
    rotations, translation = decode_motion(upper[: music.num_frames], lower[: music.num_frames])
    body = body_positions(rotations)
    translation = settle_root(rotations, translation, stage_radius_m, body=body)
    num_frames = max(1, round(music.duration_s * fps))
    if fps != FPS:
        rotations, translation = resample(rotations, translation, FPS, fps, num_frames)
        body = body_positions(rotations)
    translation = put_on_floor(rotations, translation, body)
    rotations, translation = keep_above_floor(rotations, translation)
    quaternions = make_quaternions_continuous(matrix_to_quaternion(rotations))
    report("rotations", 1.0)
    return Dance(
        fps=float(fps),
        joint_rotations=quaternions.astype(np.float32),
        root_translation=translation.astype(np.float32),
        beat_times=music.beat_times,
        tempo_bpm=music.tempo_bpm,
        duration_s=music.duration_s,
        seed=sampling.seed,
        trained=generator.trained,
        warning=music.warning,
    )
