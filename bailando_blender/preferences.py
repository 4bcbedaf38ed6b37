"""The extension's preferences: how to run the backend (Python, device, runtime) and the SMPL model folder."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from . import backend_manager

DEVICE_ITEMS = [
    ("auto", "Auto", "CUDA when the backend's runtime finds an NVIDIA GPU, else the CPU"),
    ("cuda", "CUDA", "The NVIDIA GPU (fails if the backend has no CUDA)"),
    ("cpu", "CPU", "The processor; slower, always available"),
]
RUNTIME_ITEMS = [
    ("auto", "Auto", "ONNX Runtime when the generator's ONNX graphs are there, else torch"),
    ("onnx", "ONNX Runtime", "The default install's runtime: no torch needed"),
    ("torch", "PyTorch", "Needs the backend's torch extra (pip install .[torch])"),
]


class BailandoPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    backend_python: StringProperty(
        name="Backend Python",
        description=(
            "Python of the environment the backend is installed in (the README's .venv). "
            "Empty: the .venv next to this extension, if there is one"
        ),
        subtype="FILE_PATH",
        default="",
    )
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="auto")
    runtime: EnumProperty(name="Runtime", items=RUNTIME_ITEMS, default="auto")
    smpl_model_folder: StringProperty(
        name="SMPL Model Folder",
        description=(
            "Optional: the folder of your licensed SMPL model (SMPL_NEUTRAL.pkl or .npz, there or in smpl/). "
            "New dancers then get the skinned SMPL mesh instead of capsules"
        ),
        subtype="DIR_PATH",
        default="",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "backend_python")
        if not self.backend_python:
            guess = backend_manager.default_backend_python()
            layout.label(text=f"Using: {guess}" if guess else "No backend environment found: set its Python")
        layout.prop(self, "device")
        layout.prop(self, "runtime")
        layout.prop(self, "smpl_model_folder")
        state, words = backend_manager.describe()
        row = layout.row()
        row.label(text=words, icon="ERROR" if state == "failed" else "INFO")
        row.operator("bailando.restart_backend", text="Restart Backend")


def get(context: bpy.types.Context) -> BailandoPreferences | None:
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def smpl_model_folder(context: bpy.types.Context) -> str:
    prefs = get(context)
    return bpy.path.abspath(prefs.smpl_model_folder) if prefs is not None and prefs.smpl_model_folder else ""


def backend_settings(context: bpy.types.Context) -> tuple[str, str, str]:
    """(backend Python, device, runtime) from the preferences, with the defaults filled in."""
    prefs = get(context)
    if prefs is None:
        return backend_manager.default_backend_python(), "auto", "auto"
    python = bpy.path.abspath(prefs.backend_python) if prefs.backend_python else ""
    return python or backend_manager.default_backend_python(), prefs.device, prefs.runtime


def register() -> None:
    bpy.utils.register_class(BailandoPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(BailandoPreferences)
