"""Operators of the preferences' GPU box: install the NVIDIA GPU runtime (modal: the download runs
in a thread, the preferences show its progress) and remove it."""

from __future__ import annotations

import bpy

from . import backend_manager, gpu_runtime, preferences

TIMER_INTERVAL_S = 0.5


def redraw_preferences(context: bpy.types.Context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()


def refusal(context: bpy.types.Context) -> str:
    """Why the GPU runtime cannot be installed here, or ""."""
    if not gpu_runtime.supported():
        return f"ONNX Runtime has no GPU build for {gpu_runtime.blender_platform()}: the CPU runs the dance"
    if not backend_manager.is_bundled():
        return "This is a developer's install: add the GPU runtime to the backend's environment (pip install .[cuda])"
    if not bpy.app.online_access and not gpu_runtime.find_links():
        return "Blender's online access is off (Preferences > System > Network): allow it to download the GPU runtime"
    return ""


class BAILANDO_OT_install_gpu_runtime(bpy.types.Operator):
    """Download ONNX Runtime's GPU build with CUDA and cuDNN from the Python package index into this
    extension's user folder (the next Generate runs on the NVIDIA GPU)"""

    bl_idname = "bailando.install_gpu_runtime"
    bl_label = "Install GPU Runtime"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        running = gpu_runtime.current()
        if running is not None and not running.done:
            cls.poll_message_set("The GPU runtime is being installed")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Blocking (background mode and scripts)."""
        if not self.begin(context):
            return {"CANCELLED"}
        while not self.install.done:
            self.install.wait(TIMER_INTERVAL_S)
        return self.finish(context)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if not self.begin(context):
            return {"CANCELLED"}
        self.timer = context.window_manager.event_timer_add(TIMER_INTERVAL_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        redraw_preferences(context)
        if not self.install.done:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self.timer)
        return self.finish(context)

    def begin(self, context: bpy.types.Context) -> bool:
        reason = refusal(context)
        try:
            if reason:
                raise ValueError(reason)
            self.install = gpu_runtime.start_install(backend_manager.EXTENSION_DIR, preferences.extension_user_dir())
        except ValueError as error:
            self.report({"ERROR"}, f"GPU runtime: {error}")
            return False
        return True

    def finish(self, context: bpy.types.Context) -> set[str]:
        redraw_preferences(context)
        if self.install.error is not None:
            self.report({"ERROR"}, f"GPU runtime: {self.install.error}")
            return {"CANCELLED"}
        backend_manager.shutdown()  # the next Generate starts a backend that sees the GPU build
        self.report({"INFO"}, "GPU runtime installed: the next Generate uses the NVIDIA GPU")
        return {"FINISHED"}


class BAILANDO_OT_remove_gpu_runtime(bpy.types.Operator):
    """Remove the GPU runtime from this extension's user folder (the CPU runs the dance again)"""

    bl_idname = "bailando.remove_gpu_runtime"
    bl_label = "Remove GPU Runtime"

    def execute(self, context: bpy.types.Context) -> set[str]:
        backend_manager.shutdown()  # its libraries are loaded by a running backend (locked on Windows)
        try:
            gpu_runtime.remove(preferences.extension_user_dir())
        except ValueError as error:
            self.report({"ERROR"}, f"GPU runtime: {error}")
            return {"CANCELLED"}
        redraw_preferences(context)
        self.report({"INFO"}, "GPU runtime removed")
        return {"FINISHED"}


CLASSES = (BAILANDO_OT_install_gpu_runtime, BAILANDO_OT_remove_gpu_runtime)
register, unregister = bpy.utils.register_classes_factory(CLASSES)
