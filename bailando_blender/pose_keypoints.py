"""SMPL joints -> OpenPose whole-body keypoints in 3D (pure numpy), for the 2D pose pass.

Layout (OpenPose's, as pose-driven image animation models read it): body-18 (COCO order:
nose, neck, right shoulder/elbow/wrist, left shoulder/elbow/wrist, right hip/knee/ankle,
left hip/knee/ankle, right eye, left eye, right ear, left ear), then the 6 foot keypoints
(left big toe, left small toe, left heel, right big toe, right small toe, right heel), then
21 keypoints per hand (left, then right).

Without the user's SMPL mesh these are **derived from the skeleton**: joints map directly
where OpenPose has them (shoulders, elbows, wrists, hips, knees, ankles; neck = between the
shoulders); face and foot points are fixed offsets in the head's and the feet's own frames,
measured by eye on the neutral SMPL body. SMPL's hand is one rigid, flat, open hand (no
finger joints), so the 21 hand points are a flat hand laid out in the wrist's frame, sized by
eye on the neutral SMPL mesh: they turn with the wrist, the fingers never curl.

**With the user's SMPL mesh** on the dancer, the face points, the feet and the fingertips are
the posed mesh's own vertices (the vertices SMPL-X's regressors use, ``SMPL_VERTEX_KEYPOINTS``)
and each finger's other points are carried along so that the finger ends at its tip.
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

# The left hand's 21 points (OpenPose order: wrist, then thumb, index, middle, ring, little
# finger, four points each from the knuckle to the tip), metres in the wrist's frame as
# (along the hand, towards the thumb, below the palm). In SMPL's rest pose the left hand
# points along +X with the palm down and the thumb forward (+Z); the right hand mirrors X.
HAND_LAYOUT = (
    (0.0, 0.0, 0.0),
    (0.025, 0.022, 0.01), (0.047, 0.04, 0.015), (0.07, 0.055, 0.015), (0.09, 0.065, 0.015),
    (0.095, 0.025, 0.0), (0.133, 0.028, 0.0), (0.158, 0.029, 0.0), (0.178, 0.03, 0.0),
    (0.1, 0.005, 0.0), (0.143, 0.005, 0.0), (0.17, 0.005, 0.0), (0.192, 0.005, 0.0),
    (0.095, -0.014, 0.0), (0.133, -0.016, 0.0), (0.157, -0.017, 0.0), (0.177, -0.018, 0.0),
    (0.086, -0.032, 0.0), (0.114, -0.037, 0.0), (0.132, -0.04, 0.0), (0.148, -0.042, 0.0),
)  # fmt: skip

# SMPL mesh vertex of each keypoint the mesh places (the indices smplx's ``vertex_ids`` lists
# for SMPL-H, whose body mesh is SMPL's).
SMPL_VERTEX_KEYPOINTS = {
    "nose": 332, "right_eye": 6260, "left_eye": 2800, "right_ear": 4071, "left_ear": 583,
    "left_big_toe": 3216, "left_small_toe": 3226, "left_heel": 3387,
    "right_big_toe": 6617, "right_small_toe": 6624, "right_heel": 6787,
}  # fmt: skip
SMPL_FINGERTIPS = {  # side -> vertices of the thumb, index, middle, ring and little fingertips
    "left": (2746, 2319, 2445, 2556, 2673),
    "right": (6191, 5782, 5905, 6016, 6133),
}
SMPL_MESH_VERTICES = 6890
POINTS_PER_FINGER = 4


def mesh_vertex_ids() -> np.ndarray:
    """The SMPL vertices ``mesh_keypoints`` reads, in the order it reads them."""
    return np.array([*SMPL_VERTEX_KEYPOINTS.values(), *SMPL_FINGERTIPS["left"], *SMPL_FINGERTIPS["right"]])


def mesh_keypoints(points: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """(T, NUM_KEYPOINTS, 3) skeleton keypoints + (T, V, 3) the posed ``mesh_vertex_ids`` vertices
    -> the keypoints with face, feet and fingertips on the mesh."""
    points = points.copy()
    names = [*BODY_18, *FEET]
    for column, name in enumerate(SMPL_VERTEX_KEYPOINTS):
        points[:, names.index(name)] = vertices[:, column]
    column = len(SMPL_VERTEX_KEYPOINTS)
    for hand, side in enumerate(("left", "right")):
        first = len(BODY_18) + len(FEET) + hand * HAND_POINTS
        for finger in range(len(SMPL_FINGERTIPS[side])):
            chain = first + np.arange(1 + finger * POINTS_PER_FINGER, 1 + (finger + 1) * POINTS_PER_FINGER)
            # The finger's points move by a share of the tip's correction: their share of its length.
            links = np.linalg.norm(np.diff(points[:, [first, *chain]], axis=1), axis=-1)  # (T, 4)
            share = np.cumsum(links, axis=1) / np.maximum(links.sum(axis=1, keepdims=True), 1e-9)
            correction = vertices[:, column] - points[:, chain[-1]]
            points[:, chain] += share[..., None] * correction[:, None]
            column += 1
    return points


def hand_offsets(side: str) -> np.ndarray:
    """(21, 3) the hand points in the wrist's frame, SMPL axes, metres."""
    layout = np.array(HAND_LAYOUT)
    offsets = np.stack([layout[:, 0], -layout[:, 2], layout[:, 1]], axis=-1)
    return offsets * [-1.0, 1.0, 1.0] if side == "right" else offsets


def whole_body_keypoints(positions: np.ndarray, global_rotations: np.ndarray) -> np.ndarray:
    """(T, 24, 3) joint positions and (T, 24, 3, 3) global joint rotations (SMPL's frame, from
    ``skeleton.forward_kinematics``) -> (T, NUM_KEYPOINTS, 3) keypoints.

    ``global_rotations`` may be any per-joint linear frames that take an offset in SMPL's
    axes to the frame of ``positions`` (Blender's world, scaled with the armature object).
    """
    frames = positions.shape[0]
    points = np.zeros((frames, NUM_KEYPOINTS, 3))
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
    for hand, side in enumerate(("left", "right")):
        first = start + hand * HAND_POINTS
        wrist = J[f"{side}_wrist"]
        points[:, first : first + HAND_POINTS] = positions[:, wrist, None] + np.einsum(
            "tij,kj->tki", global_rotations[:, wrist], hand_offsets(side)
        )
    return points
