"""Pose-guide frames: 2D keypoints drawn in OpenPose's colours on black (pure numpy).

The convention pose-driven image animation models are trained on (OpenPose's renderer, as
ControlNet and DWPose draw it): each body limb a filled stroke in its own hue at 60 %
brightness, each body keypoint a dot in full colour; hand bones in a rainbow of hues, hand
keypoints blue. Feet follow OpenPose's body-25 drawing. A point is drawn when its
confidence reaches ``DRAW_THRESHOLD`` (DWPose's), so a point the body hides (lower
confidence) still shows, one outside the frame does not.
"""

from __future__ import annotations

import colorsys

import numpy as np

from .pose_keypoints import BODY_18, FEET, HAND_POINTS

DRAW_THRESHOLD = 0.3  # confidence at which a keypoint is drawn (DWPose's)
LIMB_WIDTH_PX = 4.0  # half the stroke width of a body limb (OpenPose's stickwidth), at 512 px high
POINT_RADIUS_PX = 4.0  # body keypoint dots
HAND_LINE_WIDTH_PX = 1.0  # half the width of a hand bone
HAND_POINT_RADIUS_PX = 2.0
REFERENCE_HEIGHT_PX = 512.0  # the frame height the sizes above are for; they scale with the frame
LIMB_BRIGHTNESS = 0.6  # limbs are drawn at this share of their colour, points at full

# OpenPose's 18 body colours (RGB), one per limb below and per keypoint.
BODY_COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
_B = {name: index for index, name in enumerate(BODY_18)}
BODY_LIMBS = tuple(
    (_B[a], _B[b])
    for a, b in (
        ("neck", "right_shoulder"), ("neck", "left_shoulder"), ("right_shoulder", "right_elbow"),
        ("right_elbow", "right_wrist"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
        ("neck", "right_hip"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
        ("neck", "left_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
        ("neck", "nose"), ("nose", "right_eye"), ("right_eye", "right_ear"),
        ("nose", "left_eye"), ("left_eye", "left_ear"),
    )
)  # fmt: skip
_F = {name: len(BODY_18) + index for index, name in enumerate(FEET)}
# Feet as body-25 draws them: ankle to big toe, big toe to small toe, ankle to heel.
FOOT_LIMBS = tuple(
    (_B[f"{side}_ankle"], _F[f"{side}_{part}"])
    if part != "small_toe"
    else (_F[f"{side}_big_toe"], _F[f"{side}_small_toe"])
    for side in ("left", "right")
    for part in ("big_toe", "small_toe", "heel")
)
FOOT_COLOURS = ((0, 0, 255), (0, 0, 255), (0, 0, 255), (0, 255, 255), (0, 255, 255), (0, 255, 255))
HAND_BONES = tuple((0 if joint % 4 == 1 else joint - 1, joint) for joint in range(1, HAND_POINTS))
HAND_COLOURS = tuple(
    tuple(round(255 * c) for c in colorsys.hsv_to_rgb(bone / len(HAND_BONES), 1.0, 1.0))
    for bone in range(len(HAND_BONES))
)
HAND_POINT_COLOUR = (0, 0, 255)


def _stroke(image: np.ndarray, a: np.ndarray, b: np.ndarray, half_width: float, colour: np.ndarray) -> None:
    """Paint the points within half_width of segment a-b (a disc when a == b), clipped to the image."""
    height, width = image.shape[:2]
    low = np.floor(np.minimum(a, b) - half_width - 1).astype(int)
    high = np.ceil(np.maximum(a, b) + half_width + 1).astype(int)
    x0, y0 = max(low[0], 0), max(low[1], 0)
    x1, y1 = min(high[0], width), min(high[1], height)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1]
    pixel = np.stack([xs + 0.5, ys + 0.5], axis=-1)  # pixel centres
    segment = b - a
    length_squared = float(segment @ segment)
    t = np.clip(((pixel - a) @ segment) / length_squared, 0.0, 1.0) if length_squared > 0 else 0.0
    nearest = a + np.asarray(t)[..., None] * segment
    inside = np.sum((pixel - nearest) ** 2, axis=-1) <= half_width**2
    image[y0:y1, x0:x1][inside] = colour


def draw_pose(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
    """(NUM_KEYPOINTS, 3) pixels x, y and confidence -> (height, width, 3) uint8 RGB guide frame."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    size = height / REFERENCE_HEIGHT_PX
    xy, shown = keypoints[:, :2], keypoints[:, 2] >= DRAW_THRESHOLD

    def limbs(pairs, colours, half_width: float, brightness: float) -> None:
        for (a, b), colour in zip(pairs, colours, strict=False):
            if shown[a] and shown[b]:
                _stroke(image, xy[a], xy[b], half_width * size, np.array(colour) * brightness)

    limbs(BODY_LIMBS, BODY_COLOURS, LIMB_WIDTH_PX, LIMB_BRIGHTNESS)
    limbs(FOOT_LIMBS, FOOT_COLOURS, LIMB_WIDTH_PX, LIMB_BRIGHTNESS)
    for index in range(len(BODY_18)):
        if shown[index]:
            _stroke(image, xy[index], xy[index], POINT_RADIUS_PX * size, np.array(BODY_COLOURS[index]))
    for hand in range(2):
        first = len(BODY_18) + len(FEET) + hand * HAND_POINTS
        bones = [(first + a, first + b) for a, b in HAND_BONES]
        limbs(bones, HAND_COLOURS, HAND_LINE_WIDTH_PX, 1.0)
        for index in range(first, first + HAND_POINTS):
            if shown[index]:
                _stroke(image, xy[index], xy[index], HAND_POINT_RADIUS_PX * size, np.array(HAND_POINT_COLOUR))
    return image
