"""Shared fixtures: songs the tests write themselves, so no test depends on outside files."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bailando_blender.skeleton import PARENTS, rest_positions

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_SONG = REPO / "examples" / "florist_excerpt.ogg"


def click_track(
    duration_s: float, bpm: float, sample_rate: int, channels: int = 1, offset_s: float = 0.25
) -> np.ndarray:
    """(N, channels) float32: a decaying 1 kHz click on every beat over a quiet chord, full scale < 1."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    signal = 0.05 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 277 * t) + np.sin(2 * np.pi * 330 * t))
    period = 60.0 / bpm
    since_beat = np.mod(t - offset_s, period)
    clicks = np.where(t >= offset_s, np.exp(-since_beat * 60.0) * np.sin(2 * np.pi * 1000 * t), 0.0)
    mono = (signal + 0.8 * clicks).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def write_song(
    path: Path,
    duration_s: float = 8.0,
    bpm: float = 120.0,
    sample_rate: int = 44100,
    channels: int = 2,
    **format_options: str,
) -> Path:
    soundfile.write(str(path), click_track(duration_s, bpm, sample_rate, channels), sample_rate, **format_options)
    return path


def write_synthetic_smpl_model(folder: Path) -> Path:
    """An SMPL model file of the real layout whose first 24 vertices sit on the joints.

    Each of those vertices is skinned rigidly to its joint, the other 6866 to the pelvis,
    and the joint regressor picks the first 24: posed vertices 0-23 are then the posed joints.
    """
    num_vertices = 6890  # SMPL's mesh size; smplx's extra landmarks index into it
    template = np.tile(rest_positions()[0], (num_vertices, 1))
    template[:24] = rest_positions()
    weights = np.zeros((num_vertices, 24))
    weights[np.arange(num_vertices), np.minimum(np.arange(num_vertices), 24) % 24] = 1.0
    regressor = np.zeros((24, num_vertices))
    regressor[:, :24] = np.eye(24)
    model = {
        "v_template": template,
        "shapedirs": np.zeros((num_vertices, 3, 10)),
        "posedirs": np.zeros((num_vertices, 3, 207)),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": np.array([[4294967295, *PARENTS[1:]], list(range(24))], dtype=np.int64),
        "f": np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64),
    }
    with open(folder / "SMPL_NEUTRAL.pkl", "wb") as stream:
        pickle.dump(model, stream)
    return folder / "SMPL_NEUTRAL.pkl"


@pytest.fixture(scope="session")
def song_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("songs")


@pytest.fixture(scope="session")
def click_song(song_dir: Path) -> Path:
    """8 s, 120 BPM, stereo 44.1 kHz wav with the first beat at 0.25 s."""
    return write_song(song_dir / "clicks_120.wav")


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


@pytest.fixture(scope="module")
def registered_extension() -> None:
    """The extension registered in the bpy module for a test module (its tests import bpy first)."""
    import bailando_blender

    bailando_blender.register()
    yield
    bailando_blender.unregister()


@pytest.fixture(scope="module")
def extension_with_backend(registered_extension: None) -> None:
    """``registered_extension`` generating with a real backend process, as in Blender: its Python
    is $BAILANDO_BACKEND_PYTHON (this interpreter unless named, so the same tests run under
    another bpy whose environment has no torch); stopped after the module."""
    from bailando_blender import backend_manager

    os.environ.setdefault(backend_manager.BACKEND_PYTHON_ENV, sys.executable)
    yield
    backend_manager.shutdown()


def empty_scene(fps: int):  # -> bpy.types.Scene
    """A fresh empty scene at ``fps`` frames per second."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, 1.0
    return scene


# Blender 4.5's bpy module never exits once Rigify has generated a rig (its delayed-close
# thread and that thread's destructor wait on each other at exit; 5.0 does not). After the
# summary is printed, such a session leaves at once with pytest's own exit status.
HANGING_BPY_BEFORE = (5, 0, 0)
_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    bpy = sys.modules.get("bpy")
    if bpy is not None and tuple(bpy.app.version) < HANGING_BPY_BEFORE and _exit_status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[0])
