"""A camera that follows the dancer (pure numpy): the 2D pose pass's and the preview's *Auto*.

The rule. The camera stays level and looks the way the dancer faces at rest, turned round
(it does not orbit when the dancer turns). Each frame it is placed so that:

1. its aim, across and up, is the centre of the body's box (the keypoints' extent along the
   image's right and along Z), smoothed over time by a Gaussian of ``centre_smoothing_s``
   applied to the whole dance at once, forwards and backwards, so it follows the body's slow
   path without lag and without the sway of each step;
2. its distance (a dolly, the lens fixed) puts the body's height at ``fill`` of the frame's
   height, that height smoothed by a Gaussian of ``zoom_smoothing_s`` so a crouch does not
   pump the zoom, and never closer than what keeps every keypoint inside the frame with
   ``margin`` to spare: the needed distance is widened over ``zoom_smoothing_s`` on either
   side (a running maximum) before the smoothing, then checked through the real perspective
   projection and pulled back where a keypoint would still leave the frame (three rounds).

Everything is decided from the whole dance, so nothing lags; ``framing`` measures the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .projection import FRAMING_LENS_MM, FRAMING_SENSOR_MM

DEFAULT_FILL = 0.75  # of the frame's height that the body's keypoints span
DEFAULT_MARGIN = 0.04  # of the frame's half-size left free around the outermost keypoint
CENTRE_SMOOTHING_S = 0.6  # Gaussian sigma of the aim's path, seconds
ZOOM_SMOOTHING_S = 1.0  # Gaussian sigma of the distance, seconds
FIT_ROUNDS = 3  # rounds of checking the keypoints through the projection and pulling back
UP = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class CameraPath:
    """matrices (T, 4, 4): the camera object's world matrix per frame (looks down its -Z, +Y up);
    lens_mm, sensor_mm (its width, fit AUTO); width, height: the image in square pixels."""

    matrices: np.ndarray
    lens_mm: float
    sensor_mm: float
    width: int
    height: int


def smoothed(values: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian smoothing along axis 0, forwards and backwards (no lag), the ends held."""
    values = np.asarray(values, dtype=np.float64)
    if sigma_frames <= 0 or len(values) < 2:
        return values.copy()
    reach = max(1, int(np.ceil(3.0 * sigma_frames)))
    kernel = np.exp(-0.5 * (np.arange(-reach, reach + 1) / sigma_frames) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, [(reach, reach)] + [(0, 0)] * (values.ndim - 1), mode="edge")
    flat = padded.reshape(len(padded), -1)
    out = np.stack([np.convolve(flat[:, column], kernel, mode="valid") for column in range(flat.shape[1])], axis=1)
    return out.reshape(values.shape)


def running_max(values: np.ndarray, half_width: int) -> np.ndarray:
    """(T,) the maximum over frames t - half_width .. t + half_width."""
    if half_width <= 0:
        return values.copy()
    padded = np.pad(values, half_width, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_width + 1)
    return windows.max(axis=1)


