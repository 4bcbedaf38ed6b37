"""Operators: Generate Dance (modal in the UI, blocking in background mode), Cancel, Restart Backend,
Write 2D Pose Pass (modal in the UI, blocking in background mode)."""

from __future__ import annotations

import bpy

from . import backend_manager, generation, preferences
from .backend_client import BackendError, BackendProcess

TIMER_INTERVAL_S = 0.1  # how often the modal operator polls the backend


def job_state(context: bpy.types.Context):  # -> DanceJobState
    return context.window_manager.bailando_job


def start_backend(context: bpy.types.Context) -> BackendProcess:
    """The running backend (starting it if needed); raises DanceError with the reason."""
    try:
        return backend_manager.ensure_started(preferences.backend_command(context))
    except (ValueError, BackendError) as error:
        raise generation.DanceError(f"Backend: {error}") from None


def keyed_message(done: str, rig: bpy.types.Object) -> str:
    """What Generate says when it is done: with the retargeting's limb check on other rigs, and
    the backend's warning about the song."""
    words = [done, generation.retarget_words(generation.limb_error_of(rig)), generation.song_warning_of(rig)]
    return "; ".join(word for word in words if word)


def warns(rig: bpy.types.Object) -> bool:
    return generation.is_poor_retarget(generation.limb_error_of(rig)) or bool(generation.song_warning_of(rig))


def redraw_panels(context: bpy.types.Context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "PREFERENCES"}:
                area.tag_redraw()


