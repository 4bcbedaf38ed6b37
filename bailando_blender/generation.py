"""One generation, from the panel's settings to keys on an armature; shared by the operator and the batch CLI.

``plan_job`` reads the scene and settings (nothing changes yet), the backend writes the
dance to a scratch NPZ, and ``apply_dance`` builds the whole new action before it touches
the scene, so a failure at any step (or a cancel during a Rigify rig's bake, which the modal
operator runs a slice a timer tick through ``apply_dance_steps``) leaves the scene as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import bpy
import numpy as np

from . import armature as dancer_rig
from . import rig_mapping, rigify_rig
from .armature import ArmatureError
from .backend_client import BackendError, BackendProcess
from .keyframes import assign_action, build_action, pose_channels
from .pose_channels import bone_rotations, root_location
from .retarget import POOR_RETARGET_DEG, RetargetedDance, limb_angles, retarget
from .skeleton import JOINT_NAMES, NUM_JOINTS, quaternion_to_matrix
from .sound_strips import AudioError, AudioSpan, active_sound_strip, add_sound_strip, file_span, find_sound_strip
from .sound_strips import strip_span as sound_strip_span

BEAT_MARKER_PREFIX = "beat "  # our timeline markers; earlier ones in the keyed range are replaced
DEFAULT_STAGE_RADIUS_M = 3.0  # metres the dancer's slow path may wander (0: free); the backend's STAGE_RADIUS_M
DEFAULT_BEAT_CANDIDATES = 8  # continuations beat search tries per chunk; the backend's DEFAULT_BEAT_CANDIDATES
RETARGET_CHECK_EVERY = 10  # frames: the retarget's limb check samples one frame in this many
RETARGET_ERROR_PROPERTY = "bailando_limb_error_deg"  # on a retargeted dance's action: its mean limb angle
SONG_WARNING_PROPERTY = "bailando_song_warning"  # on a dance's action: the backend's warning about its song
FPS_TOLERANCE = 1e-6  # relative: the backend must return the scene's frame rate


class DanceError(Exception):
    """Generation cannot go on; the message is one line for the user."""


@dataclass
class JobPlan:
    span: AudioSpan
    target: str | None  # armature object name; None: build a new dancer
    seed: int
    temperature: float
    top_k: int
    beat_markers: bool
    scratch_dir: str
    smpl_model_folder: str = ""  # the user's SMPL files, for a skinned SMPL body on a new dancer
    stage_radius_m: float = DEFAULT_STAGE_RADIUS_M
    beat_candidates: int = DEFAULT_BEAT_CANDIDATES
    out_path: str = field(init=False)

    def __post_init__(self) -> None:
        self.out_path = os.path.join(self.scratch_dir, "dance.npz")

    def request(self) -> dict[str, Any]:
        """The backend job's options (see backend/service.py)."""
        request = {
            "seed": self.seed,
            "temperature": self.temperature,
            "top_k": self.top_k,
            "beat_candidates": self.beat_candidates,
            "fps": self.span.fps,
            "start_s": self.span.start_s,
            "end_s": self.span.end_s,
            "stage_radius_m": self.stage_radius_m,
        }
        if self.smpl_model_folder and self.target is None:
            request["smpl_model_folder"] = self.smpl_model_folder
        return request

    def clean_up(self) -> None:
        shutil.rmtree(self.scratch_dir, ignore_errors=True)


def target_armature(context: bpy.types.Context) -> bpy.types.Object:
    """The active object as the dance's armature (its parent armature when it is our body mesh)."""
    obj = context.active_object
    if obj is not None and obj.type != "ARMATURE" and obj.parent is not None and obj.parent.type == "ARMATURE":
        obj = obj.parent
    rig_mapping.check_dancer(obj)
    return obj


