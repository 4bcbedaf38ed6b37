"""The Blender user's path: the built zip installed into a fresh Blender user folder, a dance
generated on a sound strip by the bundled backend on Blender's own Python.

Each test runs a Blender (the bpy module of this environment) in a subprocess with ``-I``, HOME
in a temporary folder, no checkout on the path, no $BAILANDO_BACKEND_PYTHON, and, where
``unshare -n`` works, no network at all. The backend is started from that process's
``sys.executable`` with ``-I -S``, so this environment's site-packages (bpy, pytest, the
checkout's own packages) are invisible to it, as Blender's are: everything it imports comes
from the zip. The zip is $BAILANDO_EXTENSION_ZIP (``./run.sh test`` builds it), else built here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from .conftest import REPO, write_song

pytest.importorskip("bpy")
pytestmark = pytest.mark.slow

ZIP_ENV = "BAILANDO_EXTENSION_ZIP"
ADDON = "bl_ext.user_default.bailando_blender"
SONG_SECONDS = 3.0
FIRST_START_LIMIT_S = 900  # installing ~150 MB of wheels, then numba's first compile, on 2 cores


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get(ZIP_ENV):
        return Path(os.environ[ZIP_ENV])
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, str(REPO / "scripts" / "build_extension.py"), "build", "--platform", "linux-x64"]
    subprocess.run([*command, "--output-dir", str(out)], check=True, capture_output=True)
    (built,) = out.glob("*.zip")
    return built


def offline_prefix() -> list[str]:
    """``unshare -n`` (a process without network) where this machine allows it."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


USER_SCRIPT = r"""
import json, sys, importlib
import bpy

zip_path, song, blend = sys.argv[1:4]
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
bpy.ops.wm.save_userpref()  # what the UI's auto-save does: the next Blender starts with it enabled
manager = importlib.import_module("ADDON.backend_manager")
scene = bpy.context.scene
scene.render.fps = 30
scene.sequence_editor_create()
scene.sequence_editor.strips.new_sound("song", song, 1, 1)
result = bpy.ops.bailando.generate_dance()
rig = bpy.data.objects.get("SMPL Dancer")
action = rig.animation_data.action if rig is not None and rig.animation_data else None
channels = []
if action is not None:
    bags = [b for layer in getattr(action, "layers", []) for s in layer.strips for b in s.channelbags]
    curves = [c for b in bags for c in b.fcurves] if bags else list(action.fcurves)
    channels = sorted({len(c.keyframe_points) for c in curves})
backend = manager.current()
report = {
    "result": sorted(result),
    "error": bpy.context.window_manager.bailando_job.error,
    "channels_keys": channels,
    "command": list(backend.command) if backend else [],
    "executable": sys.executable,
    "extension_dir": str(manager.EXTENSION_DIR),
    "info": backend.info if backend else {},
    "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("backend", "models", "torch", "librosa")),
}
manager.shutdown()
bpy.ops.wm.save_as_mainfile(filepath=blend)

# The preferences' GPU buttons (from the local folder of wheels in $BAILANDO_GPU_WHEELS).
gpu = importlib.import_module("ADDON.gpu_runtime")
user_dir = importlib.import_module("ADDON.preferences").extension_user_dir()
report["gpu_install"] = sorted(bpy.ops.bailando.install_gpu_runtime())
report["gpu_installed"] = gpu.installed(user_dir)
report["gpu_remove"] = sorted(bpy.ops.bailando.remove_gpu_runtime())
report["gpu_after_remove"] = gpu.installed(user_dir)
print("REPORT " + json.dumps(report))
""".replace("ADDON", ADDON)

BATCH_SCRIPT = r"""
import runpy, sys
import bpy

bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
script, out = sys.argv[2:4]
sys.argv = ["blender", "--", "--strip", "song", "--out", out, "--beat-candidates", "1", "--quiet"]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as done:
    print("EXIT", done.code)
"""


