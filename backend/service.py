"""The backend process: loads the generator once and serves jobs over its stdin/stdout.

One JSON object per line each way. Only the parent that started the process holds the
pipes, so no other program can reach it (nothing listens on a port).

Requests (stdin):
  {"op": "submit", "job": ID, "audio": PATH, "out": PATH.npz,
   "seed": 0, "temperature": 1.0, "top_k": 0, "beat_candidates": 8, "fps": 30, "start_s": 0.0, "end_s": null,
   "stage_radius_m": 3.0}
  (start_s/end_s: dance to that span of the file only, seconds; frame 0 is start_s;
   optional "smpl_model_folder": DIR adds the user's SMPL body mesh to the NPZ)
  {"op": "cancel", "job": ID}
  {"op": "status"}
  {"op": "shutdown"}
Events (stdout):
  {"event": "ready", "protocol": 1, "runtime": "onnx", "device": "cpu", "trained": true, "weights": "..."}
  {"event": "accepted", "job": ID}
  {"event": "progress", "job": ID, "fraction": 0.42, "stage": "tokens"}
  {"event": "result", "job": ID, "out": PATH, "frames": T, "fps": 30.0, "tempo_bpm": 120.0,
   "beats": B, "duration_s": 12.3, "trained": false}  (and "warning": "one line" for a cut-off file)
  {"event": "failed", "job": ID, "error": "one line for the user"}
  {"event": "cancelled", "job": ID}
  {"event": "status", "busy": ID or null, "queued": [ID, ...]}
  {"event": "error", "error": "..."}  (a request that could not be read)
  {"event": "bye"}
Closing stdin is a shutdown: the running job is cancelled.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .dance_io import check_output_path, save_dance
from .errors import CancelledError, UserInputError
from .generator import DanceGenerator
from .music_features import warm_up
from .pipeline import STAGE_RADIUS_M, generate
from .sampling import DEFAULT_BEAT_CANDIDATES, SamplingConfig
from .smpl_body import SmplBody, load_smpl_body

PROTOCOL_VERSION = 1
PROGRESS_INTERVAL_S = 0.1  # at most ten progress events a second per job

log = logging.getLogger(__name__)


class Service:
    def __init__(self, generator: DanceGenerator, events: IO[str], prepare: Callable[[], None] | None = None) -> None:
        """prepare: run by the worker before its first job (librosa's warm-up), so that the
        service is ready for requests while it runs; jobs submitted meanwhile wait in the queue."""
        self.generator = generator
        self.events = events
        self.prepare = prepare
        self.write_lock = threading.Lock()
        self.jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.queued: list[str] = []
        self.cancelled: set[str] = set()
        self.current: str | None = None
        self.state_lock = threading.Lock()
        self.bodies: dict[str, SmplBody] = {}  # SMPL model folder -> its body, read once

    def send(self, **event: Any) -> None:
        with self.write_lock:
            self.events.write(json.dumps(event) + "\n")
            self.events.flush()

    # --- worker thread -----------------------------------------------------------

    def work(self) -> None:
        if self.prepare is not None:
            self.prepare()
        while True:
            request = self.jobs.get()
            if request is None:
                return
            job = request["job"]
            with self.state_lock:
                self.queued.remove(job)
                if job in self.cancelled:
                    self.cancelled.discard(job)
                    self.send(event="cancelled", job=job)
                    continue
                self.current = job
            try:
                self.run_job(request)
            finally:
                with self.state_lock:
                    self.current = None
                    self.cancelled.discard(job)

    def run_job(self, request: dict[str, Any]) -> None:
        job = request["job"]
        last_sent = 0.0

        def progress(fraction: float, stage: str) -> None:
            nonlocal last_sent
            now = time.monotonic()
            if now - last_sent >= PROGRESS_INTERVAL_S or fraction >= 1.0:
                last_sent = now
                self.send(event="progress", job=job, fraction=round(fraction, 4), stage=stage)

        try:
            sampling = SamplingConfig(
                seed=int(request.get("seed", 0)),
                temperature=float(request.get("temperature", 1.0)),
                top_k=int(request.get("top_k", 0)),
                beat_candidates=int(request.get("beat_candidates", DEFAULT_BEAT_CANDIDATES)),
            )
            check_output_path(request["out"])  # an output that cannot be written fails before the work
            folder = request.get("smpl_model_folder")
            extra = self.body(str(folder)).arrays() if folder else None  # a bad folder fails before the dance
            dance = generate(
                request["audio"],
                self.generator,
                sampling,
                fps=float(request.get("fps", 30.0)),
                progress=progress,
                cancelled=lambda: job in self.cancelled,
                start_s=float(request.get("start_s") or 0.0),
                end_s=None if request.get("end_s") is None else float(request["end_s"]),
                stage_radius_m=float(request.get("stage_radius_m", STAGE_RADIUS_M)),
            )
            out = save_dance(dance, request["out"], extra)
        except CancelledError:
            self.send(event="cancelled", job=job)
            return
        except UserInputError as error:
            self.send(event="failed", job=job, error=str(error))
            return
        except (KeyError, TypeError, ValueError) as error:
            self.send(event="failed", job=job, error=f"bad job request: {error}")
            return
        except Exception as error:
            log.exception("job %s failed", job)
            self.send(event="failed", job=job, error=f"internal error: {type(error).__name__}: {error}")
            return
        self.send(
            event="result",
            job=job,
            out=str(out),
            frames=dance.num_frames,
            fps=dance.fps,
            tempo_bpm=dance.tempo_bpm,
            beats=len(dance.beat_times),
            duration_s=dance.duration_s,
            trained=dance.trained,
            **({"warning": dance.warning} if dance.warning is not None else {}),
        )

    def body(self, folder: str) -> SmplBody:
        if folder not in self.bodies:
            self.bodies[folder] = load_smpl_body(folder)
        return self.bodies[folder]

    # --- reader (main thread) ----------------------------------------------------

    def handle(self, line: str) -> bool:
        """Handle one request line; False when the service should stop."""
        try:
            request = json.loads(line)
            op = request["op"]
        except (json.JSONDecodeError, KeyError, TypeError):
            self.send(event="error", error=f"unreadable request: {line.strip()[:200]}")
            return True
        if op == "submit":
            job = str(request.get("job", ""))
            missing = [key for key in ("job", "audio", "out") if not request.get(key)]
            if missing:
                self.send(event="error", error=f"submit needs {', '.join(missing)}")
                return True
            with self.state_lock:
                if job == self.current or job in self.queued:
                    self.send(event="error", error=f"job {job} already exists")
                    return True
                self.queued.append(job)
            request["job"] = job
            self.send(event="accepted", job=job)
            self.jobs.put(request)
        elif op == "cancel":
            with self.state_lock:
                job = str(request.get("job"))
                if job == self.current or job in self.queued:
                    self.cancelled.add(job)
        elif op == "status":
            with self.state_lock:
                self.send(event="status", busy=self.current, queued=list(self.queued))
        elif op == "shutdown":
            return False
        else:
            self.send(event="error", error=f"unknown op: {op}")
        return True

    def serve(self, requests: IO[str]) -> None:
        worker = threading.Thread(target=self.work, name="dance-worker", daemon=True)
        worker.start()
        for line in requests:
            if line.strip() and not self.handle(line):
                break
        with self.state_lock:
            self.cancelled.update(self.queued)
            if self.current is not None:
                self.cancelled.add(self.current)
        self.jobs.put(None)
        worker.join()
        self.send(event="bye")


def protocol_stream() -> IO[str]:
    """Take stdout for the protocol alone: anything else printed goes to stderr."""
    stream = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return stream


def run_service(weights: str | Path | None, device: str, runtime: str = "auto") -> int:
    events = protocol_stream()
    generator = DanceGenerator.load(weights, device, runtime)

    # The warm-up compiles one of librosa's functions on every start (librosa does not cache
    # it): ~2.5 s of the ~4.5 s it takes; then one short dance readies the networks (on a GPU
    # with torch: cuBLAS set-up and the CUDA graphs). It runs on the worker, after "ready".
    def prepare() -> None:
        warm_up()
        generator.warm_up()

    service = Service(generator, events, prepare=prepare)
    service.send(
        event="ready",
        protocol=PROTOCOL_VERSION,
        runtime=generator.runtime,
        device=generator.device,
        trained=generator.trained,
        weights=generator.source,
    )
    service.serve(sys.stdin)
    return 0