def dance_channels(
    rig: bpy.types.Object, joint_rotations: np.ndarray, root_translation: np.ndarray
) -> tuple[list, float | None]:
    """Pose channels (keyframes.Channel) that put the dance on ``rig``: directly on SMPL-named
    bones, through the retargeting on any other humanoid; and, for a retargeted rig, the mean
    angle in degrees between its limbs and the dance's over every RETARGET_CHECK_EVERY-th frame."""
    if dancer_rig.has_smpl_names(rig):
        rest, heads = dancer_rig.rest_rotations(rig)
        rotations = bone_rotations(joint_rotations, rest)
        location = root_location(root_translation, rest[0], heads[0])
        return pose_channels(list(JOINT_NAMES), rotations, JOINT_NAMES[0], location), None
    bone_map = rig_mapping.bone_map_for(rig)
    target = rig_mapping.armature_rig(rig)
    index = {name: number for number, name in enumerate(target.names)}
    by_index = {JOINT_NAMES.index(joint): index[bone] for joint, bone in bone_map.items()}
    matrices = quaternion_to_matrix(joint_rotations)
    moved = retarget(matrices, root_translation, target, by_index)
    every = slice(None, None, RETARGET_CHECK_EVERY)
    sampled = RetargetedDance(moved.rotations[every], moved.hips_location[every], moved.hips)
    limb_error = float(limb_angles(sampled, target, by_index, matrices[every], root_translation[every]).mean())
    # Key the bones the dance turns; the others keep their rest pose (and whatever keys they had).
    turning = [
        bone for bone in range(len(target.names)) if np.abs(np.abs(moved.rotations[:, bone, 0]) - 1).max() > 1e-9
    ]
    turning = sorted(set(turning) | {moved.hips})
    channels = pose_channels(
        [target.names[bone] for bone in turning],
        moved.rotations[:, turning],
        target.names[moved.hips],
        moved.hips_location,
    )
    return channels, limb_error


def limb_error_of(rig: bpy.types.Object) -> float | None:
    """The mean limb angle kept on the rig's current dance action, None for an SMPL dancer."""
    action = rig.animation_data.action if rig.animation_data is not None else None
    value = action.get(RETARGET_ERROR_PROPERTY) if action is not None else None
    return None if value is None else float(value)


def song_warning_of(rig: bpy.types.Object) -> str:
    """The backend's warning about the song of the rig's current dance (a cut-off file), or ""."""
    action = rig.animation_data.action if rig.animation_data is not None else None
    return str(action.get(SONG_WARNING_PROPERTY, "")) if action is not None else ""


def is_poor_retarget(limb_error: float | None) -> bool:
    return limb_error is not None and limb_error > POOR_RETARGET_DEG


def retarget_words(limb_error: float | None) -> str:
    """How well a retargeted dance follows its source, for the panel and the batch ("" for SMPL)."""
    if limb_error is None:
        return ""
    if is_poor_retarget(limb_error):
        return f"retargeting looks wrong: its limbs are {limb_error:.0f}° off the dance on average (check the Bone Map)"
    return f"limbs within {limb_error:.1f}° of the dance on average"


def plan_job(context: bpy.types.Context, settings: Any, smpl_model_folder: str = "") -> JobPlan:
    """Check the settings against the scene and say what to generate; raises DanceError."""
    scene = context.scene
    frame_range = (settings.frame_first, settings.frame_last) if settings.range_mode == "CUSTOM" else None
    try:
        target = None if settings.target == "NEW" else target_armature(context).name
    except ArmatureError as error:
        raise DanceError(f"Dancer: {error}") from None
    scratch_dir = tempfile.mkdtemp(prefix="bailando-")
    try:
        if settings.audio_source == "FILE":
            span = file_span(scene, settings.audio_file, frame_range)
        else:
            if settings.strip_name:
                strip = find_sound_strip(scene, settings.strip_name)
            else:
                strip = active_sound_strip(scene)
                if strip is None:
                    raise AudioError("no sound strip is chosen (make one active, or pick one by name)")
            span = sound_strip_span(scene, strip, scratch_dir, frame_range)
    except AudioError as error:
        shutil.rmtree(scratch_dir, ignore_errors=True)
        raise DanceError(f"Song: {error}") from None
    return JobPlan(
        span=span,
        target=target,
        seed=int(settings.seed),
        temperature=float(settings.temperature),
        top_k=int(settings.top_k),
        beat_markers=bool(settings.beat_markers),
        scratch_dir=scratch_dir,
        smpl_model_folder=smpl_model_folder,
        stage_radius_m=float(settings.stage_radius),
        beat_candidates=int(settings.beat_candidates),
    )


@dataclass(frozen=True)
class DanceArrays:
    """joint_rotations (T, 24, 4) w first; root_translation (T, 3) SMPL frame, metres;
    beat_times (B,) seconds from frame 0."""

    fps: float
    joint_rotations: np.ndarray
    root_translation: np.ndarray
    beat_times: np.ndarray
    trained: bool
    body: dict[str, np.ndarray] | None = None  # body_vertices, body_faces, body_weights, body_joints


