"""The 2D pose pass: the keyed dance seen through a camera, as keypoints, OpenPose JSON and a guide video.

The armature's pose is computed from its action's F-curves and its bones' rest matrices in
numpy (keys only: constraints, drivers and an animated armature object are not followed),
so a 3-minute dance needs no frame-by-frame scene update. Keypoints come from the skeleton
(``pose_keypoints``): the dance's joints where OpenPose has joints, fixed offsets in the
head's, feet's and wrists' frames for face, feet and hands; when the dancer wears the user's
SMPL mesh, face, feet and fingertips are its skinned vertices. Confidence: 1 visible,
``HIDDEN_CONFIDENCE`` behind the body (``occlusion``), 0 outside the frame or behind the
camera. Everything is staged in a scratch folder inside the output folder and moved in at
the end, so a failure leaves no half-written pass.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from . import follow_camera, occlusion, output_paths, pose_files, pose_guides, rig_mapping, rigify_rig, sound_strips
from .armature import ArmatureError, has_smpl_names
from .keyframes import SLOTTED_ACTIONS, Channel, assign_action, build_action
from .pose_keypoints import (
    BODY_18,
    FEET,
    SMPL_MESH_VERTICES,
    mesh_keypoints,
    mesh_vertex_ids,
    whole_body_keypoints,
)
from .preview import quiet_stdout
from .projection import FRAMING_SENSOR_MM, POSE_PASS_SIZE, CameraModel, framing_camera, project
from .retarget import armature_turn, in_blender_frame, rest_alignments, scale_and_floor
from .rig_layout import rest_layout
from .scene_camera import camera_model
from .skeleton import JOINT_NAMES, PARENTS, REST_OFFSETS, SMPL_TO_BLENDER, quaternion_to_matrix

HIDDEN_CONFIDENCE = 0.5  # a keypoint the body hides: above pose_guides.DRAW_THRESHOLD, so it is drawn
DEFAULT_FPS = 30.0  # X-Dancer's frame rate
AUTO_CAMERA_NAME = "Pose Pass Camera"
AUTO_CAMERAS = ("AUTO", "WIDE")  # the pass's own camera: following the dancer, or still and wide
BODY_KEYPOINTS = len(BODY_18) + len(FEET)  # the keypoints first in the layout: the body's, feet included
VIDEO_NAME = "pose_guides.mp4"
MAX_FPS = 240.0  # the pass's highest frame rate (the panel's bound too)
FRAMES_PER_STEP = 8  # guide frames drawn between progress reports (~0.2 s: the UI stays responsive)


class PosePassError(Exception):
    """A setting or scene the pass cannot work with (one line for the user)."""


@dataclass
class PosePassSettings:
    folder: str
    first_frame: int
    last_frame: int
    camera: str = ""  # a camera object's name; "" the scene camera; "AUTO" a camera that frames the dancer
    width: int = POSE_PASS_SIZE[0]
    height: int = POSE_PASS_SIZE[1]
    fps: float = DEFAULT_FPS
    video: bool = True


@dataclass
class ArmatureMotion:
    """positions (T, 24, 3) world metres; frames (T, 24, 3, 3) joint frames taking SMPL-axes
    offsets to the world (object scale included); scale: the object's scale; mesh_vertices
    (T, V, 3) world metres: the posed ``pose_keypoints.mesh_vertex_ids`` of the dancer's SMPL
    mesh, None without one."""

    positions: np.ndarray
    frames: np.ndarray
    scale: float
    mesh_vertices: np.ndarray | None = None
    facing: np.ndarray = field(default_factory=lambda: np.array([0.0, -1.0, 0.0]))  # world: where the body faces

    def keypoints(self) -> np.ndarray:
        """(T, NUM_KEYPOINTS, 3) world keypoints: from the mesh where it places them, else the skeleton."""
        points = whole_body_keypoints(self.positions, self.frames)
        return points if self.mesh_vertices is None else mesh_keypoints(points, self.mesh_vertices)


# --- the armature's pose from its keys ----------------------------------------------------


def _fcurves(rig: bpy.types.Object) -> dict[tuple[str, int], bpy.types.FCurve]:
    animation = rig.animation_data
    if animation is None or animation.action is None:
        return {}
    if SLOTTED_ACTIONS:
        from bpy_extras.anim_utils import action_get_channelbag_for_slot

        bag = action_get_channelbag_for_slot(animation.action, animation.action_slot)
        curves = list(bag.fcurves) if bag is not None else []
    else:
        curves = list(animation.action.fcurves)
    return {(curve.data_path, curve.array_index): curve for curve in curves if not curve.mute}


def _channel(curves: dict, bone: bpy.types.PoseBone, prop: str, scene_frames: np.ndarray) -> np.ndarray:
    """(T, N) the property's values at the frames: keyed where an F-curve exists, else its current value."""
    current = np.array(getattr(bone, prop), dtype=np.float64)
    values = np.tile(current, (len(scene_frames), 1))
    path = f'pose.bones["{bone.name}"].{prop}'
    for index in range(len(current)):
        curve = curves.get((path, index))
        if curve is not None:
            values[:, index] = [curve.evaluate(frame) for frame in scene_frames]
    return values


