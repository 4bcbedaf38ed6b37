"""SMPL joints -> OpenPose whole-body keypoints in 3D (pure numpy), for the 2D pose pass.

Layout (OpenPose's, as pose-driven image animation models read it): body-18 (COCO order:
nose, neck, right shoulder/elbow/wrist, left shoulder/elbow/wrist, right hip/knee/ankle,
left hip/knee/ankle, right eye, left eye, right ear, left ear), then the 6 foot keypoints
(left big toe, left small toe, left heel, right big toe, right small toe, right heel), then
21 keypoints per hand (left, then right).

Without the user's SMPL mesh these are **derived from the skeleton**: joints map directly
where OpenPose has them (shoulders, elbows, wrists, hips, knees, ankles; neck = between the
shoulders); face and foot points are fixed offsets in the head's and the feet's own frames,
measured by eye on the neutral SMPL body; hands carry only the wrist (the skeleton has no
fingers), their other 20 points get confidence 0.
"""

from __future__ import annotations

import numpy as np

from .skeleton import JOINT_NAMES

BODY_18 = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip
FEET = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")
HAND_POINTS = 21  # OpenPose's hand model: the wrist, then four points per finger
NUM_KEYPOINTS = len(BODY_18) + len(FEET) + 2 * HAND_POINTS

J = {name: index for index, name in enumerate(JOINT_NAMES)}
# OpenPose body point -> the SMPL joint at the same place.
DIRECT = {
    "right_shoulder": "right_shoulder", "right_elbow": "right_elbow", "right_wrist": "right_wrist",
    "left_shoulder": "left_shoulder", "left_elbow": "left_elbow", "left_wrist": "left_wrist",
    "right_hip": "right_hip", "right_knee": "right_knee", "right_ankle": "right_ankle",
    "left_hip": "left_hip", "left_knee": "left_knee", "left_ankle": "left_ankle",
}  # fmt: skip
# Face points in the head joint's frame (SMPL axes: +X the body's left, +Y up, +Z forward), metres.
FACE_OFFSETS = {
    "nose": (0.0, 0.06, 0.11),
    "right_eye": (-0.035, 0.1, 0.09),
    "left_eye": (0.035, 0.1, 0.09),
    "right_ear": (-0.075, 0.08, 0.0),
    "left_ear": (0.075, 0.08, 0.0),
}
# Foot points in the ankle joint's frame, metres (the toe joint sits at the ball of the foot).
FOOT_OFFSETS = {
    "big_toe": (-0.02, -0.07, 0.17),  # toward the body's midline: mirrored for the right foot
    "small_toe": (0.035, -0.07, 0.14),
    "heel": (0.0, -0.08, -0.05),
}


def whole_body_keypoints(positions: np.ndarray, global_rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 24, 3) joint positions and (T, 24, 3, 3) global joint rotations (SMPL's frame, from
    ``skeleton.forward_kinematics``) -> (T, NUM_KEYPOINTS, 3) keypoints and (NUM_KEYPOINTS,)
    whether each is known (False: hand points the skeleton cannot place)."""
    frames = positions.shape[0]
    points = np.zeros((frames, NUM_KEYPOINTS, 3))
    known = np.ones(NUM_KEYPOINTS, dtype=bool)
    for index, name in enumerate(BODY_18):
        if name in DIRECT:
            points[:, index] = positions[:, J[DIRECT[name]]]
        elif name == "neck":
            points[:, index] = 0.5 * (positions[:, J["left_shoulder"]] + positions[:, J["right_shoulder"]])
        else:
            head = J["head"]
            points[:, index] = positions[:, head] + global_rotations[:, head] @ np.array(FACE_OFFSETS[name])
    start = len(BODY_18)
    for index, name in enumerate(FEET):
        side, part = name.split("_", 1)
        ankle = J[f"{side}_ankle"]
        offset = np.array(FOOT_OFFSETS[part])
        if side == "right":
            offset = offset * [-1.0, 1.0, 1.0]
        points[:, start + index] = positions[:, ankle] + global_rotations[:, ankle] @ offset
    start += len(FEET)
    for hand, wrist in enumerate(("left_wrist", "right_wrist")):
        first = start + hand * HAND_POINTS
        points[:, first] = positions[:, J[wrist]]
        known[first + 1 : first + HAND_POINTS] = False
    return points, known