def user_environment(home: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
    return {**{name: os.environ[name] for name in keep if name in os.environ}, "HOME": str(home)}


def run_blender(
    script: str, arguments: list[str], home: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [*offline_prefix(), sys.executable, "-I", "-c", script, *arguments]
    environment = {**user_environment(home), **(env or {})}
    return subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=FIRST_START_LIMIT_S
    )


def write_gpu_wheels(index: Path) -> Path:
    """A local index with wheels named as the GPU runtime's, small (the real ones are 1.5 GiB)."""
    index.mkdir()
    gpu_requires = ("numpy", 'nvidia-cuda-runtime; extra == "cuda"', 'nvidia-cudnn-cu13; extra == "cudnn"')
    write_wheel(index, "onnxruntime_gpu", "1.31.1", {"onnxruntime/__init__.py": "BUILD = 'gpu'\n"}, gpu_requires)
    write_wheel(index, "nvidia_cuda_runtime", "13.0.0", {"nvidia/cuda_runtime/__init__.py": ""})
    write_wheel(index, "nvidia_cudnn_cu13", "9.0.0", {"nvidia/cudnn/__init__.py": ""})
    write_wheel(index, "numpy", "2.3.5", {"numpy/__init__.py": "raise ImportError('the GPU folder shadowed numpy')\n"})
    return index


def test_the_zip_holds_the_backend_weights_and_wheels_for_both_pythons(extension_zip: Path) -> None:
    names = zipfile.ZipFile(extension_zip).namelist()
    assert {"blender_manifest.toml", "__init__.py", "bundled_runtime.py", "blender_batch.py"} <= set(names)
    assert {
        "engine/backend/service.py",
        "engine/models/files.py",
        "engine/models/weights/generator.gpt_step.onnx",
    } <= set(names)
    for tag in ("cp311", "cp313"):
        wheels = [name.rsplit("/", 1)[1] for name in names if name.startswith(f"wheels/{tag}/")]
        projects = {wheel.split("-")[0].lower() for wheel in wheels}
        assert {"numpy", "scipy", "librosa", "numba", "llvmlite", "onnxruntime", "soundfile"} <= projects, tag
        assert "onnxruntime_gpu" not in projects and "torch" not in projects
        binary = [wheel for wheel in wheels if "-none-any" not in wheel and "abi3" not in wheel]
        assert all(f"-{tag}-" in wheel for wheel in binary if wheel.split("-")[0] != "soundfile"), binary
    assert any(name.startswith("wheels/pip/pip-") for name in names)
    manifest = zipfile.ZipFile(extension_zip).read("blender_manifest.toml").decode()
    assert 'platforms = ["linux-x64"]' in manifest


def test_a_user_installs_the_zip_and_generates_on_a_sound_strip(extension_zip: Path, tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    song = write_song(work / "song.wav", duration_s=SONG_SECONDS, bpm=120.0)
    blend = work / "scene.blend"
    gpu_wheels = {"BAILANDO_GPU_WHEELS": str(write_gpu_wheels(work / "gpu-wheels"))}
    finished = run_blender(USER_SCRIPT, [str(extension_zip), str(song), str(blend)], home, work, gpu_wheels)
    lines = [line for line in finished.stdout.splitlines() if line.startswith("REPORT ")]
    assert finished.returncode == 0 and lines, finished.stdout[-2000:] + finished.stderr[-2000:]
    report = json.loads(lines[-1].removeprefix("REPORT "))
    assert report["result"] == ["FINISHED"], report["error"]
    assert report["channels_keys"] == [round(SONG_SECONDS * 30)]
    # The extension lives in the fresh user folder, its backend on this Blender's own Python.
    extension_dir = Path(report["extension_dir"])
    assert extension_dir.is_relative_to(home)
    command = report["command"]
    assert command[:3] == [report["executable"], "-I", "-S"]
    assert Path(command[3]).is_relative_to(extension_dir)
    assert report["info"]["runtime"] == "onnx" and report["info"]["trained"] is True
    assert report["modules"] == []  # the backend ran in its own process, torch nowhere
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    (packages,) = (home / ".config" / "blender").glob(
        f"*/extensions/.user/user_default/bailando_blender/packages/{tag}-*"
    )
    assert (packages / ".complete").is_file() and (packages / "numpy").is_dir()
    assert not list(packages.parent.glob("*.partial-*"))
    assert (report["gpu_install"], report["gpu_installed"]) == (["FINISHED"], True)
    assert (report["gpu_remove"], report["gpu_after_remove"]) == (["FINISHED"], False)

    # The bundled backend dances what a developer's backend dances: the same arrays, whatever
    # the Python (3.11 or 3.13), numpy (1.26 or 2.x) and ONNX Runtime build (CPU or GPU) on each side.
    developer = os.environ.get("BAILANDO_BACKEND_PYTHON", sys.executable)
    command = [sys.executable, "-I", "-S", command[3], "--extension", str(extension_dir)]
    command += ["--user", str(packages.parent.parent), "generate", str(song), "--out", str(work / "bundled.npz")]
    subprocess.run([*command, "--quiet"], check=True, capture_output=True, env=user_environment(home))
    subprocess.run(
        [developer, "-m", "backend", "generate", str(song), "--out", str(work / "developer.npz"), "--quiet"],
        check=True, capture_output=True, cwd=REPO,
    )  # fmt: skip
    with np.load(work / "bundled.npz") as bundled, np.load(work / "developer.npz") as reference:
        for key in ("joint_rotations", "root_translation", "beat_times"):
            np.testing.assert_array_equal(bundled[key], reference[key])

    # The headless script, run from the installed extension, finds the same backend (installed now).
    out = work / "batch.blend"
    script = extension_dir / "blender_batch.py"
    finished = run_blender(BATCH_SCRIPT, [str(blend), str(script), str(out)], home, work)
    assert "EXIT 0" in finished.stdout, finished.stdout[-2000:] + finished.stderr[-2000:]
    assert out.is_file()


def write_wheel(folder: Path, name: str, version: str, files: dict[str, str], requires: tuple[str, ...] = ()) -> None:
    """A minimal wheel (METADATA, WHEEL, RECORD and ``files``), as the package index serves them."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    extras = sorted({item.split("extra == ")[1].strip("'\"") for item in requires if "extra ==" in item})
    metadata += [f"Provides-Extra: {extra}" for extra in extras] + [f"Requires-Dist: {item}" for item in requires]
    contents = {
        **files,
        f"{dist_info}/METADATA": "\n".join(metadata) + "\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    contents[f"{dist_info}/RECORD"] = "".join(f"{path},,\n" for path in contents) + f"{dist_info}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, text in contents.items():
            wheel.writestr(path, text)


def extract_runtime(extension_zip: Path, destination: Path) -> Path:
    """The parts of the extension the GPU install uses: its runtime module, pip, the wheel lists."""
    with zipfile.ZipFile(extension_zip) as archive:
        for name in archive.namelist():
            if name == "bundled_runtime.py" or name.startswith("wheels/"):
                archive.extract(name, destination)
    return destination


def test_the_gpu_runtime_installs_from_a_folder_of_wheels_ahead_of_the_bundle(
    extension_zip: Path, tmp_path: Path
) -> None:
    from bailando_blender import bundled_runtime, gpu_runtime

    extension_dir = extract_runtime(extension_zip, tmp_path / "extension")
    user_dir = tmp_path / "user"
    tag = bundled_runtime.python_tag()
    packages = bundled_runtime.packages_dir(extension_dir, user_dir, tag)
    for entry in ("numpy", "numpy-1.26.4.dist-info", "onnxruntime"):  # the bundle, as installed
        (packages / entry).mkdir(parents=True)
    (packages / "onnxruntime" / "__init__.py").write_text("BUILD = 'cpu'\n")
    (packages / "numpy" / "__init__.py").write_text("")
    (packages / bundled_runtime.COMPLETE_MARKER).write_text("")

    index = write_gpu_wheels(tmp_path / "index")

    install = gpu_runtime.GpuInstall(extension_dir, user_dir, sys.executable, str(index))
    install.start()
    install.wait(300)
    assert install.done and install.error is None, install.lines[-5:]
    assert gpu_runtime.installed(user_dir) and install.files == 0  # from the folder: nothing downloaded
    folder = bundled_runtime.gpu_dir(user_dir, tag)
    assert {"onnxruntime", "nvidia"} <= {entry.name for entry in folder.iterdir()}
    assert not (folder / "numpy").exists()  # the bundle's numpy stays the one imported

    path = bundled_runtime.backend_path(extension_dir, user_dir, packages)
    probe = (
        "import sys; sys.path[:0] = sys.argv[1:]; import onnxruntime, numpy; print(onnxruntime.BUILD, numpy.__file__)"
    )
    shown = subprocess.run([sys.executable, "-I", "-S", "-c", probe, *path], capture_output=True, text=True, check=True)
    assert shown.stdout.split()[0] == "gpu" and shown.stdout.split()[1].startswith(str(packages))

    gpu_runtime.remove(user_dir)
    assert not gpu_runtime.installed(user_dir) and not folder.exists()


def test_the_gpu_runtime_offline_fails_in_one_line_and_leaves_nothing(extension_zip: Path, tmp_path: Path) -> None:
    from bailando_blender import bundled_runtime, gpu_runtime

    prefix = offline_prefix()
    if not prefix:
        pytest.skip("unshare -n (a process without network) is not allowed here")
    extension_dir = extract_runtime(extension_zip, tmp_path / "extension")
    offline_python = tmp_path / "offline-python"
    offline_python.write_text(f'#!/bin/sh\nexec {" ".join(prefix)} {sys.executable} "$@"\n')
    offline_python.chmod(0o755)
    user_dir = tmp_path / "user"
    install = gpu_runtime.GpuInstall(extension_dir, user_dir, str(offline_python))
    install.start()
    install.wait(300)
    assert install.done and install.error is not None
    assert install.error.startswith("cannot reach the package index (offline?)") and "\n" not in install.error
    assert not bundled_runtime.gpu_dir(user_dir, bundled_runtime.python_tag()).exists()
    assert not list((user_dir / bundled_runtime.GPU_FOLDER).glob("*.partial-*"))


BROKEN_SCRIPT = r"""
import json, sys, importlib
from pathlib import Path
import bpy

zip_path, song = sys.argv[1:3]
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
manager = importlib.import_module("ADDON.backend_manager")
tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
(numpy_wheel,) = (manager.EXTENSION_DIR / "wheels" / tag).glob("numpy-*.whl")
numpy_wheel.write_bytes(numpy_wheel.read_bytes()[:4096])  # a damaged download or disk
scene = bpy.context.scene
scene.sequence_editor_create()
scene.sequence_editor.strips.new_sound("song", song, 1, 1)
before = (sorted(bpy.data.objects.keys()), sorted(bpy.data.actions.keys()), scene.frame_end)
try:
    bpy.ops.bailando.generate_dance()
    error = ""
except RuntimeError as failure:
    error = str(failure)
after = (sorted(bpy.data.objects.keys()), sorted(bpy.data.actions.keys()), scene.frame_end)
print("REPORT " + json.dumps({"error": error, "panel": bpy.context.window_manager.bailando_job.error,
                              "unchanged": before == after, "state": manager.describe()[0]}))
manager.shutdown()
""".replace("ADDON", ADDON)


def test_a_broken_bundled_runtime_says_so_in_one_line_and_changes_nothing(extension_zip: Path, tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    song = write_song(work / "song.wav", duration_s=SONG_SECONDS, bpm=120.0)
    finished = run_blender(BROKEN_SCRIPT, [str(extension_zip), str(song)], home, work)
    lines = [line for line in finished.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, finished.stdout[-2000:] + finished.stderr[-2000:]
    report = json.loads(lines[-1].removeprefix("REPORT "))
    assert report["unchanged"] and report["state"] == "failed"
    panel = report["panel"]
    assert "\n" not in panel and "Traceback" not in panel and "Traceback" not in finished.stderr
    assert panel.startswith("Backend: ") and "bundled runtime" in panel and panel.endswith("reinstall the extension")
    assert not list((home / ".config" / "blender").glob("*/extensions/.user/user_default/*/packages/*"))