def _axes(facing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(front, right): horizontal unit vectors, front towards the camera, right the image's right."""
    front = np.array([facing[0], facing[1], 0.0], dtype=np.float64)
    norm = np.linalg.norm(front)
    front = front / norm if norm > 1e-9 else np.array([0.0, -1.0, 0.0])
    return front, np.cross(UP, front)


def _project(points: np.ndarray, matrices: np.ndarray, tan_half: np.ndarray) -> np.ndarray:
    """(T, K, 3) world points -> (T, K, 2) offsets from the image centre in half-sizes (x, y up)."""
    inverse = np.linalg.inv(matrices)
    local = np.einsum("tij,tkj->tki", inverse[:, :3, :3], points) + inverse[:, None, :3, 3]
    depth = np.maximum(-local[..., 2], 1e-6)
    return local[..., :2] / depth[..., None] / tan_half


def follow_path(
    points: np.ndarray,
    facing: np.ndarray,
    fps: float,
    width: int,
    height: int,
    fill: float = DEFAULT_FILL,
    margin: float = DEFAULT_MARGIN,
    lens_mm: float = FRAMING_LENS_MM,
    sensor_mm: float = FRAMING_SENSOR_MM,
) -> CameraPath:
    """The following camera's path for keypoints ``points`` (T, K, 3) world metres, Z up, of a
    dancer facing ``facing`` (3,) at rest, at ``fps`` frames a second, for a ``width`` x ``height``
    image (sensor fit AUTO: the sensor spans the longer side)."""
    points = np.asarray(points, dtype=np.float64)
    front, right = _axes(facing)
    across, up, depth = points @ right, points[..., 2], points @ front  # (T, K) each
    aim_across = smoothed(0.5 * (across.max(axis=1) + across.min(axis=1)), CENTRE_SMOOTHING_S * fps)
    aim_up = smoothed(0.5 * (up.max(axis=1) + up.min(axis=1)), CENTRE_SMOOTHING_S * fps)
    aim_depth = smoothed(0.5 * (depth.max(axis=1) + depth.min(axis=1)), CENTRE_SMOOTHING_S * fps)
    per_pixel = sensor_mm / lens_mm / max(width, height)  # the view's size per pixel at 1 m
    tan_half = np.array([0.5 * per_pixel * width, 0.5 * per_pixel * height])
    # Distance for the fill: the body's (smoothed) height spans fill of the frame's height.
    body_height = smoothed(up.max(axis=1) - up.min(axis=1), ZOOM_SMOOTHING_S * fps)
    distance = body_height / (2.0 * fill * tan_half[1])
    # ...and for every keypoint in frame, seen flat at the aim's depth (the projection corrects it).
    spread = np.maximum(
        np.abs(across - aim_across[:, None]).max(axis=1) / tan_half[0],
        np.abs(up - aim_up[:, None]).max(axis=1) / tan_half[1],
    ) / (1.0 - margin)
    near = np.maximum(0.0, (depth - aim_depth[:, None]).max(axis=1))  # the body's part nearest the camera
    target = np.maximum(distance, spread + near)
    half_width = max(1, round(ZOOM_SMOOTHING_S * fps))
    matrices = np.tile(np.eye(4), (len(points), 1, 1))
    matrices[:, :3, 0], matrices[:, :3, 1], matrices[:, :3, 2] = right, UP, front
    centre = aim_across[:, None] * right + aim_up[:, None] * UP + aim_depth[:, None] * front
    for _ in range(FIT_ROUNDS):
        distance = smoothed(running_max(target, half_width), ZOOM_SMOOTHING_S * fps)
        matrices[:, :3, 3] = centre + distance[:, None] * front
        offsets = np.abs(_project(points, matrices, tan_half)).max(axis=(1, 2)) / (1.0 - margin)
        target = np.maximum(target, distance * offsets)  # farther where the worst keypoint overshoots
    return CameraPath(matrices, lens_mm, sensor_mm, width, height)


@dataclass(frozen=True)
class Framing:
    """boxes (T, 4): the body's box per frame in pixels (x_min, y_min, x_max, y_max); fill (T,):
    its height / the frame's; inside (T,): every keypoint in frame; acceleration_m_s2: the
    camera's largest acceleration."""

    boxes: np.ndarray
    fill: np.ndarray
    inside: np.ndarray
    acceleration_m_s2: float

    def summary(self) -> dict[str, float]:
        return {
            "median_fill": float(np.median(self.fill)),
            "inside_share": float(self.inside.mean()),
            "max_acceleration_m_s2": self.acceleration_m_s2,
        }


def framing(pixels: np.ndarray, width: int, height: int, camera_positions: np.ndarray, fps: float) -> Framing:
    """How ``pixels`` (T, K, 2) of the body's keypoints sit in a ``width`` x ``height`` frame, and
    how hard the camera at ``camera_positions`` (T, 3) accelerates at ``fps``."""
    boxes = np.concatenate([np.nanmin(pixels, axis=1), np.nanmax(pixels, axis=1)], axis=1)
    inside = (
        np.isfinite(pixels).all(axis=(1, 2))
        & (boxes[:, 0] >= 0)
        & (boxes[:, 1] >= 0)
        & (boxes[:, 2] <= width)
        & (boxes[:, 3] <= height)
    )
    fill = (boxes[:, 3] - boxes[:, 1]) / height
    if len(camera_positions) >= 3:
        acceleration = np.diff(camera_positions, n=2, axis=0) * fps**2
        peak = float(np.linalg.norm(acceleration, axis=1).max())
    else:
        peak = 0.0
    return Framing(boxes, fill, inside, peak)
