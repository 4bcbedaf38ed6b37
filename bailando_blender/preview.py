"""A quick look at the dance: a camera that follows the dancer, a light, a checkered floor under a
backdrop, and a Workbench video with the song muxed in."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator

import bpy

from .keyframes import Channel, assign_action, build_action

PREVIEW_RESOLUTION = (640, 360)  # pixels: small, so a CPU renders it in seconds
PREVIEW_FILL = 0.75  # of the frame's height the dancer's body spans (follow_camera)
# A still camera (no path given): from the dancer's start, in front (-Y). With a 28 mm lens
# (36 mm sensor width) the frame is 6.5 x 36 / 28 = 8.4 m wide there: the 3-m stage radius fits.
STILL_DISTANCE_M = 6.5
STILL_HEIGHT_M = 1.1
STILL_LENS_MM = 28.0
FLOOR_SIZE_M = 40.0  # metres a side, centred on the dancer's start: its far edge well back in the haze
TILE_M = 1.0  # the floor's checker tiles: they show the dancer's travel and the floor's plane
FLOOR_COLOURS = ((0.78, 0.77, 0.74, 1.0), (0.62, 0.61, 0.59, 1.0))  # light and dark tiles
BACKDROP_COLOUR = (0.16, 0.19, 0.24)  # the world behind: a dusky blue-grey, not a black void
SHADOW_INTENSITY = 0.45


def stage_scene(scene: bpy.types.Scene, dancer: bpy.types.Object, camera_path=None, frames=None) -> None:
    """Add a camera, a sun and a checkered floor under a blue-grey backdrop, with Workbench set
    for clarity (studio light, soft shadows, cavity), unless the scene has a camera already.

    camera_path: a ``follow_camera.CameraPath`` keyed at scene ``frames`` (T,): the camera
    follows the dancer; without it, a still camera looks at the dancer's start."""
    if scene.camera is not None:
        return
    camera = bpy.data.objects.new("Preview Camera", bpy.data.cameras.new("Preview Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    target = dancer.matrix_world.translation
    if camera_path is None:
        camera.data.lens = STILL_LENS_MM
        camera.location = (target.x, target.y - STILL_DISTANCE_M, target.z + STILL_HEIGHT_M)
        camera.rotation_euler = (math.radians(88.0), 0.0, 0.0)  # level, a little down towards the floor
    else:
        from mathutils import Matrix

        camera.data.lens, camera.data.sensor_width = camera_path.lens_mm, camera_path.sensor_mm
        camera.data.sensor_fit = "AUTO"
        camera.matrix_world = Matrix(camera_path.matrices[0].tolist())
        channel = Channel("location", camera_path.matrices[:, :3, 3], "Follow")
        action, slot = build_action("Preview Camera Follow", [channel], 0, frames=frames)
        assign_action(camera, action, slot)
    sun = bpy.data.objects.new("Preview Sun", bpy.data.lights.new("Preview Sun", "SUN"))
    sun.rotation_euler = (math.radians(45.0), 0.0, math.radians(30.0))
    scene.collection.objects.link(sun)
    for parity, colour in enumerate(FLOOR_COLOURS):
        floor = _checker_floor(f"Floor {'light' if parity == 0 else 'dark'}", parity)
        floor.location = (target.x, target.y, 0.0)
        floor.color = colour
        scene.collection.objects.link(floor)
    if scene.world is None:
        scene.world = bpy.data.worlds.new("Preview World")
    scene.world.color = BACKDROP_COLOUR
    shading = scene.display.shading
    shading.light, shading.color_type = "STUDIO", "OBJECT"
    shading.show_shadows, shading.shadow_intensity = True, SHADOW_INTENSITY
    shading.show_cavity = True
    scene.display.light_direction = (0.4, -0.3, 0.85)  # from in front and above: the shadow falls behind


def _checker_floor(name: str, parity: int) -> bpy.types.Object:
    """One colour of the checkered floor: the tiles whose (column + row) % 2 is ``parity``."""
    count = round(FLOOR_SIZE_M / TILE_M)
    vertices, faces = [], []
    for column in range(count):
        for row in range(count):
            if (column + row) % 2 != parity:
                continue
            x, y = -FLOOR_SIZE_M / 2 + column * TILE_M, -FLOOR_SIZE_M / 2 + row * TILE_M
            start = len(vertices)
            vertices += [(x, y, 0.0), (x + TILE_M, y, 0.0), (x + TILE_M, y + TILE_M, 0.0), (x, y + TILE_M, 0.0)]
            faces.append((start, start + 1, start + 2, start + 3))
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(vertices, [], faces)
    return bpy.data.objects.new(name, mesh)


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
