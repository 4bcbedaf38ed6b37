"""Faults around the extension's Generate (the bpy module, as in Blender): a backend that hangs
before or after it is ready, one that dies mid-job, a second Generate while one runs, and
Blender quitting mid-job. Each ends as stated: one line, the scene and the previous action as
they were, the backend stopped, and a working backend on the next Generate.

A fake backend (``FAKE_BACKEND``) stands in where the fault is the backend's; its mode comes in
the environment the extension passes on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

bpy = pytest.importorskip("bpy")

from bailando_blender import backend_client, backend_manager  # noqa: E402
from bailando_blender.backend_client import BackendProcess  # noqa: E402
from bailando_blender.operators import BAILANDO_OT_generate_dance as Generate  # noqa: E402

from .conftest import REPO, write_song  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("extension_with_backend")]
MODE_ENV = "FAKE_BACKEND_MODE"
FAKE_BACKEND = """
import json, os, sys, time
mode = os.environ["FAKE_BACKEND_MODE"]
def send(**event):
    print(json.dumps(event), flush=True)
if mode == "never_ready":
    time.sleep(600)
send(event="ready", protocol=1, runtime="onnx", device="cpu", trained=True, weights="fake")
for line in sys.stdin:
    request = json.loads(line)
    if request.get("op") == "submit":
        send(event="accepted", job=request["job"])
        send(event="progress", job=request["job"], fraction=0.3, stage="tokens")
        if mode == "dies_mid_job":
            print("Killed", file=sys.stderr, flush=True)
            os._exit(1)
        time.sleep(600)  # hangs: answers nothing more
"""
QUICK_TIMEOUT_S = 1.5  # the silence a test waits for, in place of the product's two minutes
# The real backend's Python: this one, unless the environment names another (Blender 5.3's run
# names the main environment's, which has the backend's packages).
REAL_BACKEND = os.environ.get(backend_manager.BACKEND_PYTHON_ENV, sys.executable)


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_song(tmp_path_factory.mktemp("faults") / "clicks.wav", duration_s=3.0, bpm=120.0)


@pytest.fixture
def fake_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Sets the extension's backend to the fake in a mode; gives the real one back afterwards."""
    script = tmp_path / "fake_backend.py"
    script.write_text(FAKE_BACKEND)
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")
    python.chmod(0o755)

    def use(mode: str) -> None:
        monkeypatch.setenv(MODE_ENV, mode)
        monkeypatch.setenv(backend_manager.BACKEND_PYTHON_ENV, str(python))

    yield use
    os.environ[backend_manager.BACKEND_PYTHON_ENV] = REAL_BACKEND
    backend_manager.shutdown()


def danced_scene(song: Path) -> tuple[bpy.types.Object, bpy.types.Action]:
    """An empty scene with the song as a strip and a first dance keyed by the real backend."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = 30
    scene.sequence_editor_create()
    strip = scene.sequence_editor.strips.new_sound("song", str(song), 1, 1)
    scene.frame_start, scene.frame_end = 1, strip.frame_final_end - 1
    assert bpy.ops.bailando.generate_dance() == {"FINISHED"}
    (rig,) = [obj for obj in bpy.data.objects if obj.type == "ARMATURE"]
    bpy.context.view_layer.objects.active = rig
    scene.bailando.target = "SELECTED"
    return rig, rig.animation_data.action


def snapshot() -> tuple:
    scene = bpy.context.scene
    return (
        sorted(bpy.data.objects.keys()),
        sorted(bpy.data.actions.keys()),
        len(scene.timeline_markers),
        [strip.name for strip in scene.sequence_editor.strips],
        scene.frame_start,
        scene.frame_end,
    )


def key_count(rig: bpy.types.Object) -> int:
    animation = rig.animation_data
    channels = animation.action.layers[0].strips[0].channelbag(animation.action_slot)
    return sum(len(curve.keyframe_points) for curve in channels.fcurves)


def test_a_backend_that_stops_answering_mid_job_is_given_up(song: Path, fake_backend, monkeypatch) -> None:
    rig, first = danced_scene(song)
    keys = key_count(rig)
    before = snapshot()
    fake_backend("silent")
    monkeypatch.setattr(backend_client, "JOB_SILENCE_TIMEOUT_S", QUICK_TIMEOUT_S)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"stopped answering \(nothing for 2 s\); the next Generate starts it again"):
        bpy.ops.bailando.generate_dance()
    assert time.monotonic() - started < 30
    assert snapshot() == before and rig.animation_data.action == first
    assert key_count(rig) == keys
    assert backend_manager.current() is not None and not backend_manager.current().alive()  # the fake was stopped
    monkeypatch.undo()
    os.environ[backend_manager.BACKEND_PYTHON_ENV] = REAL_BACKEND
    assert bpy.ops.bailando.generate_dance() == {"FINISHED"}  # a new backend, started on this Generate
    assert rig.animation_data.action != first and first.name in bpy.data.actions


def test_a_backend_that_dies_mid_job_changes_nothing_and_the_next_generate_works(song: Path, fake_backend) -> None:
    rig, first = danced_scene(song)
    before = snapshot()
    fake_backend("dies_mid_job")
    with pytest.raises(RuntimeError, match=r"the backend exited \(code 1\): Killed"):
        bpy.ops.bailando.generate_dance()
    assert snapshot() == before and rig.animation_data.action == first
    os.environ[backend_manager.BACKEND_PYTHON_ENV] = REAL_BACKEND
    os.environ.pop(MODE_ENV)
    assert bpy.ops.bailando.generate_dance() == {"FINISHED"}
    assert rig.animation_data.action != first


def test_a_backend_that_never_gets_ready_is_given_up_while_the_ui_runs(fake_backend, monkeypatch) -> None:
    """The modal operator's ticks while the backend starts: each returns at once (the UI is
    Blender's between them); past the ready timeout one says the backend stopped answering."""
    fake_backend("never_ready")
    monkeypatch.setattr(backend_client, "READY_TIMEOUT_S", QUICK_TIMEOUT_S)
    command = backend_manager.backend_command(backend_manager.default_backend_python())
    backend = BackendProcess(command, env=backend_manager.backend_environment())
    backend.start()
    fake = SimpleNamespace(backend=backend, job=None, keying=None, plan=None)
    fake.step = lambda context, state: Generate.step(fake, context, state)
    fake.stop = lambda context, message, failed, cancelled=False, warning=False: (message, failed)
    timer = SimpleNamespace(type="TIMER", value="NOTHING")
    started = time.monotonic()
    slowest, outcome = 0.0, {"PASS_THROUGH"}
    while outcome == {"PASS_THROUGH"} and time.monotonic() - started < 30:
        tick = time.monotonic()
        outcome = Generate.modal(fake, bpy.context, timer)
        slowest = max(slowest, time.monotonic() - tick)
        time.sleep(0.05)
    message, failed = outcome
    assert failed and "the backend stopped answering (nothing for 2 s)" in message
    assert slowest < 1.2  # one tick never waits for the backend (the stop's kill takes up to 1 s)
    assert not backend.alive()


