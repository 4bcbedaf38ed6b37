"""Tang et al. 2018 ("Dance with Melody") captures: 23 markers, centimetres, 25 fps, Y up.

Per dance folder: ``skeletons.npz`` (``skeletons`` (T, 23, 3) relative to ``center``
(T, 3)), ``config.json`` (``start_position``: the motion's first frame in the song, in
25 fps frames) and ``audio.ogg``. Marker sides were checked on the data: with the body's
left taken from hip 7 to hip 16, toes 11 and 20 point forward in every dance, so markers
7-11 are the right leg, 16-20 the left leg, 3-6 the right arm and 12-15 the left arm.
The data carries no licence: research use only, never bundled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ik import JointMap

SOURCE_FPS = 25.0  # frames per second of the captures
CENTIMETRES_PER_METRE = 100.0
FLOOR_PERCENTILE = 5.0  # of the lowest foot marker per frame: the floor is not at y = 0 everywhere
FOOT_MARKERS = (9, 10, 11, 18, 19, 20)
HELD_OUT = ("DANCE_C_8", "DANCE_R_9", "DANCE_W_6", "DANCE_W_14", "DANCE_W_25", "DANCE_W_31")  # by song, ~15 %

# SMPL joint -> (Tang markers averaged, weight). Markers sit on the skin, joints inside the
# body: the waist marker is a few cm above SMPL's pelvis joint and the shoulder midpoint
# below SMPL's neck, so those weigh less.
TANG_JOINT_MAP = JointMap(
    {
        0: ((2,), 0.3),  # pelvis <- waist centre
        2: ((7,), 1.0),  # right hip
        5: ((8,), 1.0),  # right knee
        8: ((9,), 1.0),  # right ankle
        11: ((11,), 0.5),  # right toes
        1: ((16,), 1.0),  # left hip
        4: ((17,), 1.0),  # left knee
        7: ((18,), 1.0),  # left ankle
        10: ((20,), 0.5),  # left toes
        17: ((3,), 1.0),  # right shoulder
        19: ((4,), 1.0),  # right elbow
        21: ((5,), 1.0),  # right wrist
        23: ((6, 22), 0.5),  # right hand
        16: ((12,), 1.0),  # left shoulder
        18: ((13,), 1.0),  # left elbow
        20: ((14,), 1.0),  # left wrist
        22: ((15, 21), 0.5),  # left hand
        12: ((3, 12), 0.3),  # neck <- between the shoulders
        15: ((0, 1), 0.5),  # head
    },
    name="tang2018",
)


@dataclass
class TangDance:
    name: str
    positions: np.ndarray  # (T, 23, 3) metres, Y up, floor at y = 0, SOURCE_FPS
    audio: Path | None
    audio_offset_s: float  # song time of motion frame 0

    @property
    def duration_s(self) -> float:
        return self.positions.shape[0] / SOURCE_FPS


def list_dances(root: Path) -> list[Path]:
    return sorted(folder for folder in Path(root).glob("DANCE_*") if (folder / "skeletons.npz").exists())


def load_dance(folder: Path) -> TangDance:
    folder = Path(folder)
    with np.load(folder / "skeletons.npz") as data:
        world = (data["skeletons"] + data["center"][:, None]).astype(np.float64) / CENTIMETRES_PER_METRE
    floor = np.percentile(world[:, list(FOOT_MARKERS), 1].min(axis=1), FLOOR_PERCENTILE)
    world[..., 1] -= floor
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
    audio = folder / "audio.ogg"
    return TangDance(
        name=folder.name,
        positions=world,
        audio=audio if audio.exists() else None,
        audio_offset_s=float(config.get("start_position", 0)) / SOURCE_FPS,
    )
