"""The beat reward of the critic stage and of beat search: on the beat, as smooth and grounded as the captures.

Per token step (4 frames at 30 fps), from joint positions and the music's beat frames:

- **hit**: for each music beat in the step, exp(-d^2 / 2 sigma^2) with d the distance in
  frames to the nearest motion beat (a local minimum of the smoothed mean joint speed, as
  in Bailando's BAS) — the BAS kernel, so the reward's mean is the score it raises;
- **off-beat**: a penalty for each motion beat in the step farther than OFFBEAT_FRAMES from
  every music beat (Bailando penalises every step without a coinciding beat);
- **jerk**, **skating**: penalties for going past the limits the captures respect, so that
  jitter (which scores well on BAS by chance) does not pay;
- **frozen**, **slow**: a penalty for a step whose mean joint speed is under the frozen
  threshold, and one growing as the speed around the step (averaged over ``slow_window_s``)
  falls under the captures' slowest dance: without it the actor learns to bob in place,
  which puts a motion beat on every music beat (measured: BAS 0.58 at 0.31 m/s after 870
  iterations). Averaged, because dancers do pause: charged per step (version 1), the
  actor learnt never to let a hand rest (wrists over 0.32 m/s in 99.6 % of frames against
  the captures' 88 %), the largest part of its FID_g. On the mean speed of all joints the
  charge is paid cheapest by swinging the forearms (version 2's pumping arms; model card),
  so ``slow_joints="legs"`` measures the speed of the pelvis and legs only, which only
  stepping and travelling raise.

Bailando's reward (+5 for a step holding both a music and a motion beat, -5 otherwise) is
the same idea without the smoothness terms; it relied on its short finetuning per song.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d

from bailando_blender.skeleton import FOOT_JOINTS

FPS = 30.0  # the rollouts' frame rate
FOOT_CONTACT_HEIGHT_M = 0.05  # a foot joint this close to the floor is in contact
FROZEN_SPEED_M_S = 0.1  # mean joint speed under which the body counts as frozen
# Percentile of the per-frame lowest joint height taken as the floor: low enough that
# jumps stay in the air, high enough that one odd frame does not sink the whole dance.
FLOOR_PERCENTILE = 5.0
KINETIC_SMOOTHING_FRAMES = 2.5  # Bailando's sigma of 5 frames at 60 fps
HIT_SIGMA_FRAMES = 1.5  # BAS's 3 frames at 60 fps
OFFBEAT_FRAMES = 3  # 100 ms
# SMPL's pelvis, hips, knees, ankles and toes: the joints whose speed the "legs" slowness charge reads.
LEG_JOINTS: tuple[int, ...] = (0, 1, 2, 4, 5, 7, 8, 10, 11)
# The fitted Tang captures' mean speed of LEG_JOINTS per dance: 0.45-1.69 m/s, median 0.69 (all
# joints: 0.59-1.79, median 0.71); the slowest dance's, as slow_limit_m_s for "legs".
CAPTURES_SLOWEST_LEG_SPEED_M_S = 0.45


@dataclass
class RewardWeights:
    hit: float = 1.0
    offbeat: float = 0.25
    jerk_limit_m_s3: float = 400.0  # captures: 52-518 m/s^3, median 70
    jerk: float = 0.5  # per step, times how far past the limit (relative)
    skating_limit_m_s: float = 0.5  # captures: 0.12-1.25 m/s; our fitted held-out captures 0.25
    skating: float = 0.5
    frozen: float = 1.0
    slow_limit_m_s: float = 0.6  # the captures' mean joint speed: 0.63-1.78 m/s
    slow: float = 1.0  # per step, times how far under the limit (relative)
    slow_window_s: float = 2.0  # the speed compared with slow_limit_m_s is averaged over this (0: per step)
    slow_joints: str = "all"  # whose mean speed the slowness charge reads: "all" joints or the "legs" (LEG_JOINTS)

    def __post_init__(self) -> None:
        if self.slow_joints not in ("all", "legs"):
            raise ValueError(f"slow_joints must be 'all' or 'legs', got {self.slow_joints!r}")


def floor_height(positions: np.ndarray) -> np.ndarray | float:
    """The floor under (..., T, 24, 3) joint positions: the FLOOR_PERCENTILE of the lowest joint's
    height over T (a float for one dance, (...,) for dances side by side)."""
    floor = np.percentile(positions[..., 1].min(axis=-1), FLOOR_PERCENTILE, axis=-1)
    return float(floor) if np.ndim(floor) == 0 else floor


def motion_beats(positions: np.ndarray) -> np.ndarray:
    """(..., F, 24, 3) positions at FPS -> (..., F) bool: the frames of the local minima of the
    smoothed mean joint speed."""
    speed = np.linalg.norm(np.diff(positions, axis=-3), axis=-1).mean(axis=-1)
    smooth = gaussian_filter1d(speed, KINETIC_SMOOTHING_FRAMES, axis=-1)
    minima = np.zeros(positions.shape[:-2], dtype=bool)  # frame f: the speed from frame f to f + 1
    minima[..., 1 : speed.shape[-1] - 1] = (smooth[..., 1:-1] < smooth[..., :-2]) & (
        smooth[..., 1:-1] < smooth[..., 2:]
    )
    return minima


def motion_beat_frames(positions: np.ndarray) -> np.ndarray:
    """Frames (at FPS) of the local minima of the smoothed mean joint speed of (F, 24, 3) positions."""
    return np.flatnonzero(motion_beats(positions))


def per_step(values: np.ndarray, step_of: np.ndarray, steps: int) -> np.ndarray:
    """(B, F) per-frame values -> (B, steps) sums over each step's frames (frame f in step_of[f]),
    each summed in frame order."""
    rows = values.shape[0]
    bins = (np.arange(rows)[:, None] * steps + step_of[None, :]).ravel()
    return np.bincount(bins, values.ravel().astype(np.float64), rows * steps).reshape(rows, steps)


def step_rewards(
    positions: np.ndarray, music_beats: np.ndarray, frames_per_token: int, weights: RewardWeights
) -> tuple[np.ndarray, dict[str, float]]:
    """positions (F, 24, 3) at FPS, music_beats (F,) bool -> (F // frames_per_token,) rewards and their parts."""
    rewards, parts = batch_step_rewards(positions[None], music_beats, frames_per_token, weights)
    return rewards[0], {name: float(value[0]) for name, value in parts.items()}


def batch_step_rewards(
    positions: np.ndarray, music_beats: np.ndarray, frames_per_token: int, weights: RewardWeights
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``step_rewards`` of B dances side by side: positions (B, F, 24, 3) at FPS, music_beats (F,)
    bool -> (B, F // frames_per_token) rewards and their parts, each (B,)."""
    rows, frames = positions.shape[:2]
    steps = frames // frames_per_token
    step_of = np.minimum(np.arange(frames) // frames_per_token, steps - 1)
    frames_per_step = np.bincount(step_of, minlength=steps)
    motion = motion_beats(positions)  # (B, F)
    beats = np.flatnonzero(music_beats[:frames])
    frame_numbers = np.arange(frames)

    # Each music beat's distance to the nearest motion beat of each dance (inf with none).
    hit_frames = np.zeros((rows, frames))
    if beats.size:
        apart = np.abs(beats[:, None] - frame_numbers[None, :]).astype(np.float64)  # (beats, F)
        distance = np.where(motion[:, None, :], apart[None], np.inf).min(axis=-1)  # (B, beats)
        hit_frames[:, beats] = np.exp(-(distance**2) / (2 * HIT_SIGMA_FRAMES**2))
    hit = per_step(hit_frames, step_of, steps)
    if beats.size:
        far_from_beats = np.abs(frame_numbers[:, None] - beats[None, :]).min(axis=1) > OFFBEAT_FRAMES
    else:
        far_from_beats = np.ones(frames, dtype=bool)
    offbeat = per_step((motion & far_from_beats).astype(np.float64), step_of, steps)

    jerk = np.zeros((rows, frames))
    jerk[:, 3:] = np.linalg.norm(np.diff(positions, n=3, axis=1), axis=-1).mean(axis=-1) * FPS**3
    step_jerk = per_step(jerk, step_of, steps) / frames_per_step

    feet = positions[:, :, list(FOOT_JOINTS)]  # (B, F, feet, 3)
    lowest = feet[..., 1].argmin(axis=-1)[:, :-1, None]  # each frame's lowest foot, frames 0..F-2
    foot_speed = np.zeros((rows, frames))
    slid = np.linalg.norm(feet[:, 1:, :, [0, 2]] - feet[:, :-1, :, [0, 2]], axis=-1)  # (B, F-1, feet)
    foot_speed[:, 1:] = np.take_along_axis(slid, lowest, axis=-1)[..., 0] * FPS
    contact = np.zeros((rows, frames), dtype=bool)
    contact[:, 1:] = np.take_along_axis(feet[:, :-1, :, 1], lowest, axis=-1)[..., 0] < FOOT_CONTACT_HEIGHT_M
    skating = foot_speed * contact
    step_skate = per_step(skating, step_of, steps) / np.maximum(per_step(contact, step_of, steps), 1)

    joint_speed = np.zeros(positions.shape[:3])
    joint_speed[:, 1:] = np.linalg.norm(np.diff(positions, axis=1), axis=-1) * FPS
    speed = joint_speed.mean(axis=-1)
    leg_speed = joint_speed[:, :, list(LEG_JOINTS)].mean(axis=-1)
    step_speed = per_step(speed, step_of, steps) / frames_per_step
    charged = leg_speed if weights.slow_joints == "legs" else speed
    window = round(weights.slow_window_s * FPS)
    # Frame 0 has no speed of its own: give it frame 1's, or the window would read a stop there.
    known = np.concatenate([charged[:, 1:2], charged[:, 1:]], axis=1) if frames > 1 else charged
    paced = uniform_filter1d(known, window, axis=-1, mode="nearest") if window > 1 else charged
    paced_speed = per_step(paced, step_of, steps) / frames_per_step

    jerk_excess = np.maximum(step_jerk / weights.jerk_limit_m_s3 - 1.0, 0.0)
    skate_excess = np.maximum(step_skate / weights.skating_limit_m_s - 1.0, 0.0)
    frozen = step_speed < FROZEN_SPEED_M_S
    slow_shortfall = np.maximum(1.0 - paced_speed / weights.slow_limit_m_s, 0.0)
    rewards = (
        weights.hit * hit
        - weights.offbeat * offbeat
        - weights.jerk * jerk_excess
        - weights.skating * skate_excess
        - weights.frozen * frozen
        - weights.slow * slow_shortfall
    )
    parts = {
        "hit_rate": hit.sum(axis=1) / max(beats.size, 1),
        "offbeat_per_s": offbeat.sum(axis=1) / (frames / FPS),
        "jerk_m_s3": jerk[:, 3:].mean(axis=1) if frames > 3 else np.zeros(rows),
        "skating_m_s": skating.sum(axis=1) / np.maximum(contact.sum(axis=1), 1),
        "frozen_share": frozen.mean(axis=1),
        "speed_m_s": speed[:, 1:].mean(axis=1),
        "leg_speed_m_s": leg_speed[:, 1:].mean(axis=1),
    }
    return rewards, parts
