"""Validate and build the Blender extension zip with Blender's own extension tool.

    python scripts/build_extension.py validate
    python scripts/build_extension.py build --output-dir dist

The repository keeps ``blender_manifest.toml`` at its top and the add-on's code in
``bailando_blender/``; an extension zip has both at its root, so both are staged into a
temporary folder first. Blender's tool (``blender_ext.py``) ships inside the ``bpy`` module
and inside every Blender, and runs without a Blender executable.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "bailando_blender"
MANIFEST = REPO / "blender_manifest.toml"
TOOL_GLOB = "*/scripts/addons_core/bl_pkg/cli/blender_ext.py"


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


def stage(destination: Path) -> Path:
    """Copy the manifest and the add-on's files into ``destination`` (the zip's root)."""
    shutil.copy2(MANIFEST, destination / MANIFEST.name)
    for source in PACKAGE.rglob("*"):
        relative = source.relative_to(PACKAGE)
        if "__pycache__" in relative.parts or source.suffix == ".pyc":
            continue
        target = destination / relative
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def run_tool(*arguments: str) -> int:
    return subprocess.call([sys.executable, str(find_extension_tool()), *arguments])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("validate", "build"))
    parser.add_argument("--output-dir", type=Path, default=REPO / "dist")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        staged = stage(Path(folder))
        if args.action == "validate":
            return run_tool("validate", str(staged))
        args.output_dir.mkdir(parents=True, exist_ok=True)
        return run_tool("build", "--source-dir", str(staged), "--output-dir", str(args.output_dir.resolve()))


if __name__ == "__main__":
    sys.exit(main())