class BAILANDO_OT_generate_dance(bpy.types.Operator):
    """Generate a dance to the chosen song and key it on the dancer (Esc cancels)"""

    bl_idname = "bailando.generate_dance"
    bl_label = "Generate Dance"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if context.scene is None or not hasattr(context.scene, "bailando"):
            return False
        if job_state(context).running:
            cls.poll_message_set("A dance is already being generated")
            return False
        if context.mode != "OBJECT":
            cls.poll_message_set("Switch to Object Mode first")
            return False
        settings = context.scene.bailando
        if settings.audio_source == "FILE" and not settings.audio_file:
            cls.poll_message_set("Choose a sound file")
            return False
        if settings.target == "SELECTED":
            obj = context.active_object
            if obj is None or (obj.type != "ARMATURE" and (obj.parent is None or obj.parent.type != "ARMATURE")):
                cls.poll_message_set("Select the armature to dance (or choose New SMPL Dancer)")
                return False
        return True

    # --- blocking: background mode and scripts ------------------------------------

    def execute(self, context: bpy.types.Context) -> set[str]:
        state = job_state(context)
        state.error = ""
        try:
            plan = generation.plan_job(context, context.scene.bailando, preferences.smpl_model_folder(context))
            backend = start_backend(context)
            rig = generation.run_blocking(context, plan, backend)
        except generation.DanceError as error:
            state.error = str(error)
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        state.message = keyed_message(f"Keyed on {rig.name}", rig)
        if warns(rig):
            self.report({"WARNING"}, state.message)
        return {"FINISHED"}

    # --- modal: the UI stays responsive ------------------------------------------

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        state = job_state(context)
        state.error, state.message, state.progress, state.stage = "", "", 0.0, "starting"
        try:
            self.plan = generation.plan_job(context, context.scene.bailando, preferences.smpl_model_folder(context))
            try:
                self.backend = start_backend(context)
            except generation.DanceError:
                self.plan.clean_up()
                raise
        except generation.DanceError as error:
            state.error = str(error)
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.job: str | None = None
        self.keying = None  # finish_job_steps once the backend's dance is in: keyed a slice a tick
        state.running, state.cancel_requested = True, False
        self.timer = context.window_manager.event_timer_add(TIMER_INTERVAL_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        context.window_manager.progress_begin(0.0, 1.0)
        redraw_panels(context)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        state = job_state(context)
        if event.type == "ESC" and event.value == "PRESS":
            state.cancel_requested = True
        if event.type != "TIMER":
            # While a Rigify rig is baked the scene is mid-change (constraints, a helper rig):
            # the UI draws, but only ESC gets through.
            return {"PASS_THROUGH"} if self.keying is None else {"RUNNING_MODAL"}
        try:
            return self.step(context, state)
        except generation.DanceError as error:
            return self.stop(context, f"{error}", failed=True)
        except BackendError as error:
            return self.stop(context, f"Backend: {error}", failed=True)

    def step(self, context: bpy.types.Context, state) -> set[str]:
        backend = self.backend
        backend.poll()
        if state.cancel_requested:
            if self.keying is not None:
                self.keying.close()  # the bake puts the rig back; nothing was keyed yet
            if self.job is not None and backend.alive() and not backend.jobs[self.job].done:
                backend.cancel(self.job)
            return self.stop(context, "Cancelled", failed=False, cancelled=True)
        if self.job is None:
            backend.check_heard()  # a backend that never gets ready: given up, stopped, said so
            if backend.state == "starting":
                state.stage = backend_manager.describe()[1].removeprefix("Backend: ")
                redraw_panels(context)
                return {"PASS_THROUGH"}
            if backend.state != "ready":
                raise generation.DanceError(f"Backend: {backend.failure or 'not running'}")
            self.job = backend.submit(self.plan.span.path, self.plan.out_path, **self.plan.request())
        job = backend.jobs[self.job]
        backend.check_heard(self.job)  # a hung backend: given up, stopped, said so (the UI never waited on it)
        if backend.state == "failed" and not job.done:
            raise generation.DanceError(f"Backend: {backend.failure}")
        state.progress, state.stage = job.fraction, job.stage
        context.window_manager.progress_update(job.fraction)
        redraw_panels(context)
        if not job.done:
            return {"PASS_THROUGH"}
        if job.cancelled:
            return self.stop(context, "Cancelled", failed=False, cancelled=True)
        if job.error is not None or job.result is None:
            raise generation.DanceError(job.error or "the backend gave no result")
        if self.keying is None:
            self.keying = generation.finish_job_steps(context, self.plan, job.result)
        try:
            fraction = next(self.keying)
        except StopIteration as done:
            rig = done.value
            keyed = keyed_message(f"Keyed {job.result.get('frames', '?')} frames on {rig.name}", rig)
            return self.stop(context, keyed, failed=False, warning=warns(rig))
        state.progress, state.stage = fraction, "baking onto the Rigify controls (ESC cancels)"
        context.window_manager.progress_update(fraction)
        redraw_panels(context)
        return {"RUNNING_MODAL"}

    def stop(
        self, context: bpy.types.Context, message: str, failed: bool, cancelled: bool = False, warning: bool = False
    ) -> set[str]:
        state = job_state(context)
        if self.keying is not None:
            self.keying.close()
        context.window_manager.event_timer_remove(self.timer)
        context.window_manager.progress_end()
        self.plan.clean_up()
        state.running, state.cancel_requested = False, False
        state.progress, state.stage = 0.0, ""
        if failed:
            state.error = message
            self.report({"ERROR"}, message)
        else:
            state.message = message
            self.report({"WARNING" if cancelled or warning else "INFO"}, message)
        redraw_panels(context)
        return {"CANCELLED"} if failed or cancelled else {"FINISHED"}


class BAILANDO_OT_cancel_dance(bpy.types.Operator):
    """Stop the dance being generated"""

    bl_idname = "bailando.cancel_dance"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not job_state(context).running:
            cls.poll_message_set("Nothing is being generated")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        job_state(context).cancel_requested = True
        return {"FINISHED"}


class BAILANDO_OT_restart_backend(bpy.types.Operator):
    """Stop the backend process and start it again (after changing its preferences, or when it failed)"""

    bl_idname = "bailando.restart_backend"
    bl_label = "Restart Backend"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if job_state(context).running:
            cls.poll_message_set("Cancel the running dance first")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        backend_manager.shutdown()
        try:
            start_backend(context)
        except generation.DanceError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        redraw_panels(context)
        return {"FINISHED"}


def pose_pass_settings(scene: bpy.types.Scene):  # -> pose_pass.PosePassSettings
    from .pose_pass import PosePassSettings

    properties = scene.bailando_pose2d
    camera = {"AUTO": "AUTO", "WIDE": "WIDE", "SCENE": ""}.get(properties.camera_mode)
    if camera is None:
        camera = properties.camera.name if properties.camera is not None else "AUTO"
    return PosePassSettings(
        folder=properties.folder,
        first_frame=scene.frame_start,
        last_frame=scene.frame_end,
        camera=camera,
        width=properties.width,
        height=properties.height,
        fps=properties.fps,
        video=properties.video,
    )


class BAILANDO_OT_write_pose_pass(bpy.types.Operator):
    """Write the active dancer's 2D pose pass over the scene's range: keypoints, OpenPose JSON, guide video (Esc)"""

    bl_idname = "bailando.write_pose_pass"
    bl_label = "Write 2D Pose Pass"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if context.scene is None or not hasattr(context.scene, "bailando_pose2d"):
            return False
        if job_state(context).running:
            cls.poll_message_set("Wait for the running job")
            return False
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            cls.poll_message_set("Select the dancing armature")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        from .pose_pass import PosePassError, run_pose_pass

        try:
            message = run_pose_pass(context.scene, context.active_object, pose_pass_settings(context.scene))
        except (PosePassError, OSError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, message)
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        from .pose_pass import write_pose_pass

        state = job_state(context)
        self.settings = pose_pass_settings(context.scene)
        self.steps = write_pose_pass(context.scene, context.active_object, self.settings)
        state.running, state.progress, state.stage, state.error, state.message = True, 0.0, "2D pose pass", "", ""
        self.timer = context.window_manager.event_timer_add(TIMER_INTERVAL_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        from .pose_pass import PosePassError

        if event.type == "ESC":
            self.steps.close()  # the pass's own clean-up removes what it staged: nothing is written
            return self.stop(context, "2D pose pass cancelled", False)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state = job_state(context)
        try:
            state.progress = next(self.steps)  # one slice of work per tick keeps the UI alive
        except StopIteration:
            return self.stop(context, f"2D pose pass written to {bpy.path.abspath(self.settings.folder)}", False)
        except (PosePassError, OSError) as error:
            return self.stop(context, str(error), True)
        redraw_panels(context)
        return {"RUNNING_MODAL"}

    def stop(self, context: bpy.types.Context, message: str, failed: bool) -> set[str]:
        state = job_state(context)
        context.window_manager.event_timer_remove(self.timer)
        state.running = False
        state.error, state.message = (message, "") if failed else ("", message)
        self.report({"ERROR"} if failed else {"INFO"}, message)
        redraw_panels(context)
        return {"CANCELLED"} if failed else {"FINISHED"}


def active_armature(context: bpy.types.Context) -> bpy.types.Object | None:
    obj = context.active_object
    return obj if obj is not None and obj.type == "ARMATURE" else None


class BoneMapOperator:
    """Shared poll: an armature is active."""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if active_armature(context) is None:
            cls.poll_message_set("Select the character's armature")
            return False
        return True


class BAILANDO_OT_guess_bone_map(BoneMapOperator, bpy.types.Operator):
    """Fill the active armature's bone map from the presets, or from its hierarchy for an unknown rig"""

    bl_idname = "bailando.guess_bone_map"
    bl_label = "Guess Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        from . import rig_mapping

        obj = active_armature(context)
        source, bone_map = rig_mapping.guessed_map(obj)
        rig_mapping.store_map(obj, bone_map)
        self.report({"INFO"}, f"Bone map of '{obj.name}': {len(bone_map)} joints, {source}")
        return {"FINISHED"}


class BAILANDO_OT_save_bone_map(BoneMapOperator, bpy.types.Operator):
    """Save the active armature's bone map as a JSON preset"""

    bl_idname = "bailando.save_bone_map"
    bl_label = "Save Bone Map"
    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        self.filepath = f"{active_armature(context).name}_bone_map.json"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        from pathlib import Path

        from . import bone_maps, rig_mapping

        obj = active_armature(context)
        bone_map = rig_mapping.stored_map(obj) or rig_mapping.guessed_map(obj)[1]
        try:
            bone_maps.save_map(bone_map, Path(bpy.path.abspath(self.filepath)))
        except OSError as error:
            self.report({"ERROR"}, f"{self.filepath}: {error.strerror}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Saved {len(bone_map)} joints to {self.filepath}")
        return {"FINISHED"}


class BAILANDO_OT_load_bone_map(BoneMapOperator, bpy.types.Operator):
    """Load a JSON bone map preset onto the active armature"""

    bl_idname = "bailando.load_bone_map"
    bl_label = "Load Bone Map"
    bl_options = {"REGISTER", "UNDO"}
    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        from pathlib import Path

        from . import bone_maps, rig_mapping

        obj = active_armature(context)
        try:
            bone_map = bone_maps.load_map(Path(bpy.path.abspath(self.filepath)))
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        missing = sorted(bone for bone in bone_map.values() if bone not in obj.data.bones)
        if missing:
            self.report({"ERROR"}, f"armature '{obj.name}' has no bone '{missing[0]}' (named by {self.filepath})")
            return {"CANCELLED"}
        rig_mapping.store_map(obj, bone_map)
        self.report({"INFO"}, f"Loaded {len(bone_map)} joints onto '{obj.name}'")
        return {"FINISHED"}


class BAILANDO_OT_export_dance(BoneMapOperator, bpy.types.Operator):
    """Export the active armature's dance over the scene's frame range: FBX, glTF binary (.glb) or BVH"""

    bl_idname = "bailando.export_dance"
    bl_label = "Export Dance"
    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    filter_glob: bpy.props.StringProperty(default="*.fbx;*.glb;*.bvh", options={"HIDDEN"})

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        self.filepath = f"{active_armature(context).name}_dance.fbx"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        from pathlib import Path

        from .export import ExportError, export_dance

        try:
            message = export_dance(context.scene, active_armature(context), Path(bpy.path.abspath(self.filepath)))
        except (ExportError, OSError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, message)
        return {"FINISHED"}


CLASSES = (
    BAILANDO_OT_generate_dance,
    BAILANDO_OT_cancel_dance,
    BAILANDO_OT_restart_backend,
    BAILANDO_OT_write_pose_pass,
    BAILANDO_OT_guess_bone_map,
    BAILANDO_OT_save_bone_map,
    BAILANDO_OT_load_bone_map,
    BAILANDO_OT_export_dance,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    backend_manager.shutdown()
