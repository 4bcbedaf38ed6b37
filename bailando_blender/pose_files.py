"""The 2D pose pass on disk: OpenPose JSON per frame and one NPZ of everything (pure numpy + json).

Folder layout:
- ``keypoints.npz``: ``keypoints`` (T, K, 3) float32 pixel x, pixel y, confidence;
  ``points_3d`` (T, K, 3) world metres; ``names`` (K,); ``fps``, ``width``, ``height``;
  ``scene_frames`` (T,) the scene frame each sample was taken at; ``camera``;
  ``camera_matrices`` (T, 4, 4) its world matrix at each sample (a still camera: (4, 4));
  ``body_boxes`` (T, 4) the body's keypoints' box in pixels (x_min, y_min, x_max, y_max);
  ``layout``.
- ``json/<stem>_<12-digit frame>_keypoints.json``: OpenPose's per-frame format, one person:
  ``pose_keypoints_2d`` body-18 (COCO order), ``hand_left_keypoints_2d`` and
  ``hand_right_keypoints_2d`` 21 points each, ``foot_keypoints_2d`` the 6 foot points
  (OpenPose keeps feet in its body-25 list; body-18 readers ignore the extra key),
  ``face_keypoints_2d`` empty; ``canvas_width``/``canvas_height`` as ControlNet's editor
  writes them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .pose_keypoints import BODY_18, FEET, HAND_POINTS, NUM_KEYPOINTS

OPENPOSE_JSON_VERSION = 1.3  # the version field OpenPose writes
LAYOUT = "openpose body-18 + 6 feet + 21 left hand + 21 right hand"
DECIMALS = 2  # pixel precision written to JSON


NPZ_NAME = "keypoints.npz"


def keypoint_names() -> list[str]:
    hands = [f"{side}_hand_{index}" for side in ("left", "right") for index in range(HAND_POINTS)]
    names = [*BODY_18, *FEET, *hands]
    assert len(names) == NUM_KEYPOINTS
    return names


def openpose_frame(keypoints: np.ndarray, width: int, height: int) -> dict:
    """(K, 3) pixels + confidence of one frame -> OpenPose's JSON object."""
    flat = np.round(keypoints.astype(np.float64), DECIMALS)
    body, feet = len(BODY_18), len(BODY_18) + len(FEET)

    def listed(rows: np.ndarray) -> list[float]:
        return [float(value) for value in rows.ravel()]

    return {
        "version": OPENPOSE_JSON_VERSION,
        "canvas_width": width,
        "canvas_height": height,
        "people": [
            {
                "person_id": [-1],
                "pose_keypoints_2d": listed(flat[:body]),
                "foot_keypoints_2d": listed(flat[body:feet]),
                "face_keypoints_2d": [],
                "hand_left_keypoints_2d": listed(flat[feet : feet + HAND_POINTS]),
                "hand_right_keypoints_2d": listed(flat[feet + HAND_POINTS :]),
                "pose_keypoints_3d": [],
                "face_keypoints_3d": [],
                "hand_left_keypoints_3d": [],
                "hand_right_keypoints_3d": [],
            }
        ],
    }


def write_keypoint_files(
    folder: Path,
    stem: str,
    keypoints: np.ndarray,
    points_3d: np.ndarray,
    scene_frames: np.ndarray,
    fps: float,
    width: int,
    height: int,
    camera: str,
    body_boxes: np.ndarray,
    camera_matrices: np.ndarray,
) -> None:
    """Write the NPZ and the per-frame JSON files into ``folder`` (which must exist).
    body_boxes (T, 4): the body's keypoints' box per frame in pixels (x_min, y_min, x_max,
    y_max); camera_matrices (T, 4, 4) or (4, 4): the camera's world matrix per frame."""
    json_folder = folder / "json"
    json_folder.mkdir(exist_ok=True)
    for index, frame in enumerate(keypoints):
        text = json.dumps(openpose_frame(frame, width, height), separators=(",", ":"))
        (json_folder / f"{stem}_{index:012d}_keypoints.json").write_text(text)
    with open(folder / NPZ_NAME, "wb") as handle:
        np.savez_compressed(
            handle,
            keypoints=keypoints.astype(np.float32),
            points_3d=points_3d.astype(np.float32),
            names=np.array(keypoint_names()),
            fps=np.float64(fps),
            width=np.int64(width),
            height=np.int64(height),
            scene_frames=scene_frames.astype(np.float64),
            camera=np.array(camera),
            camera_matrices=np.asarray(camera_matrices, dtype=np.float64),
            body_boxes=body_boxes.astype(np.float32),
            layout=np.array(LAYOUT),
        )


def move_into(staging: Path, folder: Path) -> None:
    """Move every staged file into ``folder`` (replacing what has the same names); the staging
    folder is left with empty folders only, for the caller to remove."""
    for path in sorted(staging.rglob("*")):
        target = folder / path.relative_to(staging)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            os.replace(path, target)
