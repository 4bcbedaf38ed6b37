"""Whether an output can be written where the user asked, checked before any work (pure Python)."""

from __future__ import annotations

import os
from pathlib import Path


def folder_problem(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (made first if missing), in words, or None: the
    nearest part of it that exists must be a folder this process may write in."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"the folder {existing} cannot be written to"
    return None


def file_problem(path: Path) -> str | None:
    """Why the file ``path`` cannot be written, in words, or None."""
    if path.is_dir():
        return "is a folder, not a file name"
    return folder_problem(path.parent)
