"""The one backend process of this Blender session: started on first use, kept between jobs,
restarted after a crash or when its settings change, stopped when the extension unloads.

Standard library only (no bpy), so the batch CLI and the tests use it as the panel does.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from pathlib import Path

from . import bundled_runtime
from .backend_client import BackendProcess

# Environment variable naming the backend's Python (a virtual environment with the backend
# installed); it overrides the guess below and is what the tests and CI set.
BACKEND_PYTHON_ENV = "BAILANDO_BACKEND_PYTHON"
DEVICES = ("auto", "cuda", "cpu")
RUNTIMES = ("auto", "onnx", "torch")  # backend.generator.RUNTIMES (the extension does not import the backend)

_backend: BackendProcess | None = None


EXTENSION_DIR = Path(__file__).resolve().parent


def is_bundled() -> bool:
    """Whether this extension carries its backend (a built zip), rather than a checkout's."""
    return bundled_runtime.is_bundled(EXTENSION_DIR)


def default_backend_python() -> str:
    """A developer's backend Python when none is set: $BAILANDO_BACKEND_PYTHON, else the
    environment the README sets up (``.venv`` of the checkout this package sits in), else ""."""
    chosen = os.environ.get(BACKEND_PYTHON_ENV, "")
    if chosen:
        return chosen
    checkout = EXTENSION_DIR.parent
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
    check_options(device, runtime)
    return [python, "-m", "backend", "serve", "--device", device, "--runtime", runtime]


def check_options(device: str, runtime: str) -> None:
    """ValueError (one line) unless the backend knows ``device`` and ``runtime``."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device}")
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime}")


def choose_command(
    chosen_python: str, device: str, runtime: str, user_dir: Callable[[], Path], python: str = sys.executable
) -> list[str]:
    """The backend's command: a Python the user chose (preferences, --backend-python,
    $BAILANDO_BACKEND_PYTHON) first, else the runtime bundled in this extension, run on
    ``python`` (Blender's own) with its packages in ``user_dir()``, else a checkout's ``.venv``."""
    if not chosen_python and not os.environ.get(BACKEND_PYTHON_ENV) and is_bundled():
        check_options(device, runtime)
        return bundled_runtime.backend_command(python, EXTENSION_DIR, user_dir(), device, runtime)
    return backend_command(chosen_python or default_backend_python(), device, runtime)


def describe_source(chosen_python: str) -> str:
    """Which backend Generate will use, in words for the preferences."""
    if chosen_python:
        return f"Using: {chosen_python}"
    if os.environ.get(BACKEND_PYTHON_ENV):
        return f"Using: {os.environ[BACKEND_PYTHON_ENV]} (${BACKEND_PYTHON_ENV})"
    if is_bundled():
        return "Using: the backend bundled in this extension, on Blender's Python"
    guess = default_backend_python()
    return f"Using: {guess}" if guess else "No backend found: set its Python"


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
        installing = backend.info.get("installing")
        if installing is not None:
            return "starting", f"Backend: first start, installing its packages offline ({installing * 100:.0f}%)"
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