BODY_KEYS = ("body_vertices", "body_faces", "body_weights", "body_joints")


def read_dance(path: str, fps: float) -> DanceArrays:
    """The backend's NPZ (keys in backend/dance_io.py), checked; raises DanceError."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = DanceArrays(
                fps=float(data["fps"]),
                joint_rotations=np.asarray(data["joint_rotations"], dtype=np.float64),
                root_translation=np.asarray(data["root_translation"], dtype=np.float64),
                beat_times=np.asarray(data["beat_times"], dtype=np.float64),
                trained=bool(data["trained"]),
                body={key: np.asarray(data[key]) for key in BODY_KEYS} if BODY_KEYS[0] in data else None,
            )
    except (OSError, KeyError, ValueError) as error:
        raise DanceError(f"the backend's dance file cannot be read: {error}") from None
    frames = arrays.joint_rotations.shape[0]
    if arrays.joint_rotations.shape != (frames, NUM_JOINTS, 4) or arrays.root_translation.shape != (frames, 3):
        raise DanceError(f"the backend's dance has unexpected shapes {arrays.joint_rotations.shape}")
    if frames == 0 or not (np.isfinite(arrays.joint_rotations).all() and np.isfinite(arrays.root_translation).all()):
        raise DanceError("the backend's dance is empty or not finite")
    if abs(arrays.fps - fps) > FPS_TOLERANCE * fps:
        raise DanceError(f"the backend danced at {arrays.fps:g} fps, not the scene's {fps:g}")
    return arrays


def fit_length(values: np.ndarray, num_frames: int) -> np.ndarray:
    """Cut to num_frames, or hold the last frame (the sound can end a frame before its strip)."""
    if len(values) >= num_frames:
        return values[:num_frames]
    return np.concatenate([values, np.repeat(values[-1:], num_frames - len(values), axis=0)])


def rigify_channel_steps(
    context: bpy.types.Context,
    rig: bpy.types.Object,
    joint_rotations: np.ndarray,
    root_translation: np.ndarray,
    first_frame: int,
) -> Generator[float, None, list]:
    """Channels of a generated Rigify rig's FK controls: the dance retargeted onto a helper laid
    out as its meta-rig, then baked onto the controls, a slice at a time (see ``rigify_rig``)."""
    helper = rigify_rig.build_helper(rig, context.collection or context.scene.collection)
    try:
        channels, limb_error = dance_channels(helper, joint_rotations, root_translation)
        action, slot = build_action(rigify_rig.HELPER_NAME, channels, first_frame)
        for pose_bone in helper.pose.bones:
            pose_bone.rotation_mode = "QUATERNION"
        assign_action(helper, action, slot)
        baked = yield from rigify_rig.bake_steps(context, rig, helper, first_frame, len(joint_rotations))
        return baked, limb_error
    finally:
        rigify_rig.remove_helper(helper)


def apply_dance_steps(
    context: bpy.types.Context, plan: JobPlan, dance: DanceArrays
) -> Generator[float, None, bpy.types.Object]:
    """Key the dance onto the plan's armature (built here for a new dancer) as one new action.

    A generator: a generated Rigify rig's bake yields its progress (0-1) between slices, for
    the modal operator; every other rig is keyed without a yield. The scene changes only after
    the last slice, so closing the generator early leaves it as it was."""
    scene = context.scene
    collection = context.collection or scene.collection
    span = plan.span
    num_frames = span.num_frames if span.num_frames is not None else len(dance.joint_rotations)
    if plan.target is None:
        rig = None
    else:
        rig = bpy.data.objects.get(plan.target)
        try:
            rig_mapping.check_dancer(rig)
        except ArmatureError as error:
            raise DanceError(f"Dancer: {error}") from None
    built = rig is None
    if built:
        rig = dancer_rig.build_dancer(collection, body=dance.body)
    try:
        rotations = fit_length(dance.joint_rotations, num_frames)
        translation = fit_length(dance.root_translation, num_frames)
        if rigify_rig.is_generated_rig(rig):
            channels, limb_error = yield from rigify_channel_steps(
                context, rig, rotations, translation, span.first_frame
            )
        else:
            channels, limb_error = dance_channels(rig, rotations, translation)
        name = f"Dance {span.strip or os.path.basename(span.path)} seed {plan.seed}"
        action, slot = build_action(name, channels, span.first_frame)
        if limb_error is not None:
            action[RETARGET_ERROR_PROPERTY] = limb_error
    except ArmatureError as error:
        if built:
            dancer_rig.remove_dancer(rig)
        raise DanceError(f"Dancer: {error}") from None
    except BaseException:
        if built:
            dancer_rig.remove_dancer(rig)
        raise
    # From here on nothing can fail on the dance's account: the scene changes in one go.
    keyed = {channel.group for channel in channels}
    for pose_bone in rig.pose.bones:
        if pose_bone.name in keyed:
            pose_bone.rotation_mode = "QUATERNION"
    assign_action(rig, action, slot)
    if span.strip is None:
        add_sound_strip(scene, span.path, span.first_frame)
    if plan.beat_markers:
        mark_beats(scene, dance.beat_times, span.first_frame, num_frames, span.fps)
    scene.frame_start = min(scene.frame_start, span.first_frame)
    scene.frame_end = max(scene.frame_end, span.first_frame + num_frames - 1)
    return rig


def apply_dance(context: bpy.types.Context, plan: JobPlan, dance: DanceArrays) -> bpy.types.Object:
    """``apply_dance_steps`` in one go (background mode, the batch CLI, benchmarks, tests)."""
    return rigify_rig.run_steps(apply_dance_steps(context, plan, dance))


def arrays_plan(dance: DanceArrays, target: str, first_frame: int = 1) -> JobPlan:
    """The plan that keys dance arrays already in hand onto the armature named ``target`` from
    ``first_frame`` (no backend, no song strip, no beat markers)."""
    span = AudioSpan("arrays", 0.0, None, first_frame, len(dance.joint_rotations), dance.fps, "arrays")
    return JobPlan(span, target, seed=0, temperature=1.0, top_k=0, beat_markers=False, scratch_dir="")


def key_arrays(context: bpy.types.Context, dance: DanceArrays, target: str, first_frame: int = 1) -> bpy.types.Object:
    """Key dance arrays already in hand onto ``target`` (``arrays_plan``): benchmarks, figures, tests."""
    return apply_dance(context, arrays_plan(dance, target, first_frame), dance)


def mark_beats(scene: bpy.types.Scene, beat_times: np.ndarray, first_frame: int, num_frames: int, fps: float) -> None:
    last_frame = first_frame + num_frames - 1
    for marker in list(scene.timeline_markers):
        if marker.name.startswith(BEAT_MARKER_PREFIX) and first_frame <= marker.frame <= last_frame:
            scene.timeline_markers.remove(marker)
    for number, time_s in enumerate(beat_times, start=1):
        frame = first_frame + round(float(time_s) * fps)
        if frame <= last_frame:
            scene.timeline_markers.new(f"{BEAT_MARKER_PREFIX}{number}", frame=frame)


def finish_job_steps(
    context: bpy.types.Context, plan: JobPlan, result: dict[str, Any]
) -> Generator[float, None, bpy.types.Object]:
    """Read the backend's result for ``plan`` and apply it, stepwise (``apply_dance_steps``); the
    scratch folder goes either way, also when the generator is closed early."""
    try:
        dance = read_dance(str(result.get("out", plan.out_path)), plan.span.fps)
        rig = yield from apply_dance_steps(context, plan, dance)
        if result.get("warning"):  # about the song (a cut-off file): kept with the dance it made
            rig.animation_data.action[SONG_WARNING_PROPERTY] = str(result["warning"])
        return rig
    finally:
        plan.clean_up()


def finish_job(context: bpy.types.Context, plan: JobPlan, result: dict[str, Any]) -> bpy.types.Object:
    return rigify_rig.run_steps(finish_job_steps(context, plan, result))


def run_blocking(
    context: bpy.types.Context,
    plan: JobPlan,
    backend: BackendProcess,
    progress: Callable[[float, str], None] | None = None,
) -> bpy.types.Object:
    """Generate and key synchronously (background mode, batch CLI). Raises DanceError."""
    try:
        backend.wait_ready()
        job = backend.submit(plan.span.path, plan.out_path, **plan.request())
        state = backend.wait_job(job, progress=progress)
    except BackendError as error:
        plan.clean_up()
        raise DanceError(f"Backend: {error}") from None
    if state.error is not None or state.result is None:
        plan.clean_up()
        raise DanceError(state.error or "the backend gave no result")
    return finish_job(context, plan, state.result)
