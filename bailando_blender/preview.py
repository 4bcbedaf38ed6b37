"""A quick look at the dance: a camera, a light and a floor, and a Workbench video with the song muxed in."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator

import bpy

PREVIEW_RESOLUTION = (640, 360)  # pixels: small, so a CPU renders it in seconds
# From the dancer, in front (-Y). With a 28 mm lens (36 mm sensor width) the frame is 6.5 x
# 36 / 28 = 8.4 m wide where the dancer starts: room for the backend's default stage radius
# of 3 m to either side, arms included.
CAMERA_DISTANCE_M = 6.5
CAMERA_HEIGHT_M = 1.1
CAMERA_LENS_MM = 28.0
FLOOR_SIZE_M = 10.0  # metres a side, centred on the dancer's start: the 3-m stage and a margin


def stage_scene(scene: bpy.types.Scene, dancer: bpy.types.Object) -> None:
    """Add a camera looking at the dancer, a sun and a floor, unless the scene has a camera already."""
    if scene.camera is not None:
        return
    target = dancer.matrix_world.translation
    camera = bpy.data.objects.new("Preview Camera", bpy.data.cameras.new("Preview Camera"))
    camera.data.lens = CAMERA_LENS_MM
    camera.location = (target.x, target.y - CAMERA_DISTANCE_M, target.z + CAMERA_HEIGHT_M)
    camera.rotation_euler = (math.radians(88.0), 0.0, 0.0)  # level, a little down towards the floor
    scene.collection.objects.link(camera)
    scene.camera = camera
    sun = bpy.data.objects.new("Preview Sun", bpy.data.lights.new("Preview Sun", "SUN"))
    sun.rotation_euler = (math.radians(45.0), 0.0, math.radians(30.0))
    scene.collection.objects.link(sun)
    half = FLOOR_SIZE_M / 2
    mesh = bpy.data.meshes.new("Floor")
    mesh.from_pydata(
        [(-half, -half, 0.0), (half, -half, 0.0), (half, half, 0.0), (-half, half, 0.0)], [], [(0, 1, 2, 3)]
    )
    floor = bpy.data.objects.new("Floor", mesh)
    floor.location = (target.x, target.y, 0.0)
    scene.collection.objects.link(floor)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Blender prints a line per rendered frame on the process's stdout; keep the terminal for our output."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def render_preview(scene: bpy.types.Scene, path: str, first_frame: int, last_frame: int) -> str:
    """Render frames first..last with Workbench to an H.264 MP4 with the scene's sound (AAC)."""
    render = scene.render
    saved = (scene.frame_start, scene.frame_end, render.filepath, render.engine)
    render.engine = "BLENDER_WORKBENCH"
    render.resolution_x, render.resolution_y = PREVIEW_RESOLUTION
    render.resolution_percentage = 100
    settings = render.image_settings
    if hasattr(settings, "media_type"):  # 5.0 splits images from videos
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    render.ffmpeg.format = "MPEG4"
    render.ffmpeg.codec = "H264"
    render.ffmpeg.audio_codec = "AAC"
    render.use_file_extension = False
    render.filepath = os.path.abspath(path)
    scene.display.render_aa = "FXAA"  # one sample a frame: a preview, not a final render
    scene.frame_start, scene.frame_end = first_frame, last_frame
    try:
        with quiet_stdout():
            bpy.ops.render.render(animation=True, scene=scene.name)
    finally:
        scene.frame_start, scene.frame_end, render.filepath, render.engine = saved
    return os.path.abspath(path)
