"""Points in the world -> pixels of a Blender camera's render (pure numpy), for the 2D pose pass.

The camera model is Blender's own (its view plane, as ``BKE_camera_params_compute_viewplane``
computes it): the sensor fit picks which sensor side spans which image side (AUTO: the
sensor width spans the longer side of the image in display units), pixel aspect stretches
pixels, shift moves the view plane in units of its larger side, and an orthographic camera's
``ortho_scale`` spans that side in metres. Pixels: x to the right, y down, (0, 0) the top-left
corner of the top-left pixel, as image files and OpenPose's keypoints count them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraModel:
    """What projection needs of a camera and the scene's render settings.

    world_to_camera: (4, 4) the inverse of the camera object's world matrix (the camera looks
    down its -Z axis, +Y up in the image), or (T, 4, 4) one per frame of a moving camera;
    lens_mm, sensor sizes in mm; sensor_fit: "AUTO",
    "HORIZONTAL" or "VERTICAL"; shift_x, shift_y in units of the view plane's larger side;
    resolution in pixels (after the render percentage); pixel_aspect_x, pixel_aspect_y.
    """

    world_to_camera: np.ndarray
    orthographic: bool
    lens_mm: float
    ortho_scale: float
    sensor_width: float
    sensor_height: float
    sensor_fit: str
    shift_x: float
    shift_y: float
    resolution_x: int
    resolution_y: int
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0


def view_plane(camera: CameraModel) -> tuple[float, float, float, float]:
    """(x_min, x_max, y_min, y_max) of the view plane at distance 1 in front of the camera
    (perspective), or in metres (orthographic)."""
    width, height = float(camera.resolution_x), float(camera.resolution_y)
    y_correction = camera.pixel_aspect_y / camera.pixel_aspect_x
    fit = camera.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if width * camera.pixel_aspect_x >= height * camera.pixel_aspect_y else "VERTICAL"
    sensor = camera.sensor_height if camera.sensor_fit == "VERTICAL" else camera.sensor_width
    size = camera.ortho_scale if camera.orthographic else sensor / camera.lens_mm
    spanned = width if fit == "HORIZONTAL" else y_correction * height
    per_unit = size / spanned
    dx, dy = camera.shift_x * spanned, camera.shift_y * spanned
    half_x, half_y = 0.5 * width, 0.5 * y_correction * height
    return (
        (-half_x + dx) * per_unit,
        (half_x + dx) * per_unit,
        (-half_y + dy) * per_unit,
        (half_y + dy) * per_unit,
    )


def to_camera(points: np.ndarray, world_to_camera: np.ndarray) -> np.ndarray:
    """(..., 3) world points -> the camera's space; a moving camera's (T, 4, 4) takes (T, ..., 3)."""
    if world_to_camera.ndim == 2:
        return points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    flat = points.reshape(len(points), -1, 3)
    local = np.einsum("tij,tkj->tki", world_to_camera[:, :3, :3], flat) + world_to_camera[:, None, :3, 3]
    return local.reshape(points.shape)


def project(points: np.ndarray, camera: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) world points -> (..., 2) pixel coordinates and (...,) depth in front of the camera (m).

    Points behind a perspective camera (depth <= 0) get NaN pixels. With a moving camera
    (``world_to_camera`` (T, 4, 4)) the points are (T, ..., 3), frame t seen from camera t.
    """
    points = np.asarray(points, dtype=np.float64)
    local = to_camera(points, camera.world_to_camera)
    depth = -local[..., 2]
    if camera.orthographic:
        plane = local[..., :2]
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            plane = local[..., :2] / depth[..., None]
        plane = np.where((depth > 0)[..., None], plane, np.nan)
    x_min, x_max, y_min, y_max = view_plane(camera)
    u = (plane[..., 0] - x_min) / (x_max - x_min)
    v = (plane[..., 1] - y_min) / (y_max - y_min)
    pixels = np.stack([u * camera.resolution_x, (1.0 - v) * camera.resolution_y], axis=-1)
    return pixels, depth


POSE_PASS_SIZE = (512, 896)  # width, height in pixels: the 2D pose pass's default, X-Dancer's 896 x 512 portrait
FRAMING_SENSOR_MM = 36.0  # Blender's default sensor width
FRAMING_LENS_MM = 50.0  # a normal lens: little perspective distortion of the body
FRAMING_MARGIN = 1.1  # the framed points' extent times this fills the frame


def framing_camera(
    points: np.ndarray, facing: np.ndarray, width: int, height: int, sensor_mm: float
) -> tuple[np.ndarray, float]:
    """A level perspective camera in front of the points that keeps every one of them in frame.

    points (..., 3) world (Z up); facing (3,) the way the dancer faces (towards the camera);
    width, height: the image in square pixels; sensor_mm: the sensor's width (fit AUTO).
    Returns the camera object's (4, 4) world matrix and its lens in mm.
    """
    flat = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    low, high = flat.min(axis=0), flat.max(axis=0)
    centre = 0.5 * (low + high)
    front = np.array([facing[0], facing[1], 0.0])
    front = front / (np.linalg.norm(front) or 1.0)
    right = np.cross((0.0, 0.0, 1.0), front)  # the image's right, seen from the camera
    across = np.abs((flat - centre) @ right).max()
    up = 0.5 * (high[2] - low[2])
    depth = np.abs((flat - centre) @ front).max()
    half_plane = 0.5 * sensor_mm / FRAMING_LENS_MM / max(width, height)  # per pixel, at 1 m
    distance = FRAMING_MARGIN * max(across / (half_plane * width), up / (half_plane * height)) + depth
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2] = right, (0.0, 0.0, 1.0), front  # looks down -Z
    matrix[:3, 3] = centre + front * distance
    return matrix, FRAMING_LENS_MM
