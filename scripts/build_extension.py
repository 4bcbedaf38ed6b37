"""Validate and build the Blender extension: one self-contained zip per platform.

    python scripts/build_extension.py validate
    python scripts/build_extension.py build [--platform linux-x64 ...] [--output-dir dist] [--ui-only]

Each zip holds the add-on (``bailando_blender/`` at the zip's root), the backend and network
code with the shipped ONNX graphs (``engine/``), and every package the backend imports as
unmodified wheels from the package index, for each Python the supported Blenders use
(``wheels/cp311``, ``wheels/cp313``), plus pip's own wheel, which installs them offline on first
use (see ``bailando_blender/bundled_runtime.py``). ``--ui-only`` writes the add-on alone (a
developer's zip: the backend then comes from a checkout). Wheels are downloaded once into
``--wheel-cache``. Blender's own tool (``blender_ext.py``, shipped inside the ``bpy`` module and
every Blender, run without a Blender executable) validates and builds each zip.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "bailando_blender"
MANIFEST = REPO / "blender_manifest.toml"
PYPROJECT = REPO / "pyproject.toml"
BATCH_SCRIPT = REPO / "scripts" / "blender_batch.py"  # `blender -b --python` runs it from the installed extension
TOOL_GLOB = "*/scripts/addons_core/bl_pkg/cli/blender_ext.py"
WHEEL_CACHE = REPO / ".cache" / "wheels"
ENGINE_PACKAGES = ("backend", "models")
sys.path.insert(0, str(REPO))
from models.files import ONNX_GRAPHS  # noqa: E402  (the standard library only; after the path)

# The generator's ONNX graphs (the checkpoint itself is not needed to dance).
WEIGHT_FILES = tuple(f"generator.{graph}.onnx" for graph in ONNX_GRAPHS)
ENGINE_DOCS = ("models/MODEL_CARD.md",)
MACOS_MINIMUM = "14.0"  # ONNX Runtime 1.31's macOS wheels are for macOS 14 and newer
PIP_REQUIREMENT = "pip==26.3"  # runs the first-start install from the zip (bundled_runtime.pip_command)
SKIPPED = ("__pycache__", ".pyc")


@dataclass(frozen=True)
class Platform:
    """A Blender platform and the wheel tags its packages come in (most preferred first)."""

    name: str  # Blender's manifest name
    resolver_target: str  # uv's --python-platform
    wheel_tags: tuple[str, ...]


# The Pythons of the supported Blenders: 4.5 LTS runs 3.11; 5.1 and newer (5.3 today) run 3.13.
PYTHONS = ("3.11", "3.13")
LINUX_TAGS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_5_x86_64",
    "manylinux1_x86_64",
)  # fmt: skip  (Blender 4.5 and 5.x need glibc 2.28)
MACOS_TAGS = ("macosx_14_0_arm64", "macosx_13_0_arm64", "macosx_12_0_arm64", "macosx_11_0_arm64")
PLATFORMS = {
    platform.name: platform
    for platform in (
        Platform("linux-x64", "x86_64-manylinux_2_28", LINUX_TAGS),
        Platform("windows-x64", "x86_64-pc-windows-msvc", ("win_amd64",)),
        Platform("macos-arm64", "aarch64-apple-darwin", MACOS_TAGS),
    )
}


def find_extension_tool() -> Path:
    """Blender's ``blender_ext.py``: $BLENDER_EXT_TOOL, else the one in the installed bpy module."""
    if os.environ.get("BLENDER_EXT_TOOL"):
        return Path(os.environ["BLENDER_EXT_TOOL"])
    spec = importlib.util.find_spec("bpy")
    roots = list(spec.submodule_search_locations or []) if spec else []
    if spec and spec.origin:
        roots.append(str(Path(spec.origin).parent))
    for root in roots:
        found = sorted(glob.glob(os.path.join(root, TOOL_GLOB)))
        if found:
            return Path(found[-1])
    raise SystemExit("error: Blender's extension tool not found: install the bpy module or set BLENDER_EXT_TOOL")


def backend_requirements() -> list[str]:
    """The backend's pinned dependencies from pyproject.toml, with ONNX Runtime's CPU build on
    every platform (the GPU build is the preferences' optional download)."""
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    requirements = [line for line in dependencies if not line.startswith("onnxruntime")]
    pins = {line.split(";")[0].split("==")[1].strip() for line in dependencies if line.startswith("onnxruntime")}
    if len(pins) != 1:
        raise SystemExit("error: pyproject.toml: expected one onnxruntime version")
    return [*requirements, f"onnxruntime=={pins.pop()}"]


