"""Talking to the backend process from Blender (or any Python): start, submit, poll, stop.

Standard library only: the extension never imports torch. The backend speaks one JSON
object per line over its stdin/stdout (see ``backend/service.py`` for the protocol); a
reader thread turns its stdout into a queue the UI polls from a timer, so nothing here
blocks Blender's UI thread.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

STDERR_LINES_KEPT = 20  # the backend's last stderr lines, shown when it dies
STDERR_DRAIN_S = 2.0  # how long an exit report waits for the backend's last stderr lines
READY_TIMEOUT_S = 120.0  # a cold start may compile librosa's numba functions; counted from the last event
# A job whose backend sends nothing for this long is given up and the backend stopped (the next
# Generate starts a new one): a working backend reports each stage and the tokens' progress ten
# times a second; its longest quiet stretches (a 10-minute song's decoding and features, a first
# job's wait for librosa's warm-up) take seconds.
JOB_SILENCE_TIMEOUT_S = 120.0


class BackendError(Exception):
    """The backend could not start, died, or broke the protocol."""


@dataclass
class JobState:
    job: str
    fraction: float = 0.0
    stage: str = "queued"
    done: bool = False
    result: dict[str, Any] | None = None
    error: str | None = None
    cancelled: bool = False


@dataclass
class BackendProcess:
    """One backend process. ``command`` runs it, e.g. ``[python, "-m", "backend", "serve"]``."""

    command: Sequence[str]
    cwd: str | None = None
    env: dict[str, str] | None = None
    state: str = "stopped"  # stopped, starting, ready, failed
    failure: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, JobState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES_KEPT)
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._last_heard = time.monotonic()

    # --- life cycle --------------------------------------------------------------

    def start(self) -> None:
        if self.alive():
            return
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            self._process = subprocess.Popen(
                list(self.command),
                cwd=self.cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        except OSError as error:
            self._fail(f"cannot start the backend ({self.command[0]}): {error.strerror or error}")
            raise BackendError(self.failure) from None
        self.state, self.failure, self.info = "starting", None, {}
        self._last_heard = time.monotonic()
        self._stderr.clear()
        stderr_reader = threading.Thread(target=self._read_stderr, args=(self._process,), daemon=True)
        stderr_reader.start()
        threading.Thread(target=self._read_stdout, args=(self._process, stderr_reader), daemon=True).start()

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Block until the backend says it is ready (for batch use, not the UI thread)."""
        deadline = time.monotonic() + timeout
        while self.state == "starting":
            if self.poll(timeout=min(0.1, max(0.0, deadline - time.monotonic()))):
                deadline = time.monotonic() + timeout  # a first start reports its installing: still alive
            if time.monotonic() > deadline:
                self.stop()
                self._fail(f"the backend did not start within {timeout:.0f} s")
        if self.state != "ready":
            raise BackendError(self.failure or "the backend is not running")

    def stop(self, timeout: float = 5.0) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            try:
                self._send({"op": "shutdown"})
                process.stdin.close()  # type: ignore[union-attr]
            except (OSError, ValueError):
                pass
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None
        self.state = "stopped"

    # --- jobs --------------------------------------------------------------------

    def submit(self, audio: str, out: str, **options: Any) -> str:
        """Queue a dance; options: seed, temperature, top_k, fps, start_s, end_s. Returns the job id."""
        job = f"job-{next(self._ids)}"
        self.jobs[job] = JobState(job)
        self._send({"op": "submit", "job": job, "audio": audio, "out": out, **options})
        self._last_heard = time.monotonic()
        return job

    def cancel(self, job: str) -> None:
        self._send({"op": "cancel", "job": job})

    def busy(self) -> bool:
        return any(not state.done for state in self.jobs.values())

    def poll(self, timeout: float = 0.0) -> list[dict[str, Any]]:
        """Apply and return the events that arrived (waiting up to ``timeout`` for the first)."""
        events = []
        try:
            events.append(self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait())
            while True:
                events.append(self._events.get_nowait())
        except queue.Empty:
            pass
        if events:
            self._last_heard = time.monotonic()
        for event in events:
            self._apply(event)
        return events

    def check_heard(self, job: str | None = None) -> None:
        """BackendError if the backend has been quiet too long: starting, for READY_TIMEOUT_S;
        running ``job``, for JOB_SILENCE_TIMEOUT_S. Then the backend is stopped (a hung one is
        killed after a second) and its jobs fail with that reason."""
        if job is not None and not self.jobs[job].done:
            timeout = JOB_SILENCE_TIMEOUT_S
        elif job is None and self.state == "starting":
            timeout = READY_TIMEOUT_S
        else:
            return
        if time.monotonic() - self._last_heard <= timeout:
            return
        self.stop(timeout=1.0)
        self._fail(f"the backend stopped answering (nothing for {timeout:.0f} s); the next Generate starts it again")
        for state in self.jobs.values():
            if not state.done:
                state.done, state.error = True, self.failure
        raise BackendError(self.failure)

    def wait_job(
        self, job: str, timeout: float | None = None, progress: Callable[[float, str], None] | None = None
    ) -> JobState:
        """Block until ``job`` ends (for batch use and tests), telling ``progress`` (fraction, stage)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        state = self.jobs[job]
        while not state.done:
            if deadline is not None and time.monotonic() > deadline:
                raise BackendError(f"{job} did not finish within {timeout:.0f} s")
            self.poll(timeout=0.1)
            self.check_heard(job)
            if self.state == "failed" and not state.done:
                state.done, state.error = True, self.failure
            if progress is not None:
                progress(state.fraction, state.stage)
        return state

    # --- internals ---------------------------------------------------------------

    def _send(self, request: dict[str, Any]) -> None:
        if not self.alive():
            raise BackendError(self.failure or "the backend is not running")
        with self._write_lock:
            try:
                self._process.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
                self._process.stdin.flush()  # type: ignore[union-attr]
            except (BrokenPipeError, OSError, ValueError):
                raise BackendError("the backend closed its input (it may have crashed)") from None

    def _fail(self, reason: str) -> None:
        self.state, self.failure = "failed", reason

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        job = self.jobs.get(str(event.get("job")))
        if kind == "ready":
            self.state, self.info = "ready", event
        elif kind == "installing":  # the bundled runtime's first start (bundled_runtime.py)
            self.info = {"installing": float(event["fraction"])}
        elif kind == "exited":
            if self.state not in ("stopped", "failed"):  # a reason given already stays
                last = next((line for line in reversed(self._stderr) if line.strip()), "")
                self._fail(f"the backend exited (code {event['code']}){': ' + last if last else ''}")
            for state in self.jobs.values():
                if not state.done:
                    state.done, state.error = True, self.failure
        elif job is not None:
            if kind == "progress":
                job.fraction, job.stage = float(event["fraction"]), str(event["stage"])
            elif kind == "result":
                job.done, job.result, job.fraction, job.stage = True, event, 1.0, "done"
            elif kind == "failed":
                job.done, job.error = True, str(event.get("error"))
            elif kind == "cancelled":
                job.done, job.cancelled = True, True

    def _read_stdout(self, process: subprocess.Popen[str], stderr_reader: threading.Thread) -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            try:
                self._events.put(json.loads(line))
            except json.JSONDecodeError:
                self._stderr.append(line.rstrip())
        code = process.wait()
        stderr_reader.join(STDERR_DRAIN_S)  # the dying words come on stderr: read them before reporting
        self._events.put({"event": "exited", "code": code})

    def _read_stderr(self, process: subprocess.Popen[str]) -> None:
        for line in process.stderr:  # type: ignore[union-attr]
            self._stderr.append(line.rstrip())