def _rotation_matrices(bone: bpy.types.PoseBone, curves: dict, scene_frames: np.ndarray) -> np.ndarray:
    from mathutils import Euler, Quaternion

    mode = bone.rotation_mode
    if mode == "QUATERNION":
        quaternions = _channel(curves, bone, "rotation_quaternion", scene_frames)
        return quaternion_to_matrix(quaternions)
    if mode == "AXIS_ANGLE":
        values = _channel(curves, bone, "rotation_axis_angle", scene_frames)
        return np.array([np.array(Quaternion(v[1:], v[0]).to_matrix()) for v in values])
    values = _channel(curves, bone, "rotation_euler", scene_frames)
    return np.array([np.array(Euler(v, mode).to_matrix()) for v in values])


def smpl_body(rig: bpy.types.Object) -> bpy.types.Object | None:
    """The user's SMPL mesh deformed by ``rig`` (a child with SMPL's vertex count), if any."""
    for child in rig.children:
        if (
            child.type == "MESH"
            and len(child.data.vertices) == SMPL_MESH_VERTICES
            and any(modifier.type == "ARMATURE" and modifier.object == rig for modifier in child.modifiers)
        ):
            return child
    return None


def _skinned_points(rig: bpy.types.Object, body: bpy.types.Object, posed: dict[str, np.ndarray]) -> np.ndarray:
    """(T, V, 3) world positions of the mesh_vertex_ids vertices, deformed as the Armature modifier
    deforms them (linear blend of the bones' rest-to-pose matrices, weights normalised)."""
    world = np.array(rig.matrix_world)
    to_armature = np.linalg.inv(world) @ np.array(body.matrix_world)
    group_names = {group.index: group.name for group in body.vertex_groups}
    count = len(next(iter(posed.values())))
    ids = mesh_vertex_ids()
    result = np.empty((count, len(ids), 3))
    for column, index in enumerate(ids):
        vertex = body.data.vertices[int(index)]
        rest = to_armature @ np.array([*vertex.co, 1.0])
        blended, total = np.zeros((count, 4)), 0.0
        for element in vertex.groups:
            name = group_names.get(element.group)
            if name in posed and element.weight > 0:
                skin = posed[name] @ np.linalg.inv(np.array(rig.data.bones[name].matrix_local))
                blended += element.weight * (skin @ rest)
                total += element.weight
        deformed = blended / total if total > 0 else np.tile(rest, (count, 1))
        result[:, column] = (deformed @ world.T)[:, :3]
    return result


def joint_bones(rig: bpy.types.Object) -> tuple[dict[int, str], dict[int, np.ndarray], float, np.ndarray]:
    """SMPL joint -> the bone carrying it; joint -> the rest alignment ``A`` of the retargeting
    (identity on SMPL-named bones); the rig's size in armature units per SMPL metre; the turn
    from Blender's frame into the armature's space (``retarget.armature_turn``)."""
    if has_smpl_names(rig):
        return dict(enumerate(JOINT_NAMES)), {joint: np.eye(3) for joint in range(len(JOINT_NAMES))}, 1.0, np.eye(3)
    bone_map = rig_mapping.bone_map_for(rig)
    target = rig_mapping.armature_rig(rig)
    by_index = {JOINT_NAMES.index(joint): target.names.index(bone) for joint, bone in bone_map.items()}
    turn = armature_turn(target, by_index)
    ratio, _ = scale_and_floor(in_blender_frame(target, turn), by_index, rest_layout().heads)
    bones = {JOINT_NAMES.index(joint): bone for joint, bone in bone_map.items()}
    return bones, rest_alignments(target, by_index), ratio, turn


