"""The panel's settings (saved with the scene) and the running job's state (window manager, not undone)."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .generation import DEFAULT_BEAT_CANDIDATES, DEFAULT_STAGE_RADIUS_M
from .pose_pass import MAX_FPS as PASS_MAX_FPS

# Limits of the generator's variation controls (the backend checks them too).
MAX_TEMPERATURE = 2.0  # above this the moves are noise
MAX_TOP_K = 512  # the codebook size of the shipped VQ-VAE
MAX_BEAT_CANDIDATES = 32  # the backend's limit (backend.sampling)


class DanceSettings(bpy.types.PropertyGroup):
    audio_source: EnumProperty(
        name="Song",
        items=[
            ("STRIP", "Sound Strip", "A sound strip of this scene's sequencer"),
            ("FILE", "File", "A sound file; it is put on the timeline with the dance"),
        ],
        default="STRIP",
    )
    strip_name: StringProperty(
        name="Strip", description="The sound strip to dance to (empty: the active sound strip)", default=""
    )
    audio_file: StringProperty(name="File", description="wav, ogg, flac or mp3", subtype="FILE_PATH", default="")
    range_mode: EnumProperty(
        name="Range",
        items=[
            ("WHOLE", "Whole Song", "Every frame where the strip plays (the whole file)"),
            ("CUSTOM", "Frames", "Only the frames between Start and End"),
        ],
        default="WHOLE",
    )
    frame_first: IntProperty(name="Start", description="First frame to key", default=1)
    frame_last: IntProperty(name="End", description="Last frame to key", default=250)
    target: EnumProperty(
        name="Dancer",
        items=[
            ("NEW", "New SMPL Dancer", "Build a new armature with SMPL's joints and a simple body"),
            ("SELECTED", "Selected Armature", "The active armature: SMPL-named, or any humanoid through its bone map"),
        ],
        default="NEW",
    )
    seed: IntProperty(name="Seed", description="Same seed, same dance", default=0, min=0)
    temperature: FloatProperty(
        name="Temperature",
        description="Lower: calmer, more repetitive moves; higher: more varied",
        default=1.0,
        min=0.05,
        max=MAX_TEMPERATURE,
    )
    top_k: IntProperty(
        name="Top K", description="Pick among the k likeliest moves only (0: all)", default=0, min=0, max=MAX_TOP_K
    )
    beat_candidates: IntProperty(
        name="Beat Search",
        description="Continuations tried for each second of dance; one is kept, the likelier the more "
        "it is on the beat (1: none; each one more costs about one more generation's time)",
        default=DEFAULT_BEAT_CANDIDATES,
        min=1,
        max=MAX_BEAT_CANDIDATES,
    )
    stage_radius: FloatProperty(
        name="Stay Within",
        description="Keep the dancer's path within this distance of where it starts (0: let it travel freely)",
        default=DEFAULT_STAGE_RADIUS_M,
        min=0.0,
        soft_max=10.0,
        unit="LENGTH",
    )
    beat_markers: BoolProperty(name="Beat Markers", description="Mark the music's beats on the timeline", default=True)


def _is_camera(_settings: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    return obj.type == "CAMERA"


class PosePassProperties(bpy.types.PropertyGroup):
    """The 2D pose pass's settings (defaults: X-Dancer's 896 x 512 portrait frames at 30 fps)."""

    folder: StringProperty(
        name="Folder",
        description="Where the keypoints, JSON and guide video go",
        default="//pose2d/",
        subtype="DIR_PATH",
    )
    camera_mode: EnumProperty(
        name="Camera",
        items=[
            (
                "AUTO",
                "Auto",
                "A level camera that follows the dancer, its body filling most of the frame "
                "(added as 'Pose Pass Camera', keyed)",
            ),
            ("WIDE", "Wide", "A still, level camera in front of the dancer that frames the whole dance"),
            ("SCENE", "Scene Camera", "The scene's active camera"),
            ("OBJECT", "Other Camera", "A camera of your choice"),
        ],
        default="AUTO",
    )
    camera: PointerProperty(name="Camera Object", type=bpy.types.Object, poll=_is_camera)
    width: IntProperty(name="Width", description="Pixels", default=512, min=16, max=8192, step=2)
    height: IntProperty(name="Height", description="Pixels", default=896, min=16, max=8192, step=2)
    fps: FloatProperty(name="FPS", description="Frames per second of the pass", default=30.0, min=1.0, max=PASS_MAX_FPS)
    video: BoolProperty(name="Guide Video", description="Also draw the pose-guide video with the song", default=True)


class BoneMapRow(bpy.types.PropertyGroup):
    """One row of an armature's bone map: the SMPL joint and the bone that carries it (empty: none)."""

    joint: StringProperty(name="Joint")
    bone: StringProperty(name="Bone", description="The bone that carries this SMPL joint (empty: none)")


class DanceJobState(bpy.types.PropertyGroup):
    running: BoolProperty(default=False)
    cancel_requested: BoolProperty(default=False)
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    stage: StringProperty(default="")
    message: StringProperty(default="")
    error: StringProperty(default="")


CLASSES = (DanceSettings, PosePassProperties, BoneMapRow, DanceJobState)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.bailando = PointerProperty(type=DanceSettings)
    bpy.types.Scene.bailando_pose2d = PointerProperty(type=PosePassProperties)
    bpy.types.Object.bailando_bone_map = CollectionProperty(type=BoneMapRow)
    bpy.types.WindowManager.bailando_job = PointerProperty(type=DanceJobState)


def unregister() -> None:
    del bpy.types.WindowManager.bailando_job
    del bpy.types.Object.bailando_bone_map
    del bpy.types.Scene.bailando_pose2d
    del bpy.types.Scene.bailando
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