def locked_requirements(platform: Platform, python: str) -> list[str]:
    """Every package the backend needs on ``platform`` under ``python``, pinned, from uv's
    resolver: unlike ``pip download --platform``, it judges the packages' markers
    (``python_version``, ``sys_platform``) by the target, not by the Python it runs on."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "requirements.in"
        source.write_text("\n".join(backend_requirements()) + "\n")
        command = [sys.executable, "-m", "uv", "pip", "compile", str(source), "--no-header", "--no-annotate",
                   "--only-binary", ":all:", "--python-version", python,
                   "--python-platform", platform.resolver_target]  # fmt: skip
        env = {**os.environ, "MACOSX_DEPLOYMENT_TARGET": MACOS_MINIMUM}
        result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"error: resolving the backend's packages for {platform.name}, Python {python}: "
                         f"{(result.stderr.strip().splitlines() or ['uv failed'])[-1]}")  # fmt: skip
    return [line.strip() for line in result.stdout.splitlines() if line.strip() and not line.startswith("#")]


def pip_download(arguments: list[str], destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--only-binary", ":all:", "--dest", str(destination), *arguments]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = [line for line in result.stderr.splitlines() if line.startswith("ERROR")] or ["pip download failed"]
        raise SystemExit(f"error: {destination}: {last[-1]}")


def download_wheels(platform: Platform, python: str, cache: Path) -> list[Path]:
    """Every wheel the backend needs on ``platform`` under ``python``, from the package index."""
    folder = cache / platform.name / f"cp{python.replace('.', '')}"
    locked = locked_requirements(platform, python)
    tags = [argument for tag in platform.wheel_tags for argument in ("--platform", tag)]
    pip_download([*tags, "--python-version", python, "--implementation", "cp", "--no-deps", *locked], folder)
    wanted = {canonical(line.split("==")[0]) + "-" + line.split("==")[1] for line in locked}
    wheels = [wheel for wheel in sorted(folder.glob("*.whl")) if wheel_key(wheel) in wanted]
    if len(wheels) != len(wanted):
        raise SystemExit(f"error: {folder}: {len(wheels)} wheels for {len(wanted)} requirements")
    return wheels


def canonical(name: str) -> str:
    """A project name as wheel file names spell it: lower case, '_' for '-' and '.'."""
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_key(wheel: Path) -> str:
    """'numpy-2.3.5-cp313-...whl' -> 'numpy-2.3.5'."""
    name, version = wheel.name.split("-")[:2]
    return f"{canonical(name)}-{version}"


def download_pip(cache: Path) -> Path:
    folder = cache / "pip"
    pip_download(["--no-deps", PIP_REQUIREMENT], folder)
    (wheel,) = sorted(folder.glob(f"pip-{PIP_REQUIREMENT.split('==')[1]}-*.whl"))
    return wheel


def copy_tree(source: Path, destination: Path) -> None:
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        if path.is_dir() or "__pycache__" in relative.parts or path.suffix == ".pyc":
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def stage_addon(destination: Path, platform: Platform | None) -> None:
    """The manifest (for one platform, if given) and the add-on's files at the zip's root."""
    manifest = MANIFEST.read_text()
    if platform is not None:
        manifest = manifest.replace("\n[permissions]", f'\nplatforms = ["{platform.name}"]\n\n[permissions]', 1)
    (destination / MANIFEST.name).write_text(manifest)
    copy_tree(PACKAGE, destination)
    shutil.copy2(BATCH_SCRIPT, destination / BATCH_SCRIPT.name)


def stage_engine(destination: Path) -> None:
    """The backend and network code and the ONNX graphs (the checkpoint itself is not needed)."""
    engine = destination / "engine"
    for name in ENGINE_PACKAGES:
        for path in sorted((REPO / name).glob("*.py")):
            (engine / name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, engine / name / path.name)
    for name in WEIGHT_FILES:
        (engine / "models" / "weights").mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / "models" / "weights" / name, engine / "models" / "weights" / name)
    for name in ENGINE_DOCS:
        shutil.copy2(REPO / name, engine / name)


def stage_wheels(destination: Path, platform: Platform, cache: Path) -> None:
    for python in PYTHONS:
        folder = destination / "wheels" / f"cp{python.replace('.', '')}"
        folder.mkdir(parents=True)
        for wheel in download_wheels(platform, python, cache):
            shutil.copy2(wheel, folder / wheel.name)
    (destination / "wheels" / "pip").mkdir(parents=True)
    pip = download_pip(cache)
    shutil.copy2(pip, destination / "wheels" / "pip" / pip.name)


def run_tool(*arguments: str) -> int:
    return subprocess.call([sys.executable, str(find_extension_tool()), *arguments])


def build(platform: Platform | None, output_dir: Path, cache: Path) -> Path:
    """Stage, validate and zip one package; returns the zip's path."""
    version = tomllib.loads(MANIFEST.read_text())["version"]
    suffix = platform.name.replace("-", "_") if platform is not None else "ui_only"
    target = output_dir / f"bailando_blender-{version}-{suffix}.zip"
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as built:
        staged = Path(folder)
        stage_addon(staged, platform)
        if platform is not None:
            stage_engine(staged)
            stage_wheels(staged, platform, cache)
        if run_tool("build", "--source-dir", str(staged), "--output-dir", built) != 0:
            raise SystemExit(f"error: Blender's tool refused the {suffix} package")
        (made,) = Path(built).glob("*.zip")
        output_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(made, target)
    if run_tool("validate", str(target)) != 0:
        raise SystemExit(f"error: {target}: Blender's tool does not validate it")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("validate", "build"))
    parser.add_argument("--output-dir", type=Path, default=REPO / "dist")
    parser.add_argument("--platform", nargs="+", choices=sorted(PLATFORMS), default=sorted(PLATFORMS))
    parser.add_argument("--ui-only", action="store_true", help="the add-on alone (the backend from a checkout)")
    parser.add_argument("--wheel-cache", type=Path, default=WHEEL_CACHE, help="downloaded wheels, kept between builds")
    args = parser.parse_args(argv)
    if args.action == "validate":
        with tempfile.TemporaryDirectory() as folder:
            stage_addon(Path(folder), None)
            return run_tool("validate", folder)
    platforms = [None] if args.ui_only else [PLATFORMS[name] for name in args.platform]
    for platform in platforms:
        target = build(platform, args.output_dir.resolve(), args.wheel_cache.resolve())
        print(f"{target} {target.stat().st_size / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
