"""Bailando for Blender: music to SMPL dance, keyed on an armature.

This ``__init__`` stays thin and imports no bpy at module level, so that the pure-numpy
``skeleton`` module and the stdlib ``backend_client`` can be imported by the backend, the
tests and the batch CLI without Blender. Registration imports the UI modules lazily.
"""

from __future__ import annotations

import importlib

# Modules with ``register()``/``unregister()``, in registration order.
_UI_MODULES: tuple[str, ...] = ("properties", "preferences", "operators", "gpu_operators", "panels")


def register() -> None:
    for name in _UI_MODULES:
        importlib.import_module(f".{name}", __package__).register()


def unregister() -> None:
    for name in reversed(_UI_MODULES):
        importlib.import_module(f".{name}", __package__).unregister()
