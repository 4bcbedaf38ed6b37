"""The dance on a chosen armature out through Blender's own exporters: FBX, glTF (binary .glb), BVH.

The scene's frame range and frame rate are what the exporters write. The armature (with its
meshes for FBX and glTF) is exported alone: the selection is set for the export and put
back afterwards. Each file is written next to its target and renamed into place, so a
failed export leaves no half-written file.
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy

from .output_paths import file_problem
from .preview import quiet_stdout

FORMATS = (".fbx", ".glb", ".bvh")


class ExportError(Exception):
    """A path or armature the export cannot use (one line for the user)."""


def _write(scene: bpy.types.Scene, rig: bpy.types.Object, suffix: str, path: str) -> None:
    if suffix == ".fbx":
        bpy.ops.export_scene.fbx(
            filepath=path,
            use_selection=True,
            object_types={"ARMATURE", "MESH"},
            add_leaf_bones=False,
            bake_anim=True,
            bake_anim_use_all_actions=False,
            bake_anim_use_nla_strips=False,
            bake_anim_simplify_factor=0.0,  # every frame as keyed: the dance's own samples
        )
    elif suffix == ".glb":
        bpy.ops.export_scene.gltf(
            filepath=path,
            export_format="GLB",
            use_selection=True,
            export_animations=True,
            export_animation_mode="ACTIVE_ACTIONS",
            export_force_sampling=True,
            export_frame_range=True,
        )
    else:
        bpy.ops.export_anim.bvh(
            filepath=path, frame_start=scene.frame_start, frame_end=scene.frame_end, rotate_mode="NATIVE"
        )


def export_dance(scene: bpy.types.Scene, rig: bpy.types.Object, path: Path) -> str:
    """Write ``rig``'s animation over the scene's frame range to ``path`` (format by suffix)."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ExportError(f"{path}: unknown export format (use {', '.join(FORMATS)})")
    if rig is None or rig.type != "ARMATURE":
        raise ExportError(f"{path}: '{getattr(rig, 'name', None)}' is not an armature")
    if (problem := file_problem(path)) is not None:
        raise ExportError(f"{path}: {problem}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{suffix}")
    view_layer = bpy.context.view_layer
    selected = [obj for obj in view_layer.objects if obj.select_get()]
    active = view_layer.objects.active
    try:
        for obj in selected:
            obj.select_set(False)
        for obj in (rig, *(child for child in rig.children if child.type == "MESH" and suffix != ".bvh")):
            obj.select_set(True)
        view_layer.objects.active = rig
        with quiet_stdout():
            _write(scene, rig, suffix, str(partial))
        os.replace(partial, path)
    except RuntimeError as error:
        partial.unlink(missing_ok=True)
        raise ExportError(f"{path}: the exporter failed ({str(error).strip().splitlines()[-1]})") from None
    finally:
        for obj in view_layer.objects:
            obj.select_set(obj in selected)
        view_layer.objects.active = active
    frames = scene.frame_end - scene.frame_start + 1
    return f"{path}: {rig.name}, {frames} frames at {scene.render.fps / scene.render.fps_base:g} fps"