def keyed_pose(rig: bpy.types.Object, scene_frames: np.ndarray) -> dict[str, np.ndarray]:
    """Bone name -> (T, 4, 4) armature-space matrices at the (fractional) scene frames, from the
    action's F-curves and the rest matrices (constraints ignored)."""
    curves = _fcurves(rig)
    count = len(scene_frames)
    posed: dict[str, np.ndarray] = {}
    for bone in sorted(rig.pose.bones, key=lambda b: len(b.parent_recursive)):
        rest = np.array(bone.bone.matrix_local)
        basis = np.tile(np.eye(4), (count, 1, 1))
        basis[:, :3, :3] = (
            _rotation_matrices(bone, curves, scene_frames) * _channel(curves, bone, "scale", scene_frames)[:, None, :]
        )
        basis[:, :3, 3] = _channel(curves, bone, "location", scene_frames)
        if bone.parent is None:
            posed[bone.name] = rest @ basis
        else:
            parent_rest = np.array(bone.parent.bone.matrix_local)
            posed[bone.name] = posed[bone.parent.name] @ (np.linalg.inv(parent_rest) @ rest) @ basis
    return posed


def armature_motion(rig: bpy.types.Object, scene_frames: np.ndarray) -> ArmatureMotion:
    """The SMPL joints of ``rig`` (SMPL-named, or mapped by its bone map) at the given (fractional)
    scene frames. Joints the map leaves out sit at their SMPL offset from their parent.

    The pose comes from the keys and the rest matrices, in numpy; a Rigify rig's deform bones
    follow constraints, so its pose is Blender's evaluation, one scene update a frame."""
    count = len(scene_frames)
    world = np.array(rig.matrix_world)
    bones, align, ratio, turn_in = joint_bones(rig)
    if rigify_rig.is_generated_rig(rig):
        posed = rigify_rig.evaluated_pose(rig, list(bones.values()), scene_frames)
    else:
        posed = keyed_pose(rig, scene_frames)
    positions = np.empty((count, len(JOINT_NAMES), 3))
    frames = np.empty((count, len(JOINT_NAMES), 3, 3))
    for joint in range(len(JOINT_NAMES)):
        name = bones.get(joint)
        if name is None:  # parents come first in SMPL's order
            frames[:, joint] = frames[:, PARENTS[joint]]
            positions[:, joint] = positions[:, PARENTS[joint]] + frames[:, joint] @ REST_OFFSETS[joint]
            continue
        rest = np.array(rig.data.bones[name].matrix_local)[:3, :3]
        rest = rest / np.linalg.norm(rest, axis=0)
        positions[:, joint] = (world @ posed[name])[:, :3, 3]
        # The joint's turn from SMPL's rest pose (the retargeting's D = P R^-1 A^-1), in world,
        # applied to SMPL-axes offsets at the rig's size.
        turn = posed[name][:, :3, :3] @ rest.T @ align[joint].T
        frames[:, joint] = ratio * world[:3, :3] @ turn @ turn_in @ SMPL_TO_BLENDER
    scale = ratio * float(abs(np.linalg.det(world[:3, :3])) ** (1.0 / 3.0))
    body = smpl_body(rig)
    mesh_vertices = None if body is None else _skinned_points(rig, body, posed)
    facing = world[:3, :3] @ turn_in @ np.array([0.0, -1.0, 0.0])
    facing = facing / np.linalg.norm(facing)
    return ArmatureMotion(positions=positions, frames=frames, scale=scale, mesh_vertices=mesh_vertices, facing=facing)


# --- the camera ---------------------------------------------------------------------------