def test_a_second_generate_while_one_runs_is_greyed_out() -> None:
    bpy.ops.wm.read_homefile(use_empty=True)
    state = bpy.context.window_manager.bailando_job
    state.running = True
    try:
        assert not bpy.ops.bailando.generate_dance.poll()
    finally:
        state.running = False


QUIT_MID_JOB = """
import json, os, sys, time
from bailando_blender import backend_manager
backend = backend_manager.ensure_started(backend_manager.backend_command(backend_manager.default_backend_python()))
backend.wait_ready()
job = backend.submit(sys.argv[1], sys.argv[2], beat_candidates=8)
while backend.jobs[job].fraction <= 0.0:
    backend.poll(timeout=0.1)
print(backend._process.pid, flush=True)
if sys.argv[3] == "hard":
    os._exit(0)  # killed: no Python clean-up at all
sys.exit(0)  # a normal quit, the extension not unregistered first
"""


@pytest.mark.parametrize("how", ["hard", "normal"])
def test_quitting_blender_mid_job_stops_the_backend_and_leaves_no_file(tmp_path: Path, how: str) -> None:
    song = write_song(tmp_path / "long.wav", duration_s=120.0, sample_rate=22050, channels=1)
    out = tmp_path / "dances" / "dance.npz"
    out.parent.mkdir()
    env = {**os.environ, backend_manager.BACKEND_PYTHON_ENV: os.environ[backend_manager.BACKEND_PYTHON_ENV]}
    result = subprocess.run(
        [sys.executable, "-c", QUIT_MID_JOB, str(song), str(out), how],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.split()[-1])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert list(out.parent.iterdir()) == []


def backend_pids() -> set[int]:
    """The processes running ``python -m backend serve``, by their command lines."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and b"backend" in command and b"serve" in command:
            pids.add(int(entry.name))
    return pids


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_the_batch_stopped_mid_dance_says_so_and_leaves_nothing(song: Path, tmp_path: Path, signal_name: str) -> None:
    """A batch run signalled while it dances: one line, 130 or 143, no .blend (nor a partial
    one), and its backend gone with it."""
    import signal

    out = tmp_path / "out"
    before = backend_pids()
    process = subprocess.Popen(
        [sys.executable, "-m", "bailando_blender.batch", str(song), "--out", str(out / "dance.blend"), "--quiet"],
        cwd=REPO,
        env={**os.environ, backend_manager.BACKEND_PYTHON_ENV: REAL_BACKEND},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # SIGINT's default action, as a terminal's Ctrl-C meets it (a suite run in the background
        # starts with SIGINT ignored, and its children with it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not backend_pids() - before and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)  # signalled once its backend runs: mid-dance
    time.sleep(1.0)
    process.send_signal(getattr(signal, signal_name))
    _, stderr = process.communicate(timeout=120)
    word, code = {"SIGINT": ("interrupted", 130), "SIGTERM": ("terminated", 143)}[signal_name]
    assert process.returncode == code, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == [word]
    assert not out.exists() or list(out.iterdir()) == []
    deadline = time.monotonic() + 30
    while backend_pids() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not backend_pids() - before
