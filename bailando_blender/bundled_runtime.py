"""The backend that ships inside the extension's zip, run on Blender's own Python.

A zip that ``scripts/build_extension.py`` writes holds, beside the add-on:

    engine/backend/, engine/models/     the backend's code and the ONNX graphs it runs
    wheels/cp311/, wheels/cp313/        every package the backend imports, as unmodified wheels
                                        from the package index, one folder per Python
    wheels/pip/                         pip's own wheel, which installs them (offline)

Blender starts ``sys.executable -I -S bundled_runtime.py --extension DIR --user DIR serve ...``:
``-I -S`` keep Blender's site-packages (and the user's) out of the backend, whose packages live
in a private folder under the extension's user folder, filled from the bundled wheels on first
use. Nothing the backend installs reaches Blender's own Python or other extensions (their
folders are never on its path), and nothing they install reaches the backend. The NVIDIA GPU's
runtime (ONNX Runtime's GPU build, CUDA, cuDNN) is an optional second folder, installed from the
package index by ``gpu_install_command`` and put ahead of the first, so that its
``onnxruntime`` is the one imported.

Standard library only, and runnable as a script (no relative imports): the extension imports it
for the paths and commands, the backend process runs it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ENGINE_FOLDER = "engine"
WHEELS_FOLDER = "wheels"
PIP_FOLDER = "pip"
PACKAGES_FOLDER = "packages"  # under the extension's user folder: <tag>-<bundle id>/ per Python
GPU_FOLDER = "gpu"  # under the extension's user folder: <tag>/ per Python
COMPLETE_MARKER = ".complete"  # written last: a folder without it is an interrupted install
ADDON_PACKAGE = "bailando_blender"  # the name the backend imports the shared core by
# The GPU runtime from the package index: ONNX Runtime's GPU build with the CUDA 13 and cuDNN 9
# wheels it names as its extras (the same pins as the project's `cuda` extra).
GPU_REQUIREMENT = "onnxruntime-gpu[cuda,cudnn]==1.31.1"
GPU_PLATFORMS = ("linux-x64", "windows-x64")  # where ONNX Runtime's GPU build exists
EXIT_BAD_INPUT = 2


class RuntimeSetupError(Exception):
    """The bundled runtime cannot be used; the message is one line for the user."""


def python_tag(version: tuple[int, ...] = tuple(sys.version_info[:2])) -> str:
    """(3, 13) -> 'cp313', the wheel tag of a CPython."""
    return f"cp{version[0]}{version[1]}"


def is_bundled(extension_dir: Path) -> bool:
    """Whether ``extension_dir`` is a self-contained build (engine and wheels inside)."""
    return (extension_dir / ENGINE_FOLDER / "backend").is_dir() and (extension_dir / WHEELS_FOLDER).is_dir()


def bundled_tags(extension_dir: Path) -> list[str]:
    folder = extension_dir / WHEELS_FOLDER
    return sorted(path.name for path in folder.iterdir() if path.is_dir() and path.name.startswith("cp"))


def bundle_wheels(extension_dir: Path, tag: str) -> list[Path]:
    return sorted((extension_dir / WHEELS_FOLDER / tag).glob("*.whl"))


def bundle_id(extension_dir: Path, tag: str) -> str:
    """Names the set of wheels (their file names carry their versions): a new zip, a new folder."""
    names = "\n".join(path.name for path in bundle_wheels(extension_dir, tag))
    return hashlib.sha256(names.encode()).hexdigest()[:12]


def packages_dir(extension_dir: Path, user_dir: Path, tag: str) -> Path:
    return user_dir / PACKAGES_FOLDER / f"{tag}-{bundle_id(extension_dir, tag)}"


def gpu_dir(user_dir: Path, tag: str) -> Path:
    return user_dir / GPU_FOLDER / tag


def is_installed(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file()


def pip_wheel(extension_dir: Path) -> Path:
    found = sorted((extension_dir / WHEELS_FOLDER / PIP_FOLDER).glob("pip-*.whl"))
    if not found:
        raise RuntimeSetupError(f"{extension_dir}: the extension's bundled pip is missing; reinstall the extension")
    return found[-1]


def pip_command(python: str, extension_dir: Path) -> list[str]:
    """pip run from its own wheel, as ensurepip does: whatever Blender's Python holds or lacks."""
    return [python, "-I", "-S", str(pip_wheel(extension_dir) / "pip"), "--disable-pip-version-check"]