def auto_camera(
    scene: bpy.types.Scene,
    points: np.ndarray,
    facing: np.ndarray,
    settings: PosePassSettings,
    scene_frames: np.ndarray,
    follow: bool,
) -> tuple[bpy.types.Object, np.ndarray]:
    """The "Pose Pass Camera" for (T, K, 3) world keypoints of a body facing ``facing`` at rest:
    following the dancer (``follow_camera``; its location keyed at the pass's ``scene_frames``),
    or still and wide enough for the whole dance. Returns it and its (T, 4, 4) or (4, 4)
    world-to-camera matrices, which are what Blender evaluates of it at those frames."""
    if follow:
        path = follow_camera.follow_path(
            points[:, :BODY_KEYPOINTS], facing, settings.fps, settings.width, settings.height
        )
        matrices, lens = path.matrices, path.lens_mm
    else:
        matrices, lens = framing_camera(points, facing, settings.width, settings.height, FRAMING_SENSOR_MM)
    camera = bpy.data.objects.get(AUTO_CAMERA_NAME)
    if camera is None or camera.type != "CAMERA":
        camera = bpy.data.objects.new(AUTO_CAMERA_NAME, bpy.data.cameras.new(AUTO_CAMERA_NAME))
    if camera.name not in scene.collection.all_objects:
        scene.collection.objects.link(camera)
    camera.data.type = "PERSP"
    camera.data.lens = lens
    camera.data.sensor_width = FRAMING_SENSOR_MM
    camera.data.sensor_fit = "AUTO"
    camera.data.shift_x = camera.data.shift_y = 0.0
    from mathutils import Matrix

    first = matrices[0] if follow else matrices
    camera.matrix_world = Matrix(first.tolist())  # a plain sequence would be read column by column
    if camera.animation_data is not None:
        camera.animation_data.action = None
    if follow:
        # Level and looking one way: only its location moves, keyed where the pass samples.
        channel = Channel("location", matrices[:, :3, 3], "Follow")
        action, slot = build_action(f"{AUTO_CAMERA_NAME} Follow", [channel], 0, frames=scene_frames)
        assign_action(camera, action, slot)
    return camera, np.linalg.inv(matrices)


def following_path(
    scene: bpy.types.Scene, rig: bpy.types.Object, size: tuple[int, int], fill: float
) -> tuple[np.ndarray, follow_camera.CameraPath]:
    """The scene frames first..last and a camera following ``rig``'s body over them for an image
    of ``size`` (width, height) pixels, the body spanning ``fill`` of its height (the preview's)."""
    frames = np.arange(scene.frame_start, scene.frame_end + 1, dtype=np.float64)
    motion = armature_motion(rig, frames)
    fps = scene.render.fps / scene.render.fps_base
    points = motion.keypoints()[:, :BODY_KEYPOINTS]
    return frames, follow_camera.follow_path(points, motion.facing, fps, size[0], size[1], fill=fill)


def evaluated_world_to_camera(scene: bpy.types.Scene, camera: bpy.types.Object, scene_frames: np.ndarray) -> np.ndarray:
    """(T, 4, 4) an animated camera's world-to-camera matrices at the (fractional) scene frames,
    as Blender evaluates them; the scene is left at the frame it was on."""
    current = scene.frame_current, scene.frame_subframe
    matrices = np.empty((len(scene_frames), 4, 4))
    try:
        for index, frame in enumerate(scene_frames):
            whole = math.floor(frame)
            scene.frame_set(whole, subframe=float(frame - whole))
            matrices[index] = np.linalg.inv(np.array(camera.matrix_world))
    finally:
        scene.frame_set(current[0], subframe=current[1])
    return matrices


def framing_of(keypoints: np.ndarray, model: CameraModel, settings: PosePassSettings) -> follow_camera.Framing:
    """How the body's keypoints sit in the pass's frames (those in front of the camera)."""
    pixels = keypoints[:, :BODY_KEYPOINTS, :2].copy()
    eyes = np.linalg.inv(model.world_to_camera)[..., :3, 3]
    positions = eyes if eyes.ndim == 2 else np.tile(eyes, (len(keypoints), 1))
    return follow_camera.framing(pixels, settings.width, settings.height, positions, settings.fps)


def pass_camera(scene: bpy.types.Scene, name: str) -> bpy.types.Object | None:
    """The camera object the settings name (None: AUTO, following, or WIDE, still)."""
    if name in AUTO_CAMERAS:
        return None
    camera = bpy.data.objects.get(name) if name else scene.camera
    if camera is None:
        raise PosePassError(
            "2D pose pass: the scene has no camera (choose one, or Auto)"
            if not name
            else f"2D pose pass: no object named '{name}'"
        )
    if camera.type != "CAMERA":
        raise PosePassError(f"2D pose pass: '{camera.name}' is not a camera")
    return camera


