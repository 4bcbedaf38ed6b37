"""AIST++ (Li et al. 2021) in our normalised form: SMPL rotations + root path at 30 fps with the music's features.

The AIST++ motion files are pickles, one per sequence, named like
``gBR_sBM_cAll_d04_mBR0_ch01.pkl``; the music id (``mBR0``) names the song, ``<id>.wav`` in
the music folder. Each holds ``smpl_poses`` (T, 72) axis-angle (SMPL's 24 joints, joint 0
the global orientation), ``smpl_trans`` (T, 3) and ``smpl_scaling`` (1,): the root path in
metres is ``smpl_trans / smpl_scaling`` (as the AIST++ API computes it), Y up, at 60 fps.
AIST++ is not available on this machine: the adapter is tested on small files in that
format the tests write. Its licence (CC BY 4.0 annotations over the AIST Dance Video
Database's own terms) must be checked before training shipped weights on it.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.errors import UserInputError
from backend.music_features import FPS
from backend.pipeline import resample
from bailando_blender.skeleton import NUM_JOINTS, axis_angle_to_matrix

AIST_FPS = 60.0  # AIST++'s SMPL fits are at 60 fps
MUSIC_ID = re.compile(r"_(m[A-Z]{2}\d)_")  # e.g. gBR_sBM_cAll_d04_mBR0_ch01 -> mBR0


@dataclass(frozen=True)
class AistSequence:
    """rotations (T, 24, 3, 3) local, translation (T, 3) metres (Y up), at FPS; music: the song's file."""

    name: str
    rotations: np.ndarray
    translation: np.ndarray
    music: Path


def read_motion(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(T, 24, 3, 3) rotations and (T, 3) metres at AIST_FPS from one AIST++ motion pickle."""
    try:
        with open(path, "rb") as stream:
            data = pickle.load(stream)  # AIST++'s own format; read only files from the dataset
        poses = np.asarray(data["smpl_poses"], dtype=np.float64)
        trans = np.asarray(data["smpl_trans"], dtype=np.float64)
        scaling = float(np.asarray(data["smpl_scaling"]).reshape(-1)[0])
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, IndexError) as error:
        raise UserInputError(path, f"is not an AIST++ motion file: {error}") from None
    if poses.ndim != 2 or poses.shape[1] != NUM_JOINTS * 3 or trans.shape != (len(poses), 3) or scaling <= 0:
        raise UserInputError(path, f"has smpl_poses {poses.shape}, smpl_trans {trans.shape}: not AIST++'s layout")
    return axis_angle_to_matrix(poses.reshape(len(poses), NUM_JOINTS, 3)), trans / scaling


def music_for(motion_path: Path, music_dir: Path) -> Path:
    found = MUSIC_ID.search(motion_path.stem + "_")
    if found is None:
        raise UserInputError(motion_path, "has no music id (like _mBR0_) in its name")
    song = music_dir / f"{found.group(1)}.wav"
    if not song.is_file():
        raise UserInputError(song, "no such music file")
    return song


def load_sequence(motion_path: Path, music_dir: Path) -> AistSequence:
    """One AIST++ sequence at the training frame rate, with the path of its song."""
    rotations, translation = read_motion(motion_path)
    frames = max(1, int(np.floor((len(rotations) - 1) / AIST_FPS * FPS)) + 1)
    rotations, translation = resample(rotations, translation, AIST_FPS, FPS, frames)
    return AistSequence(motion_path.stem, rotations, translation, music_for(motion_path, music_dir))
