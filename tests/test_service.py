"""The backend process through the client the extension uses: jobs, progress, cancel, crash."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bailando_blender.backend_client import BackendError, BackendProcess

from .conftest import REPO, write_song


def start_backend(python: str) -> BackendProcess:
    backend = BackendProcess([python, "-m", "backend", "serve", "--device", "cpu"], cwd=str(REPO))
    backend.start()
    backend.wait_ready()
    return backend


@pytest.fixture(scope="module")
def backend(python: str) -> Iterator[BackendProcess]:
    process = start_backend(python)
    yield process
    process.stop()


def test_ready_event_describes_the_backend(backend: BackendProcess) -> None:
    assert backend.state == "ready"
    assert backend.info["protocol"] == 1 and backend.info["device"] == "cpu"
    assert backend.info["trained"] in (True, False)


def test_a_job_reports_progress_and_its_result(backend: BackendProcess, click_song: Path, tmp_path: Path) -> None:
    out = tmp_path / "dance.npz"
    job = backend.submit(str(click_song), str(out), seed=2, fps=24)
    stages, fractions = set(), []
    while not backend.jobs[job].done:
        for event in backend.poll(timeout=0.1):
            if event.get("event") == "progress":
                stages.add(event["stage"])
                fractions.append(event["fraction"])
    state = backend.jobs[job]
    assert state.error is None and state.result is not None, state.error
    assert state.result["frames"] == 8 * 24 and state.result["fps"] == 24.0
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and "tokens" in stages
    with np.load(out) as data:
        assert data["joint_rotations"].shape == (8 * 24, 24, 4)


def test_an_output_that_is_a_folder_fails_the_job_before_any_work(
    backend: BackendProcess, click_song: Path, tmp_path: Path
) -> None:
    (tmp_path / "dance.npz").mkdir()
    job = backend.submit(str(click_song), str(tmp_path / "dance.npz"))
    stages = []
    while not backend.jobs[job].done:
        stages += [event["stage"] for event in backend.poll(timeout=0.1) if event.get("event") == "progress"]
    state = backend.jobs[job]
    assert state.error is not None and "dance.npz: is a folder" in state.error and "\n" not in state.error
    assert stages == []  # refused before decoding the song


def test_bad_audio_fails_the_job_not_the_backend(backend: BackendProcess, tmp_path: Path) -> None:
    bad = tmp_path / "notes.ogg"
    bad.write_text("not a song")
    state = backend.wait_job(backend.submit(str(bad), str(tmp_path / "x.npz")), timeout=60)
    assert state.error is not None and "notes.ogg: is a text file, not audio" in state.error and "\n" not in state.error
    assert not (tmp_path / "x.npz").exists()
    assert backend.alive() and backend.state == "ready"


def test_cancel_stops_a_running_job(backend: BackendProcess, tmp_path: Path) -> None:
    song = write_song(tmp_path / "long.wav", duration_s=120.0, sample_rate=22050, channels=1)
    out = tmp_path / "long.npz"
    job = backend.submit(str(song), str(out))
    queued = backend.submit(str(song), str(tmp_path / "queued.npz"))
    deadline = time.monotonic() + 120
    while backend.jobs[job].stage != "tokens" and time.monotonic() < deadline:
        backend.poll(timeout=0.1)
    backend.cancel(queued)
    backend.cancel(job)
    assert backend.wait_job(job, timeout=60).cancelled
    assert backend.wait_job(queued, timeout=60).cancelled
    assert not out.exists() and not (tmp_path / "queued.npz").exists()
    # The backend goes on serving.
    short = write_song(tmp_path / "short.wav", duration_s=2.0)
    assert backend.wait_job(backend.submit(str(short), str(tmp_path / "short.npz")), timeout=60).result


def test_a_dead_backend_is_reported(python: str, click_song: Path, tmp_path: Path) -> None:
    backend = start_backend(python)
    job = backend.submit(str(click_song), str(tmp_path / "x.npz"))
    os.kill(backend._process.pid, signal.SIGKILL)  # type: ignore[union-attr]
    state = backend.wait_job(job, timeout=30)
    assert state.error is not None and "exited" in state.error
    assert backend.state == "failed" and "exited" in (backend.failure or "")
    with pytest.raises(BackendError):
        backend.submit(str(click_song), str(tmp_path / "y.npz"))
    # Starting again works: the add-on restarts a crashed backend.
    backend.start()
    backend.wait_ready()
    assert backend.state == "ready"
    backend.stop()
    assert backend.state == "stopped" and not backend.alive()


def test_shutdown_says_goodbye(python: str) -> None:
    backend = start_backend(python)
    backend._send({"op": "status"})
    events = backend.poll(timeout=5)
    assert {"event": "status", "busy": None, "queued": []} in events
    backend._send({"op": "shutdown"})
    assert any(event.get("event") == "bye" for event in backend.poll(timeout=10) + backend.poll(timeout=2))
    backend.stop()


def test_a_backend_that_cannot_start_says_why(tmp_path: Path) -> None:
    missing = BackendProcess([str(tmp_path / "no-python"), "-m", "backend", "serve"])
    with pytest.raises(BackendError, match="cannot start the backend"):
        missing.start()
    assert missing.state == "failed"