def backend_command(
    python: str, extension_dir: Path, user_dir: Path, device: str = "auto", runtime: str = "auto"
) -> list[str]:
    """The command that installs (first time) and serves the bundled backend."""
    script = Path(__file__).resolve()
    return [
        python, "-I", "-S", str(script), "--extension", str(extension_dir), "--user", str(user_dir),
        "serve", "--device", device, "--runtime", runtime,
    ]  # fmt: skip


def run_pip(command: list[str], on_line: Callable[[str], None]) -> None:
    """Run pip, handing each line it prints to ``on_line``; raises RuntimeSetupError with its last words."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "PYTHON"))}
    env["PYTHONUNBUFFERED"] = "1"
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env
        )
    except OSError as error:
        raise RuntimeSetupError(f"cannot run pip ({command[0]}): {error.strerror or error}") from None
    last = ""
    for line in process.stdout:  # type: ignore[union-attr]
        line = line.strip()
        if line:
            last = line
            on_line(line)
    if process.wait() != 0:
        raise RuntimeSetupError(last.removeprefix("ERROR: ") or f"pip exited with code {process.returncode}")


def install_into(
    folder: Path,
    command_for: Callable[[Path], list[str]],
    on_line: Callable[[str], None],
    prune: Callable[[Path], None] | None = None,
) -> None:
    """Install with ``command_for(staging folder)`` and move the result to ``folder`` whole.

    Nothing half-written is ever used: the staging folder is renamed only once pip succeeded,
    and the marker is written last. Two Blenders installing at once each stage their own.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        run_pip(command_for(staging), on_line)
        if prune is not None:
            prune(staging)
        (staging / COMPLETE_MARKER).write_text("")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except OSError as error:
        if is_installed(folder):  # another Blender finished the same install first
            return
        raise RuntimeSetupError(f"cannot install into {folder}: {error.strerror or error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pip_install_command(python: str, extension_dir: Path, target: Path, *arguments: str) -> list[str]:
    """``pip install`` of wheels only into ``target``, quietly enough for a progress line a file."""
    return [
        *pip_command(python, extension_dir), "install", "--only-binary", ":all:", "--no-compile",
        "--progress-bar", "off", "--target", str(target), *arguments,
    ]  # fmt: skip


def bundle_install_command(python: str, extension_dir: Path, tag: str, target: Path) -> list[str]:
    wheels = bundle_wheels(extension_dir, tag)
    folder = str(extension_dir / WHEELS_FOLDER / tag)
    return pip_install_command(python, extension_dir, target, "--no-index", "--find-links", folder, *map(str, wheels))


def ensure_packages(extension_dir: Path, user_dir: Path, report: Callable[[dict], None]) -> Path:
    """The private folder of this Python's packages, installed from the bundled wheels if needed."""
    tag = python_tag()
    if tag not in bundled_tags(extension_dir):
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        have = ", ".join(f"{t[2]}.{t[3:]}" for t in bundled_tags(extension_dir)) or "none"
        raise RuntimeSetupError(
            f"this extension has no packages for Python {version} (it has {have}): use a supported Blender"
        )
    folder = packages_dir(extension_dir, user_dir, tag)
    if is_installed(folder):
        return folder
    total = len(bundle_wheels(extension_dir, tag))
    done = 0

    def on_line(line: str) -> None:
        nonlocal done
        if line.startswith("Processing "):
            done += 1
            report({"event": "installing", "fraction": min(done / total, 1.0), "packages": total})

    report({"event": "installing", "fraction": 0.0, "packages": total})

    def command_for(staging: Path) -> list[str]:
        return bundle_install_command(sys.executable, extension_dir, tag, staging)

    try:
        install_into(folder, command_for, on_line)
    except RuntimeSetupError as error:
        raise RuntimeSetupError(f"its packages cannot be installed ({error}): reinstall the extension") from None
    for old in folder.parent.glob(f"{tag}-*"):  # the packages of an earlier version of the extension
        if old != folder and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return folder


def gpu_install_command(python: str, extension_dir: Path, staging: Path, find_links: str = "") -> list[str]:
    """pip installing the GPU runtime into ``staging`` from the package index, or from the local
    folder of wheels ``find_links`` (the tests, or an offline machine with the wheels at hand)."""
    source = ["--no-index", "--find-links", find_links] if find_links else ["--retries", "1", "--timeout", "15"]
    return pip_install_command(python, extension_dir, staging, *source, GPU_REQUIREMENT)


def project_name(entry: str) -> str:
    """'numpy-2.3.5.dist-info' or 'numpy' -> 'numpy' (PEP 503 normalised)."""
    name = entry.split("-")[0] if entry.endswith((".dist-info", ".data")) else entry
    return name.lower().replace("-", "_").replace(".", "_")


def prune_bundled(staging: Path, packages: Path, keep: tuple[str, ...] = ("onnxruntime", "onnxruntime_gpu")) -> None:
    """Remove from the GPU folder what the bundle already has (numpy and the rest that pip brought
    along as ONNX Runtime's requirements), so that the bundle's versions are the ones imported;
    ONNX Runtime itself stays, its GPU build ahead of the bundle's CPU build."""
    bundled = {project_name(entry.name) for entry in packages.iterdir()} if packages.is_dir() else set()
    for entry in staging.iterdir():
        name = project_name(entry.name)
        if name in bundled and name not in keep:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def install_gpu(
    extension_dir: Path,
    user_dir: Path,
    on_line: Callable[[str], None],
    python: str = sys.executable,
    find_links: str = "",
) -> Path:
    """Install the GPU runtime for ``python`` into the user folder (replacing an earlier one)."""
    tag = python_tag()
    packages = packages_dir(extension_dir, user_dir, tag)

    def command_for(staging: Path) -> list[str]:
        return gpu_install_command(python, extension_dir, staging, find_links)

    folder = gpu_dir(user_dir, tag)
    install_into(folder, command_for, on_line, prune=lambda staging: prune_bundled(staging, packages))
    return folder


def remove_gpu(user_dir: Path) -> None:
    """Remove the GPU runtime of every Python (the CPU build in the bundle takes over)."""
    shutil.rmtree(user_dir / GPU_FOLDER, ignore_errors=True)


def backend_path(extension_dir: Path, user_dir: Path, packages: Path) -> list[str]:
    """What goes ahead of the standard library on the backend's path: the GPU runtime (if
    installed, so that its ``onnxruntime`` is the one imported), the bundle's packages, the engine."""
    gpu = gpu_dir(user_dir, python_tag())
    return [*([str(gpu)] if is_installed(gpu) else []), str(packages), str(extension_dir / ENGINE_FOLDER)]


def load_shared_core(extension_dir: Path) -> None:
    """Make the add-on's folder importable as ``bailando_blender`` (the backend uses its pure-numpy
    skeleton) without putting the folder that holds every installed extension on the path."""
    spec = importlib.util.spec_from_file_location(
        ADDON_PACKAGE, extension_dir / "__init__.py", submodule_search_locations=[str(extension_dir)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[ADDON_PACKAGE] = module
    spec.loader.exec_module(module)


def emit(event: dict) -> None:
    """One event line in the backend service's protocol (see backend/service.py)."""
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install (first time) and run the bundled backend")
    parser.add_argument("--extension", type=Path, required=True, help="the installed extension's folder")
    parser.add_argument("--user", type=Path, required=True, help="the extension's user folder")
    args, backend_arguments = parser.parse_known_args(argv)
    try:
        packages = ensure_packages(args.extension, args.user, emit)
    except RuntimeSetupError as error:
        sys.stderr.write(f"error: bundled runtime: {error}\n")
        return EXIT_BAD_INPUT
    sys.path[:0] = backend_path(args.extension, args.user, packages)
    try:
        load_shared_core(args.extension)
        from backend.cli import main as backend_main
    except ImportError as error:
        (packages / COMPLETE_MARKER).unlink(missing_ok=True)  # the next start installs them again
        sys.stderr.write(f"error: bundled runtime: {error}; Restart Backend installs its packages again\n")
        return EXIT_BAD_INPUT

    return backend_main(backend_arguments)


if __name__ == "__main__":
    sys.exit(main())