def keypoints_2d(motion: ArmatureMotion, points: np.ndarray, camera: CameraModel) -> np.ndarray:
    """(T, K, 3) world keypoints of ``motion`` -> (T, K, 3) pixels + confidence."""
    pixels, depth = project(points, camera)
    inside = (
        (depth > 0)
        & (pixels[..., 0] >= 0)
        & (pixels[..., 0] <= camera.resolution_x)
        & (pixels[..., 1] >= 0)
        & (pixels[..., 1] <= camera.resolution_y)
    )
    camera_to_world = np.linalg.inv(camera.world_to_camera)  # (4, 4), or (T, 4, 4) for a moving camera
    eye = None if camera.orthographic else camera_to_world[..., :3, 3]
    view = -camera_to_world[..., :3, 2] / np.linalg.norm(camera_to_world[..., :3, 2], axis=-1, keepdims=True)
    centres, radii = occlusion.body_spheres(motion.positions, motion.frames, motion.scale)
    behind = occlusion.hidden(points, centres, radii, eye, view, motion.scale)
    confidence = np.where(inside, np.where(behind, HIDDEN_CONFIDENCE, 1.0), 0.0)
    return np.concatenate([np.nan_to_num(pixels), confidence[..., None]], axis=-1)


def sample_frames(scene: bpy.types.Scene, settings: PosePassSettings) -> np.ndarray:
    """Scene frames (fractional) of the pass's samples at settings.fps over first..last."""
    scene_fps = scene.render.fps / scene.render.fps_base
    seconds = (settings.last_frame - settings.first_frame + 1) / scene_fps
    count = max(1, math.floor(seconds * settings.fps + 1e-9))
    return settings.first_frame + np.arange(count) * (scene_fps / settings.fps)


# --- the guide video ----------------------------------------------------------------------


def _copy_sounds(source: bpy.types.Scene, target: bpy.types.Scene, settings: PosePassSettings) -> None:
    """The source scene's sound strips over first..last, re-timed to the target's frame rate (frame 1 = first)."""
    editor = source.sequence_editor
    if editor is None:
        return
    source_fps = source.render.fps / source.render.fps_base
    per_frame = settings.fps / source_fps

    def at(frame: float) -> int:
        return 1 + round((frame - settings.first_frame) * per_frame)

    strips = editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all
    target_strips = (
        target.sequence_editor.strips
        if hasattr(target.sequence_editor, "strips")
        else (target.sequence_editor.sequences)
    )
    last = at(settings.last_frame + 1)
    for strip in strips:
        if strip.type != "SOUND" or strip.mute or strip.sound is None:
            continue
        sound_start, first, end = sound_strips.strip_frames(strip)
        start, end = max(at(first), 1), min(at(end), last)
        if start >= end:
            continue
        copy = target_strips.new_sound(strip.name, bpy.path.abspath(strip.sound.filepath), 2, at(sound_start))
        sound_strips.set_strip_handles(copy, start, end)
        copy.volume = strip.volume


def render_guide_video(
    scene: bpy.types.Scene, frame_folder: Path, count: int, path: Path, settings: PosePassSettings
) -> None:
    """The PNG guide frames 000000.png.. in frame_folder -> an H.264 MP4 at settings.fps with the scene's sound."""
    video = bpy.data.scenes.new("Pose Pass Video")
    try:
        video.render.fps, video.render.fps_base = round(settings.fps), round(settings.fps) / settings.fps
        video.render.resolution_x, video.render.resolution_y = settings.width, settings.height
        video.render.resolution_percentage = 100
        video.frame_start, video.frame_end = 1, count
        editor = video.sequence_editor_create()
        strips = editor.strips if hasattr(editor, "strips") else editor.sequences
        images = strips.new_image("guides", str(frame_folder / "000000.png"), 1, 1)
        for index in range(1, count):
            images.elements.append(f"{index:06d}.png")
        _copy_sounds(scene, video, settings)
        image_settings = video.render.image_settings
        if hasattr(image_settings, "media_type"):  # 5.0 splits images from videos
            image_settings.media_type = "VIDEO"
        image_settings.file_format = "FFMPEG"
        video.render.ffmpeg.format = "MPEG4"
        video.render.ffmpeg.codec = "H264"
        video.render.ffmpeg.audio_codec = "AAC"
        video.render.use_file_extension = False
        video.render.use_sequencer = True
        video.render.filepath = str(path)
        with quiet_stdout():
            bpy.ops.render.render(animation=True, scene=video.name)
    finally:
        bpy.data.scenes.remove(video)


# --- the pass -----------------------------------------------------------------------------


