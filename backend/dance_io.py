"""Writing a dance to disk: NPZ (the backend's exchange format), JSON and BVH.

NPZ keys (read by the Blender extension with plain numpy):
  fps () float; joint_rotations (T, 24, 4) float32 quaternions (w, x, y, z);
  root_translation (T, 3) float32 metres; beat_times (B,) s; tempo_bpm (); duration_s ();
  seed (); trained () bool; joint_names (24,) str; parents (24,) int; rest_offsets (24, 3) m.
  With a user's SMPL model: body_vertices (V, 3), body_faces (F, 3), body_weights (V, 24),
  body_joints (24, 3) (see backend/smpl_body.py).
  Frame: SMPL's, Y up, the body facing +Z, the floor at y = 0.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from bailando_blender.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, REST_OFFSETS
from models.files import atomic_output

from .errors import UserInputError
from .pipeline import Dance

FORMATS = (".npz", ".json", ".bvh")
BVH_UNITS_PER_METRE = 100.0  # BVH offsets and positions in centimetres, as most mocap tools expect
BVH_END_SITE_LENGTH = 0.1  # metres, along the last bone, for joints with no child


def dance_arrays(dance: Dance) -> dict[str, np.ndarray]:
    return {
        "fps": np.float64(dance.fps),
        "joint_rotations": dance.joint_rotations.astype(np.float32),
        "root_translation": dance.root_translation.astype(np.float32),
        "beat_times": np.asarray(dance.beat_times, dtype=np.float64),
        "tempo_bpm": np.float64(dance.tempo_bpm),
        "duration_s": np.float64(dance.duration_s),
        "seed": np.int64(dance.seed),
        "trained": np.bool_(dance.trained),
        "joint_names": np.array(JOINT_NAMES),
        "parents": np.array(PARENTS, dtype=np.int64),
        "rest_offsets": REST_OFFSETS.astype(np.float32),
    }


def bvh_text(dance: Dance) -> str:
    """The dance as BVH: SMPL's joints and frame (Y up), centimetres, ZYX Euler channels."""
    children: dict[int, list[int]] = {joint: [] for joint in range(NUM_JOINTS)}
    for joint, parent in enumerate(PARENTS):
        if parent >= 0:
            children[parent].append(joint)
    lines = ["HIERARCHY"]

    def write(joint: int, depth: int) -> None:
        pad = "  " * depth
        offset = REST_OFFSETS[joint] * BVH_UNITS_PER_METRE
        if joint == 0:
            lines.append(f"ROOT {JOINT_NAMES[joint]}")
        else:
            lines.append(f"{pad}JOINT {JOINT_NAMES[joint]}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        channels = "6 Xposition Yposition Zposition" if joint == 0 else "3"
        lines.append(f"{pad}  CHANNELS {channels} Zrotation Yrotation Xrotation")
        for child in children[joint]:
            write(child, depth + 1)
        if not children[joint]:
            direction = REST_OFFSETS[joint] / np.linalg.norm(REST_OFFSETS[joint])
            end = direction * BVH_END_SITE_LENGTH * BVH_UNITS_PER_METRE
            lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}"])
            lines.append(pad + "  }")
        lines.append(pad + "}")

    write(0, 0)
    order = []

    def collect(joint: int) -> None:
        order.append(joint)
        for child in children[joint]:
            collect(child)

    collect(0)
    quaternions = dance.joint_rotations[:, order].reshape(-1, 4)
    euler = Rotation.from_quat(quaternions, scalar_first=True).as_euler("ZYX", degrees=True)
    euler = euler.reshape(dance.num_frames, -1)
    motion = np.concatenate([dance.root_translation * BVH_UNITS_PER_METRE, euler], axis=1)
    lines += ["MOTION", f"Frames: {dance.num_frames}", f"Frame Time: {1.0 / dance.fps:.8f}"]
    lines += [" ".join(f"{value:.5f}" for value in row) for row in motion]
    return "\n".join(lines) + "\n"


def check_output_path(path: str | Path) -> Path:
    """UserInputError unless ``path`` names a file of a known format that can be written: not a
    folder, in an existing folder this process may write to (checked before any work is done)."""
    path = Path(path)
    if path.is_dir():
        raise UserInputError(path, "is a folder, not a file name")
    if path.suffix.lower() not in FORMATS:
        raise UserInputError(path, f"unknown output format '{path.suffix}' (use {', '.join(FORMATS)})")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserInputError(path, f"the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserInputError(path, f"the folder {folder} cannot be written to")
    return path


def save_dance(dance: Dance, path: str | Path, extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``dance`` in the format named by the suffix, atomically (no half-written file).

    ``extra`` arrays (e.g. the SMPL body's) go into NPZ files only.
    """
    path = check_output_path(path)
    try:
        _write(dance, path, extra)
    except OSError as error:  # a full disk, a folder that went away: nothing was left behind
        raise UserInputError(path, f"could not be written ({error.strerror or error})") from None
    return path


def _write(dance: Dance, path: Path, extra: dict[str, np.ndarray] | None) -> None:
    suffix = path.suffix.lower()
    with atomic_output(path) as temporary, open(temporary, "wb") as stream:
        if suffix == ".npz":
            np.savez(stream, **dance_arrays(dance), **(extra or {}))
        elif suffix == ".json":
            arrays = {key: value.tolist() for key, value in dance_arrays(dance).items()}
            stream.write(json.dumps(arrays).encode())
        else:
            stream.write(bvh_text(dance).encode())
