"""A Blender camera and the scene's render settings as a ``projection.CameraModel``."""

from __future__ import annotations

import bpy
import numpy as np

from .projection import CameraModel


def camera_model(
    scene: bpy.types.Scene, camera: bpy.types.Object, resolution: tuple[int, int] | None = None
) -> CameraModel:
    """The model of ``camera`` (an object with camera data) for ``scene``'s render size, or for
    ``resolution`` (width, height in square pixels) when given."""
    if camera is None or camera.type != "CAMERA":
        raise ValueError(f"'{getattr(camera, 'name', None)}' is not a camera")
    data = camera.data
    if data.type not in {"PERSP", "ORTHO"}:
        raise ValueError(f"camera '{camera.name}' is {data.type}: only perspective and orthographic are supported")
    render = scene.render
    scale = render.resolution_percentage / 100.0
    if resolution is None:
        width, height = round(render.resolution_x * scale), round(render.resolution_y * scale)
        aspect = (render.pixel_aspect_x, render.pixel_aspect_y)
    else:
        (width, height), aspect = resolution, (1.0, 1.0)
    return CameraModel(
        world_to_camera=np.linalg.inv(np.array(camera.matrix_world)),
        orthographic=data.type == "ORTHO",
        lens_mm=data.lens,
        ortho_scale=data.ortho_scale,
        sensor_width=data.sensor_width,
        sensor_height=data.sensor_height,
        sensor_fit=data.sensor_fit,
        shift_x=data.shift_x,
        shift_y=data.shift_y,
        resolution_x=width,
        resolution_y=height,
        pixel_aspect_x=aspect[0],
        pixel_aspect_y=aspect[1],
    )
