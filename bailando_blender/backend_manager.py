"""The one backend process of this Blender session: started on first use, kept between jobs,
restarted after a crash or when its settings change, stopped when the extension unloads.

Standard library only (no bpy), so the batch CLI and the tests use it as the panel does.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path

from .backend_client import BackendProcess

# Environment variable naming the backend's Python (a virtual environment with the backend
# installed); it overrides the guess below and is what the tests and CI set.
BACKEND_PYTHON_ENV = "BAILANDO_BACKEND_PYTHON"
DEVICES = ("auto", "cuda", "cpu")
RUNTIMES = ("auto", "onnx", "torch")  # backend.generator.RUNTIMES (the extension does not import the backend)

_backend: BackendProcess | None = None


def default_backend_python() -> str:
    """The backend's Python when none is set: $BAILANDO_BACKEND_PYTHON, else the environment the
    README sets up (``.venv`` of the checkout this package sits in), else ""."""
    chosen = os.environ.get(BACKEND_PYTHON_ENV, "")
    if chosen:
        return chosen
    checkout = Path(__file__).resolve().parent.parent
    for relative in ("bin/python", "Scripts/python.exe"):
        candidate = checkout / ".venv" / relative
        if candidate.is_file():
            return str(candidate)
    return ""


def backend_command(python: str, device: str = "auto", runtime: str = "auto") -> list[str]:
    """The command that serves jobs; raises ValueError (one line) when ``python`` cannot run."""
    if not python:
        raise ValueError("the backend's Python is not set (extension preferences, or --backend-python)")
    if not os.path.isfile(python) or not os.access(python, os.X_OK):
        raise ValueError(f"the backend's Python {python} does not exist or cannot run")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device}")
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime}")
    return [python, "-m", "backend", "serve", "--device", device, "--runtime", runtime]


def current() -> BackendProcess | None:
    return _backend


def ensure_started(command: list[str]) -> BackendProcess:
    """The running backend for ``command``, started (not waited for) if needed.

    A backend that died, failed or was started with another command is replaced.
    """
    global _backend
    if _backend is not None and (list(_backend.command) != command or not _backend.alive()):
        if _backend.busy() and _backend.alive():
            raise ValueError("the backend is busy; cancel the running dance before changing its settings")
        _backend.stop()
        _backend = None
    if _backend is None:
        _backend = BackendProcess(command, env=backend_environment())
    if not _backend.alive():
        _backend.start()
    return _backend


def backend_environment() -> dict[str, str]:
    env = dict(os.environ)
    # Blender sets these for its own Python; the backend's interpreter must not inherit them.
    for name in ("PYTHONHOME", "PYTHONPATH"):
        env.pop(name, None)
    return env


def describe() -> tuple[str, str]:
    """(state, words for the user): state is stopped, starting, ready, busy or failed."""
    backend = _backend
    if backend is None:
        return "stopped", "Backend: not started (starts on the first Generate)"
    if backend.state == "failed":
        return "failed", f"Backend failed: {backend.failure}"
    if backend.state == "starting":
        return "starting", "Backend: starting (loading the generator)"
    if backend.state == "ready":
        device = backend.info.get("device", "?")
        trained = "" if backend.info.get("trained", True) else ", untrained weights"
        if backend.busy():
            return "busy", f"Backend: busy on {device}{trained}"
        return "ready", f"Backend: ready on {device}{trained}"
    return "stopped", "Backend: stopped"


def shutdown() -> None:
    global _backend
    if _backend is not None:
        _backend.stop()
        _backend = None


atexit.register(shutdown)
