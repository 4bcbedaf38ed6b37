"""The optional NVIDIA GPU runtime of the bundled backend: installed on request, in a thread, from
the package index (or a local folder of wheels), into the extension's user folder; removed on
request. Standard library only: the preferences' buttons and the tests drive it.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import bundled_runtime

# A local folder of wheels to install from instead of the package index (tests, offline machines).
GPU_WHEELS_ENV = "BAILANDO_GPU_WHEELS"
# What the button downloads: ONNX Runtime GPU 1.31.1 with the CUDA 13 and cuDNN 9 wheels it
# names, 1.46 GiB measured on Linux x86-64 for Python 3.13 (docs/extension.md: per file).
DOWNLOAD_GIB = 1.5
OFFLINE_SIGNS = ("NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
                 "Network is unreachable", "No matching distribution found")  # fmt: skip
DOWNLOAD_LINE = re.compile(r"Downloading (?:https?://\S+/)?(\S+?)-\d\S*\.whl \(([\d.]+ [kMG]B)\)")


def blender_platform() -> str:
    """This machine in the manifest's words: linux-x64, windows-x64, macos-arm64, ..."""
    system = {"linux": "linux", "win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)
    machine = {"x86_64": "x64", "amd64": "x64", "arm64": "arm64", "aarch64": "arm64"}.get(platform.machine().lower())
    return f"{system}-{machine or platform.machine().lower()}"


def supported() -> bool:
    return blender_platform() in bundled_runtime.GPU_PLATFORMS


def installed(user_dir: Path) -> bool:
    return bundled_runtime.is_installed(bundled_runtime.gpu_dir(user_dir, bundled_runtime.python_tag()))


def installed_size_gib(user_dir: Path) -> float:
    folder = bundled_runtime.gpu_dir(user_dir, bundled_runtime.python_tag())
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 2**30


@dataclass
class GpuInstall:
    """One install in a thread; the UI reads ``words``, ``done`` and ``error``."""

    extension_dir: Path
    user_dir: Path
    python: str = sys.executable
    find_links: str = ""
    words: str = "starting pip"
    done: bool = False
    error: str | None = None
    files: int = 0
    lines: list[str] = field(default_factory=list)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _on_line(self, line: str) -> None:
        self.lines.append(line)
        found = DOWNLOAD_LINE.search(line)
        if found:
            self.files += 1
            self.words = f"downloading {found.group(1)} ({found.group(2)}), file {self.files}"
        elif line.startswith(("Processing ", "Installing collected")):
            self.words = "installing"

    def _run(self) -> None:
        try:
            bundled_runtime.install_gpu(self.extension_dir, self.user_dir, self._on_line, self.python, self.find_links)
        except bundled_runtime.RuntimeSetupError as error:
            offline = any(sign in line for line in self.lines for sign in OFFLINE_SIGNS)
            self.error = f"cannot reach the package index (offline?): {error}" if offline else str(error)
        except Exception as error:  # noqa: BLE001  (a thread's last words must reach the UI)
            self.error = f"{type(error).__name__}: {error}"
        self.done = True


_current: GpuInstall | None = None


def find_links() -> str:
    return os.environ.get(GPU_WHEELS_ENV, "")


def start_install(extension_dir: Path, user_dir: Path, python: str = sys.executable) -> GpuInstall:
    global _current
    if _current is not None and not _current.done:
        raise ValueError("the GPU runtime is being installed already")
    _current = GpuInstall(extension_dir, user_dir, python, find_links())
    _current.start()
    return _current


def current() -> GpuInstall | None:
    return _current


def remove(user_dir: Path) -> None:
    if _current is not None and not _current.done:
        raise ValueError("the GPU runtime is being installed; wait for it to end")
    bundled_runtime.remove_gpu(user_dir)
