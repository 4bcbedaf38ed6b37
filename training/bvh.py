"""BVH motion files -> joint positions -> SMPL rotations (through ``training/ik.py``).

A BVH file is a joint hierarchy (offsets, channels) and one row of channel values per frame.
Rotation channels are Euler angles in degrees applied in the listed order about the joint's
own moving axes (``Zrotation Xrotation Yrotation`` -> R = Rz Rx Ry); a joint with position
channels takes them as its translation from its parent, otherwise its OFFSET. Positions are
then mapped onto SMPL's joints by name (``JointMap``) and fitted, as the Tang markers are.

The Bandai Namco set (``bandai_namco_motion_1``, CC BY-NC 4.0: non-commercial) uses
centimetres, Y up, 30 fps; ``BANDAI_JOINTS`` maps its skeleton.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from backend.errors import UserInputError
from bailando_blender.skeleton import JOINT_NAMES

from .ik import FitConfig, FitResult, JointMap, fit_positions

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_AXES = {"Xrotation": "X", "Yrotation": "Y", "Zrotation": "Z"}

# SMPL joint -> Bandai Namco joint. SMPL's spine1/spine2 and the hands' ends have no
# counterpart; their rotations are left to the fit's smoothness and rest terms.
BANDAI_JOINTS: dict[str, str] = {
    "pelvis": "Hips", "spine3": "Chest", "neck": "Neck", "head": "Head",
    "left_hip": "UpperLeg_L", "left_knee": "LowerLeg_L", "left_ankle": "Foot_L", "left_foot": "Toes_L",
    "right_hip": "UpperLeg_R", "right_knee": "LowerLeg_R", "right_ankle": "Foot_R", "right_foot": "Toes_R",
    "left_collar": "Shoulder_L", "left_shoulder": "UpperArm_L", "left_elbow": "LowerArm_L", "left_wrist": "Hand_L",
    "right_collar": "Shoulder_R", "right_shoulder": "UpperArm_R", "right_elbow": "LowerArm_R", "right_wrist": "Hand_R",
}  # fmt: skip


@dataclass
class BvhMotion:
    """names, parents (-1 for the root), offsets (J, 3), channels per joint, values (F, C), frame_time s."""

    names: list[str]
    parents: list[int]
    offsets: np.ndarray
    channels: list[list[str]]
    values: np.ndarray
    frame_time: float

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


def parse_bvh(text: str, source: str = "BVH") -> BvhMotion:
    """Read a BVH file's text; UserInputError (naming ``source``) when it is not one."""
    tokens = text.split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    position = 0

    def take() -> str:
        nonlocal position
        if position >= len(tokens):
            raise UserInputError(source, "ends inside its HIERARCHY block")
        position += 1
        return tokens[position - 1]

    try:
        if take() != "HIERARCHY":
            raise UserInputError(source, "does not start with HIERARCHY")
        pending_end_site = False
        while True:
            token = take()
            if token in ("ROOT", "JOINT"):
                names.append(take())
                parents.append(stack[-1] if stack else -1)
                offsets.append([0.0, 0.0, 0.0])
                channels.append([])
            elif token == "End":
                take()  # "Site"
                pending_end_site = True
            elif token == "{":
                stack.append(-2 if pending_end_site else len(names) - 1)
                pending_end_site = False
            elif token == "}":
                stack.pop()
            elif token == "OFFSET":
                values = [float(take()) for _ in range(3)]
                if stack and stack[-1] >= 0:
                    offsets[stack[-1]] = values
            elif token == "CHANNELS":
                channels[stack[-1]] = [take() for _ in range(int(take()))]
            elif token == "MOTION":
                break
            else:
                raise UserInputError(source, f"has an unexpected word '{token}' in its HIERARCHY")
        if take() != "Frames:":
            raise UserInputError(source, "has no 'Frames:' line")
        frames = int(take())
        if (take(), take()) != ("Frame", "Time:"):
            raise UserInputError(source, "has no 'Frame Time:' line")
        frame_time = float(take())
        width = sum(len(c) for c in channels)
        values = np.array(tokens[position : position + frames * width], dtype=np.float64)
    except ValueError as error:
        raise UserInputError(source, f"has a number that is not one: {error}") from None
    if values.size != frames * width or frames < 1 or frame_time <= 0:
        raise UserInputError(source, f"declares {frames} frames of {width} channels but holds {values.size} values")
    return BvhMotion(names, parents, np.array(offsets), channels, values.reshape(frames, width), frame_time)


def read_bvh(path: Path) -> BvhMotion:
    if not path.is_file():
        raise UserInputError(path, "no such file")
    return parse_bvh(path.read_text(errors="replace"), str(path))


def joint_positions(motion: BvhMotion) -> np.ndarray:
    """(F, J, 3) world positions of every joint, in the file's units and axes."""
    frames = len(motion.values)
    count = len(motion.names)
    world_rotation = np.empty((frames, count, 3, 3))
    world_position = np.empty((frames, count, 3))
    column = 0
    for joint in range(count):
        names = motion.channels[joint]
        block = motion.values[:, column : column + len(names)]
        column += len(names)
        translation = np.tile(motion.offsets[joint], (frames, 1))
        if all(name in names for name in POSITION_CHANNELS):
            translation = block[:, [names.index(name) for name in POSITION_CHANNELS]]
        rotation_names = [name for name in names if name in ROTATION_AXES]
        if rotation_names:
            order = "".join(ROTATION_AXES[name] for name in rotation_names)  # upper case: intrinsic
            angles = block[:, [names.index(name) for name in rotation_names]]
            local = Rotation.from_euler(order, angles, degrees=True).as_matrix()
        else:
            local = np.tile(np.eye(3), (frames, 1, 1))
        parent = motion.parents[joint]
        if parent < 0:
            world_rotation[:, joint] = local
            world_position[:, joint] = translation
        else:
            world_rotation[:, joint] = world_rotation[:, parent] @ local
            world_position[:, joint] = world_position[:, parent] + np.einsum(
                "fij,fj->fi", world_rotation[:, parent], translation
            )
    return world_position


def joint_map(motion: BvhMotion, smpl_to_bvh: dict[str, str]) -> JointMap:
    missing = sorted(set(smpl_to_bvh.values()) - set(motion.names))
    if missing:
        raise UserInputError("BVH", f"has no joint named {', '.join(missing)}")
    return JointMap(
        {JOINT_NAMES.index(smpl): ((motion.names.index(bvh),), 1.0) for smpl, bvh in smpl_to_bvh.items()}, name="bvh"
    )


def fit_bvh(
    motion: BvhMotion, smpl_to_bvh: dict[str, str], metres_per_unit: float = 0.01, config: FitConfig | None = None
) -> FitResult:
    """SMPL rotations and root path (metres, Y up) fitted to a BVH dance's mapped joints."""
    positions = joint_positions(motion) * metres_per_unit
    return fit_positions(positions, joint_map(motion, smpl_to_bvh), config)
