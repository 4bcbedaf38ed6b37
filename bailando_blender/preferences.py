"""The extension's preferences: how to run the backend (Python, device, runtime) and the SMPL model folder."""

from __future__ import annotations

from pathlib import Path

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
            "For developers: the Python of an environment the backend is installed in (a checkout's .venv). "
            "Empty: the backend bundled in this extension, run on Blender's own Python"
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
        layout.label(text=backend_manager.describe_source(self.backend_python))
        layout.prop(self, "device")
        layout.prop(self, "runtime")
        layout.prop(self, "smpl_model_folder")
        self.draw_gpu(layout.box())
        state, words = backend_manager.describe()
        row = layout.row()
        row.label(text=words, icon="ERROR" if state == "failed" else "INFO")
        row.operator("bailando.restart_backend", text="Restart Backend")

    def draw_gpu(self, box: bpy.types.UILayout) -> None:
        """The NVIDIA GPU runtime: what it is, install with its size, progress, remove."""
        from . import gpu_operators, gpu_runtime  # the operators module registers after this one

        box.label(text="NVIDIA GPU", icon="MEMORY")
        running = gpu_runtime.current()
        if running is not None and not running.done:
            box.label(text=f"Installing the GPU runtime: {running.words}", icon="TIME")
            return
        if running is not None and running.error:
            row = box.row()
            row.alert = True
            row.label(text=f"GPU runtime: {running.error}", icon="ERROR")
        reason = gpu_operators.refusal(bpy.context)
        if reason:
            box.label(text=reason, icon="INFO")
            return
        user_dir = extension_user_dir()
        if gpu_runtime.installed(user_dir):
            size = gpu_runtime.installed_size_gib(user_dir)
            box.label(text=f"GPU runtime installed ({size:.1f} GiB)", icon="CHECKMARK")
            box.operator("bailando.remove_gpu_runtime", icon="TRASH")
        else:
            box.label(text="Generation runs on the CPU. With an NVIDIA GPU and its driver, install the GPU runtime:")
            box.operator(
                "bailando.install_gpu_runtime",
                text=f"Install GPU Runtime (downloads about {gpu_runtime.DOWNLOAD_GIB:.1f} GiB)",
                icon="IMPORT",
            )


def get(context: bpy.types.Context) -> BailandoPreferences | None:
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def smpl_model_folder(context: bpy.types.Context) -> str:
    prefs = get(context)
    return bpy.path.abspath(prefs.smpl_model_folder) if prefs is not None and prefs.smpl_model_folder else ""


def extension_user_dir() -> Path:
    """The extension's own folder in the user's Blender profile (the bundled backend's packages)."""
    return Path(bpy.utils.extension_path_user(__package__, path="", create=True))


def backend_command(context: bpy.types.Context) -> list[str]:
    """The backend's command from the preferences; raises ValueError (one line) when it cannot run."""
    prefs = get(context)
    if prefs is None:
        return backend_manager.choose_command("", "auto", "auto", extension_user_dir)
    python = bpy.path.abspath(prefs.backend_python) if prefs.backend_python else ""
    return backend_manager.choose_command(python, prefs.device, prefs.runtime, extension_user_dir)


def register() -> None:
    bpy.utils.register_class(BailandoPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(BailandoPreferences)
