"""Joint positions -> SMPL rotations: any joint-position dance (Bailando's output among them) as a dance file.

    python -m training.positions_to_rotations dance.npy --out dance.npz|.bvh|.json [--fps 60] [--up y|z] \
        [--units m|cm] [--device auto|cpu|cuda] [--iterations 400]

Input: SMPL's 24 joints per frame, in SMPL's joint order, as
  - ``.npy``: an array (T, 24, 3) or (T, 72);
  - ``.npz``: the array under ``positions`` or ``pred_position`` (else the only array);
  - ``.json``: a list, or an object with ``pred_position``, ``positions`` or ``dance_array``;
  - Bailando's ``.pkl`` (``np.save`` of ``{"pred_position": (T, 72)}``): a pickle, read only
    with ``--allow-pickle`` (a pickle can run code; open only files you trust).
The fit is ``training/ik.py``'s (temporal smoothness, per-sequence skeleton scale, bone
tolerance); the mean per-joint position error after fitting is printed. Exit status 2 with
one line for a bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from backend.dance_io import check_output_path, save_dance
from backend.errors import UserInputError
from backend.pipeline import Dance, put_on_floor
from bailando_blender.skeleton import NUM_JOINTS, forward_kinematics, make_quaternions_continuous, matrix_to_quaternion

from .ik import SMPL_JOINT_MAP, FitConfig, fit_positions

ARRAY_KEYS = ("positions", "pred_position", "dance_array")
# Every SMPL joint is observed, so nothing needs pulling to rest, and the bones are SMPL's
# own: they may stretch only a little. Measured on a smooth random dance of 40 frames
# (tests/test_training.py): mean error on SMPL's skeleton 2.8 cm with the marker settings
# (400 iterations), 1.2 cm with these at 400, 0.5 cm at 1000.
SMPL_SOURCE_FIT = FitConfig(weak_joints=(), rest_weight=1e-5, bone_scale_bounds=(0.98, 1.02), iterations=1000)
UNITS_PER_METRE = {"m": 1.0, "cm": 100.0, "mm": 1000.0}
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # (x, y, z) -> (x, z, -y)


def read_positions(path: Path, allow_pickle: bool = False) -> np.ndarray:
    """(T, 24, 3) float64 from any of the formats above; UserInputError otherwise."""
    if not path.is_file():
        raise UserInputError(path, "no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                keys = [key for key in ARRAY_KEYS if key in data] or list(data.keys())
                if len(keys) != 1 and not any(key in data for key in ARRAY_KEYS):
                    raise UserInputError(path, f"holds {len(keys)} arrays; name the positions 'positions'")
                array = data[keys[0]]
        elif suffix == ".json":
            content = json.loads(path.read_text())
            if isinstance(content, dict):
                key = next((key for key in ARRAY_KEYS if key in content), None)
                if key is None:
                    raise UserInputError(path, f"has none of the keys {', '.join(ARRAY_KEYS)}")
                content = content[key]
            array = np.asarray(content, dtype=np.float64)
        elif suffix == ".pkl":
            if not allow_pickle:
                raise UserInputError(
                    path, "is a pickle, which can run code when read; add --allow-pickle if you trust it"
                )
            content = np.load(path, allow_pickle=True)
            content = content.item() if content.dtype == object and content.shape == () else content
            array = content["pred_position"] if isinstance(content, dict) else content
        else:
            raise UserInputError(path, f"unknown format '{path.suffix}' (use .npy, .npz, .json or .pkl)")
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
        raise UserInputError(path, f"cannot be read: {error}") from None
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == NUM_JOINTS * 3:
        array = array.reshape(len(array), NUM_JOINTS, 3)
    if array.ndim != 3 or array.shape[1:] != (NUM_JOINTS, 3):
        raise UserInputError(path, f"holds an array of shape {array.shape}; expected (T, 24, 3) or (T, 72)")
    if len(array) < 3:
        raise UserInputError(path, f"has {len(array)} frames; at least 3 are needed")
    if not np.isfinite(array).all():
        raise UserInputError(path, "contains non-finite positions")
    return array


def positions_to_dance(
    positions: np.ndarray, fps: float, config: FitConfig, on_floor: bool = True
) -> tuple[Dance, float, float]:
    """(T, 24, 3) SMPL joints (Y up, metres) -> a Dance, the fit's mean joint error on the fitted
    (scaled) skeleton and the mean error of the dance on SMPL's neutral skeleton, metres."""
    result = fit_positions(positions, SMPL_JOINT_MAP, config)
    replayed, _ = forward_kinematics(result.joint_rotations, result.root_translation)  # the dance we write
    plain_error = float(np.linalg.norm(replayed - positions, axis=-1).mean())
    translation = result.root_translation
    if on_floor:
        translation = put_on_floor(result.joint_rotations, translation)
    quaternions = make_quaternions_continuous(matrix_to_quaternion(result.joint_rotations))
    dance = Dance(
        fps=float(fps),
        joint_rotations=quaternions.astype(np.float32),
        root_translation=translation.astype(np.float32),
        beat_times=np.zeros(0),
        tempo_bpm=0.0,
        duration_s=len(positions) / fps,
        seed=0,
        trained=False,
    )
    return dance, float(result.mean_error), plain_error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.positions_to_rotations", description=__doc__.splitlines()[0]
    )
    parser.add_argument("positions", type=Path)
    parser.add_argument("--out", type=Path, required=True, help=".npz, .json or .bvh")
    parser.add_argument("--fps", type=float, default=60.0, help="frame rate of the input (Bailando: 60)")
    parser.add_argument("--up", choices=("y", "z"), default="y", help="the input's up axis (SMPL, Bailando: y)")
    parser.add_argument("--units", choices=tuple(UNITS_PER_METRE), default="m")
    parser.add_argument("--keep-height", action="store_true", help="do not put the feet on y = 0")
    parser.add_argument("--iterations", type=int, default=SMPL_SOURCE_FIT.iterations)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--allow-pickle", action="store_true", help="read Bailando's .pkl output (a pickle)")
    args = parser.parse_args(argv)
    try:
        check_output_path(args.out)
        if not 0 < args.fps <= 1000:
            raise UserInputError("--fps", f"must be in (0, 1000], got {args.fps:g}")
        positions = read_positions(args.positions, args.allow_pickle) / UNITS_PER_METRE[args.units]
        if args.up == "z":
            positions = positions @ Z_UP_TO_Y_UP.T
        import torch

        device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        started = time.perf_counter()
        config = dataclasses.replace(SMPL_SOURCE_FIT, iterations=args.iterations, device=device)
        dance, error, plain_error = positions_to_dance(positions, args.fps, config, not args.keep_height)
        save_dance(dance, args.out)
    except UserInputError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    print(
        f"{args.out}: {dance.num_frames} frames at {args.fps:g} fps; mean joint position error "
        f"{error * 100:.2f} cm (fitted skeleton), {plain_error * 100:.2f} cm (SMPL's neutral skeleton); "
        f"{time.perf_counter() - started:.1f} s on {device}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
