"""Where the generator's files live and how they are written; torch-free, so that the ONNX
runtime's install (no torch) reads the same names and errors as the training side writes.

Beside ``<name>.safetensors`` (the checkpoint, see ``models.checkpoint``) lie its ONNX graphs,
``<name>.<graph>.onnx``, made from it by ``python -m models.onnx_export``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# The graphs a generator runs, in the order the data flows through them.
ONNX_GRAPHS = ("music_encoder", "gpt_step", "ring_select", "motion_decoder")
# 2: the GPT step keeps its cache in a ring; 3: one per layer; 4: both heads' logits in one output;
# 5: a batch axis (beat search's candidates side by side) and the ring_select graph
ONNX_FORMAT = "bailando_blender.onnx/5"
# Metadata keys of every exported graph.
META_FORMAT = "format"
META_CONFIGS = "configs"  # JSON {network: {field: value}}, as in the checkpoint
META_SOURCE_SHA256 = "source_sha256"  # of the checkpoint the graph was made from
# The position a slot of the GPT's ring cache holds when it holds nothing: out of every window.
# The torch model and the gpt_step graph's callers (which may lack torch) both fill rings with it.
EMPTY_SLOT = -(2**40)
# Positions in one generation call (backend.generator: a lower token and the next step's music),
# which the ring is sized for and the gpt_step graph's input axis is bounded by.
MAX_INPUTS = 2
# Rows of the gpt_step graph's batch axis at most: beat search's candidates
# (backend.sampling.MAX_BEAT_CANDIDATES).
MAX_BATCH = 32


def check_ring_cache(cache_position: int, ring_position: int) -> None:
    """A ring cache names the position it was returned at; the ring holds one state only, so a
    cache from before the ring's last step would read (and write) a later state than its own."""
    if cache_position != ring_position:
        raise RuntimeError("a ring cache was used twice: pass the one the last step returned")


class CheckpointError(Exception):
    """A weights file (checkpoint or ONNX graph) that cannot be used; the message names the file."""


def onnx_path(weights: Path, graph: str) -> Path:
    """``dir/generator.safetensors`` -> ``dir/generator.<graph>.onnx``."""
    return weights.with_name(f"{weights.stem}.{graph}.onnx")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def current_umask() -> int:
    """The process's file-creation mask (reading it means setting it, so set it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[str]:
    """A temporary file name beside ``path``; it replaces ``path`` when the block succeeds and
    is removed when it fails, so no reader ever sees a half-written file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp makes files private
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
