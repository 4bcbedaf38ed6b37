"""The "Generate Dance" panel in the 3D viewport's sidebar (N), tab "Dance"."""

from __future__ import annotations

import textwrap

import bpy

from . import backend_manager, rigify_rig
from .armature import has_smpl_names
from .sound_strips import active_sound_strip, all_strips_name

WRAP_CHARACTERS = 38  # about what the sidebar shows at its default width
STATE_ICONS = {
    "stopped": "RADIOBUT_OFF",
    "starting": "SORTTIME",
    "ready": "CHECKMARK",
    "busy": "PLAY",
    "failed": "ERROR",
}


def wrapped_label(layout: bpy.types.UILayout, text: str, icon: str) -> None:
    """A message over several lines: a sidebar label cuts long text off."""
    column = layout.column(align=True)
    for number, line in enumerate(textwrap.wrap(text, WRAP_CHARACTERS) or [""]):
        column.label(text=line, icon=icon if number == 0 else "BLANK1")


class VIEW3D_PT_bailando_generate(bpy.types.Panel):
    bl_label = "Generate Dance"
    bl_idname = "VIEW3D_PT_bailando_generate"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Dance"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        scene = context.scene
        settings = scene.bailando
        job = context.window_manager.bailando_job

        column = layout.column(heading="Song")
        column.row().prop(settings, "audio_source", expand=True)
        if settings.audio_source == "FILE":
            column.prop(settings, "audio_file")
        else:
            editor = scene.sequence_editor
            if editor is not None:
                column.prop_search(settings, "strip_name", editor, all_strips_name(editor), text="Strip", icon="SOUND")
            if not settings.strip_name:
                active = active_sound_strip(scene)
                column.label(text=f"Active: {active.name}" if active else "No active sound strip", icon="INFO")
        column.prop(settings, "range_mode")
        if settings.range_mode == "CUSTOM":
            row = column.row(align=True)
            row.prop(settings, "frame_first")
            row.prop(settings, "frame_last")

        column = layout.column()
        column.prop(settings, "target")
        column.prop(settings, "seed")
        column.prop(settings, "temperature")
        column.prop(settings, "top_k")
        column.prop(settings, "beat_candidates")
        column.prop(settings, "stage_radius")
        column.prop(settings, "beat_markers")

        if job.running:
            layout.progress(factor=job.progress, text=f"{job.stage} {job.progress * 100:.0f}%")
            layout.operator("bailando.cancel_dance", icon="CANCEL")
        else:
            layout.operator("bailando.generate_dance", icon="PLAY")
        if job.error:
            box = layout.box()
            box.alert = True
            wrapped_label(box, job.error, "ERROR")
        elif job.message:
            wrapped_label(layout, job.message, "INFO")

        layout.operator("bailando.export_dance", icon="EXPORT")

        state, words = backend_manager.describe()
        row = layout.row()
        wrapped_label(row.column(), words, STATE_ICONS[state])
        row.operator("bailando.restart_backend", text="", icon="FILE_REFRESH")


class VIEW3D_PT_bailando_pose_pass(bpy.types.Panel):
    bl_label = "2D Pose Pass"
    bl_idname = "VIEW3D_PT_bailando_pose_pass"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Dance"
    bl_parent_id = "VIEW3D_PT_bailando_generate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.bailando_pose2d
        layout.prop(settings, "folder")
        layout.prop(settings, "camera_mode")
        if settings.camera_mode == "OBJECT":
            layout.prop(settings, "camera")
        column = layout.column(align=True)
        column.prop(settings, "width")
        column.prop(settings, "height")
        layout.prop(settings, "fps")
        layout.prop(settings, "video")
        layout.operator("bailando.write_pose_pass", icon="OUTLINER_OB_ARMATURE")


class VIEW3D_PT_bailando_bone_map(bpy.types.Panel):
    bl_label = "Bone Map"
    bl_idname = "VIEW3D_PT_bailando_bone_map"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Dance"
    bl_parent_id = "VIEW3D_PT_bailando_generate"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene.bailando.target == "SELECTED"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            layout.label(text="Select the character's armature", icon="INFO")
            return
        if has_smpl_names(obj):
            layout.label(text="SMPL joint names: no map needed", icon="CHECKMARK")
            return
        if rigify_rig.is_generated_rig(obj):
            wrapped_label(layout, "Rigify rig: the dance is keyed on its FK controls (limbs set to FK)", "CHECKMARK")
            return
        row = layout.row(align=True)
        row.operator("bailando.guess_bone_map", text="Guess", icon="VIEWZOOM")
        row.operator("bailando.load_bone_map", text="Load", icon="FILEBROWSER")
        row.operator("bailando.save_bone_map", text="Save", icon="FILE_TICK")
        if not obj.bailando_bone_map:
            wrapped_label(layout, "No map yet: Generate guesses one (Guess shows it here to edit)", "INFO")
            return
        column = layout.column(align=True)
        for row_data in obj.bailando_bone_map:
            row = column.row(align=True)
            row.label(text=row_data.joint)
            row.prop_search(row_data, "bone", obj.data, "bones", text="")


CLASSES = (VIEW3D_PT_bailando_generate, VIEW3D_PT_bailando_bone_map, VIEW3D_PT_bailando_pose_pass)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
