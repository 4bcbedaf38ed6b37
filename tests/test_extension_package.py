"""The extension's package: Blender's validator accepts it, and the two worlds stay apart."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO

BUILD = REPO / "scripts" / "build_extension.py"


def imported_modules(folder: Path) -> dict[str, set[str]]:
    """Top-level module names each .py file under ``folder`` imports (anywhere in the file)."""
    found = {}
    for path in folder.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(REPO))] = names
    return found


def test_manifest_passes_blenders_validator() -> None:
    pytest.importorskip("bpy")
    result = subprocess.run([sys.executable, str(BUILD), "validate"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_built_zip_has_the_manifest_and_the_package_at_its_root(tmp_path: Path) -> None:
    pytest.importorskip("bpy")
    result = subprocess.run(
        [sys.executable, str(BUILD), "build", "--ui-only", "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (archive,) = tmp_path.glob("bailando_blender-*.zip")
    names = zipfile.ZipFile(archive).namelist()
    assert {"blender_manifest.toml", "__init__.py", "skeleton.py", "backend_client.py"} <= set(names)
    assert not any("__pycache__" in name for name in names)


def test_backend_and_models_never_import_bpy() -> None:
    for folder in ("backend", "models"):
        for path, names in imported_modules(REPO / folder).items():
            assert "bpy" not in names and "mathutils" not in names, path


# The bundled backend's launcher: run as a script by the backend process (never imported by
# Blender), it hands over to the backend there, inside its ``main``.
LAUNCHER = "bailando_blender/bundled_runtime.py"


def test_the_extension_never_imports_torch_or_the_backend() -> None:
    for path, names in imported_modules(REPO / "bailando_blender").items():
        allowed = {"backend"} if path == LAUNCHER else set()
        assert not names & ({"torch", "backend", "models", "librosa", "scipy"} - allowed), path


def test_the_launcher_imports_the_backend_only_in_the_backend_process() -> None:
    code = (
        "import sys; import bailando_blender.bundled_runtime, bailando_blender.backend_manager, "
        "bailando_blender.gpu_runtime; heavy = {'backend', 'numpy', 'torch'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_shared_modules_import_without_scipy_torch_or_bpy() -> None:
    code = (
        "import sys; import bailando_blender, bailando_blender.skeleton, bailando_blender.backend_client; "
        "heavy = {'scipy', 'torch', 'bpy', 'librosa'} & set(sys.modules); assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_panel_says_what_a_first_start_is_doing() -> None:
    from bailando_blender import backend_manager
    from bailando_blender.backend_client import BackendProcess

    backend = BackendProcess(["unused"], state="starting")
    backend_manager._backend = backend
    try:
        assert backend_manager.describe() == ("starting", "Backend: starting (loading the generator)")
        backend._apply({"event": "installing", "fraction": 0.4, "packages": 31})
        assert backend_manager.describe() == ("starting", "Backend: first start, installing its packages offline (40%)")
        backend._apply({"event": "ready", "protocol": 1, "device": "cpu", "trained": True})
        assert backend_manager.describe() == ("ready", "Backend: ready on cpu")
    finally:
        backend_manager._backend = None