def write_pose_pass(scene: bpy.types.Scene, rig: bpy.types.Object, settings: PosePassSettings) -> Iterator[float]:
    """Write the pass into settings.folder; yields progress 0..1 (the caller drives it). Raises PosePassError."""
    try:
        rig_mapping.check_dancer(rig)
    except ArmatureError as error:
        raise PosePassError(f"2D pose pass: {error}") from None
    if settings.width < 16 or settings.height < 16 or settings.width % 2 or settings.height % 2:
        raise PosePassError(f"2D pose pass: size {settings.width}x{settings.height} must be even and at least 16")
    if not 0 < settings.fps <= MAX_FPS:
        raise PosePassError(f"2D pose pass: fps must be in (0, {MAX_FPS:g}], got {settings.fps:g}")
    if settings.last_frame < settings.first_frame:
        raise PosePassError(f"2D pose pass: frames {settings.first_frame}-{settings.last_frame} are empty")
    folder = Path(bpy.path.abspath(settings.folder)) if settings.folder else None
    if folder is None or (folder.exists() and not folder.is_dir()):
        raise PosePassError(f"2D pose pass: output folder '{settings.folder}' is not a folder")
    if (problem := output_paths.folder_problem(folder)) is not None:
        raise PosePassError(f"2D pose pass: output folder '{settings.folder}': {problem}")
    camera = pass_camera(scene, settings.camera)
    bpy.context.view_layer.update()  # object matrices as their transforms now say
    scene_frames = sample_frames(scene, settings)
    motion = armature_motion(rig, scene_frames)
    points = motion.keypoints()
    yield 0.1
    size = (settings.width, settings.height)
    if camera is None:
        follow = settings.camera == "AUTO"
        camera, world_to_camera = auto_camera(scene, points, motion.facing, settings, scene_frames, follow)
        model = dataclasses.replace(camera_model(scene, camera, resolution=size), world_to_camera=world_to_camera)
    else:
        model = camera_model(scene, camera, resolution=size)
        if camera.animation_data is not None and camera.animation_data.action is not None:
            model = dataclasses.replace(model, world_to_camera=evaluated_world_to_camera(scene, camera, scene_frames))
    keypoints = keypoints_2d(motion, points, model)
    frame_fit = framing_of(keypoints, model, settings)
    yield 0.2
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pose-pass-", dir=folder))
    try:
        stem = Path(bpy.data.filepath).stem if bpy.data.filepath else "dance"
        pose_files.write_keypoint_files(
            staging, stem, keypoints, points, scene_frames, settings.fps, settings.width, settings.height, camera.name,
            frame_fit.boxes, np.linalg.inv(model.world_to_camera),
        )  # fmt: skip
        yield 0.3
        if settings.video:
            frame_folder = staging / "frames"
            frame_folder.mkdir()
            image = bpy.data.images.new("Pose Guide", settings.width, settings.height, alpha=False)
            try:
                rgba = np.ones((settings.height, settings.width, 4), dtype=np.float32)
                image.file_format = "PNG"
                for index, frame in enumerate(keypoints):
                    # Blender's pixel rows run bottom-up.
                    rgba[..., :3] = pose_guides.draw_pose(frame, settings.width, settings.height)[::-1] / 255.0
                    image.pixels.foreach_set(rgba.ravel())
                    image.filepath_raw = str(frame_folder / f"{index:06d}.png")
                    image.save()
                    if index % FRAMES_PER_STEP == 0:
                        yield 0.3 + 0.6 * index / len(keypoints)
            finally:
                bpy.data.images.remove(image)
            render_guide_video(scene, frame_folder, len(keypoints), staging / VIDEO_NAME, settings)
            shutil.rmtree(frame_folder)
        pose_files.move_into(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    yield 1.0


def run_pose_pass(scene: bpy.types.Scene, rig: bpy.types.Object, settings: PosePassSettings) -> str:
    """Run the whole pass; returns a one-line summary."""
    for _ in write_pose_pass(scene, rig, settings):
        pass
    folder = bpy.path.abspath(settings.folder)
    count = len(sample_frames(scene, settings))
    with np.load(os.path.join(folder, pose_files.NPZ_NAME)) as stored:
        boxes, height = stored["body_boxes"], float(stored["height"])
    fill = float(np.median((boxes[:, 3] - boxes[:, 1]) / height))
    inside = float(np.mean((boxes[:, :2] >= 0).all(axis=1) & (boxes[:, 2] <= settings.width) & (boxes[:, 3] <= height)))
    return (
        f"2D pose pass: {count} frames at {settings.fps:g} fps in {os.path.normpath(folder)} "
        f"(the body spans {fill * 100:.0f} % of the frame's height, "
        f"all of it in frame in {inside * 100:.0f} % of frames)"
    )
