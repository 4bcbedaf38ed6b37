"""Generation speed and memory: a song of 30 s, 3 min and 10 min through the whole pipeline.

    .venv/bin/python benchmarks/generation.py [--seconds 30 180 600] [--runtime auto|onnx|torch]
        [--device auto|cpu|cuda] [--song examples/florist_excerpt.ogg] [--repeats 1]
        [--beat-candidates 1 8]

The song is the bundled example repeated to each length and written as Ogg Vorbis, so decoding
is measured too. Each run is a fresh process with the generator already loaded (a warm
backend), so that its peak RSS is its own; each length runs with each ``--beat-candidates`` in
turn (plain sampling and the default beat search). Prints one table row per run: decode, features,
tokens, decode to rotations (VQ-VAE decoder, rotations, foot planting, stage, floor), total,
real-time factor (total / song length), peak RSS (after loading the generator, after the
features, at the end), and the GPU memory: the most torch allocated (torch runtime), or the
rise of the GPU's memory in use over the run (ONNX Runtime's CUDA provider). With ``--repeats N`` each
length runs N times (a row each) and the medians of the totals follow.
Then the backend's cold start: ``python -m backend serve`` spawned to its ``ready`` line, and to
the result of a first 10-s song submitted at once (librosa warms up after ``ready``).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backend.sampling import DEFAULT_BEAT_CANDIDATES  # noqa: E402  (numpy only; after the path)

SOURCE_RATE = 44_100  # Hz of the written test songs (a common rate for music files)
COLD_START_RUNS = 3
FIRST_SONG_S = 10.0  # the song of the first job after a cold start
WRITE_BLOCK = 1 << 16  # samples per write of the test song


def write_song(source: Path, seconds: float, out: Path) -> None:
    import soundfile

    from backend.audio import load_song

    samples = load_song(source, SOURCE_RATE).samples
    repeats = int(np.ceil(seconds * SOURCE_RATE / len(samples)))
    song = np.tile(samples, repeats)[: int(seconds * SOURCE_RATE)]
    # In blocks: libsndfile's Vorbis encoder crashes on minutes of audio in one write.
    with soundfile.SoundFile(out, "w", SOURCE_RATE, 1, format="OGG") as stream:
        for start in range(0, len(song), WRITE_BLOCK):
            stream.write(song[start : start + WRITE_BLOCK])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports kB


class _NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


def gpu_memory_in_use_mb() -> float:
    """MB in use on GPU 0, by every process, as the driver's NVML reports it (nan without a driver).
    ONNX Runtime has no allocation counter of its own; on a GPU nothing else runs on, the rise of
    this over one run is what the run holds (its CUDA context included), and ONNX Runtime's memory
    arena keeps what it took, so the end's value is the peak's."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return float("nan")
    handle = ctypes.c_void_p()
    memory = _NvmlMemory()
    if nvml.nvmlInit_v2() != 0:
        return float("nan")
    try:
        if nvml.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(handle)) != 0:
            return float("nan")
        if nvml.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) != 0:
            return float("nan")
    finally:
        nvml.nvmlShutdown()
    return memory.used / 2**20


def run_one(song: Path, runtime: str, device: str, beat_candidates: int) -> dict[str, float | str]:
    """One song, in this process: the stages' seconds and the memory."""
    from backend.audio import load_song
    from backend.generator import DanceGenerator
    from backend.music_features import SAMPLE_RATE, compute_features, warm_up
    from backend.pipeline import generate
    from backend.sampling import SamplingConfig

    gpu_before = gpu_memory_in_use_mb()
    generator = DanceGenerator.load(None, device, runtime)
    warm_up()
    started = time.perf_counter()
    generator.warm_up()
    networks_warm_up = time.perf_counter() - started
    rss_loaded = peak_rss_mb()
    times: dict[str, float] = {}
    started = time.perf_counter()
    decoded = load_song(song, SAMPLE_RATE)
    times["decode"] = time.perf_counter() - started
    music = compute_features(decoded)
    times["features"] = time.perf_counter() - started - times["decode"]
    rss_features = peak_rss_mb()
    marks: dict[str, float] = {}

    def progress(fraction: float, stage: str) -> None:
        marks.setdefault(stage, time.perf_counter())

    generate(music, generator, SamplingConfig(seed=0, beat_candidates=beat_candidates), progress=progress)
    finished = time.perf_counter()
    times["tokens"] = marks["rotations"] - marks["tokens"]
    times["rotations"] = finished - marks["rotations"]
    times["total"] = finished - started
    gpu_mb = float("nan")
    if generator.runtime == "torch" and generator.device == "cuda":
        import torch

        gpu_mb = torch.cuda.max_memory_allocated() / 2**20
    elif generator.device == "cuda":
        gpu_mb = gpu_memory_in_use_mb() - gpu_before
    return {
        **times,
        "duration": music.duration_s,
        "rss_loaded_mb": rss_loaded,
        "rss_features_mb": rss_features,
        "peak_rss_mb": peak_rss_mb(),
        "gpu_mb": gpu_mb,
        "networks_warm_up": networks_warm_up,
        "runtime": generator.runtime,
        "device": generator.device,
    }


def cold_start(runtime: str, device: str, song: Path, out: Path) -> tuple[float, float]:
    """Seconds from spawning ``python -m backend serve`` to its ready line, and to the result of
    a first job submitted at once (``song``), as the extension's first Generate does."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "backend", "serve", "--runtime", runtime, "--device", device],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    line = process.stdout.readline()
    ready = time.perf_counter() - started
    if json.loads(line).get("event") != "ready":
        raise RuntimeError(f"the backend did not get ready: {line.strip()}")
    process.stdin.write(json.dumps({"op": "submit", "job": "first", "audio": str(song), "out": str(out)}) + "\n")
    process.stdin.flush()
    while (event := json.loads(process.stdout.readline()))["event"] not in ("result", "failed"):
        pass
    first = time.perf_counter() - started
    process.stdin.close()
    process.wait(timeout=60)
    if event["event"] != "result":
        raise RuntimeError(f"the first job failed: {event}")
    return ready, first


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 180.0, 600.0])
    parser.add_argument("--runtime", default="auto", choices=("auto", "onnx", "torch"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--song", type=Path, default=REPO / "examples" / "florist_excerpt.ogg")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each length (fresh processes)")
    parser.add_argument(
        "--beat-candidates",
        type=int,
        nargs="+",
        default=[1, DEFAULT_BEAT_CANDIDATES],
        help="beat search's, each run in turn at each length (1: plain sampling)",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # one song, in a fresh process
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_one(args.child, args.runtime, args.device, args.beat_candidates[0])))
        return

    print(f"machine: {machine()}")
    header = (
        "| song | beat candidates | decode s | features s | tokens s | rotations s | total s | real-time factor "
        "| peak RSS MB: loaded / features / end | GPU MB |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    rows: dict[tuple[float, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for seconds in args.seconds:
            song = Path(folder) / f"song_{seconds:g}s.ogg"
            write_song(args.song, seconds, song)
            child = [sys.executable, __file__, "--child", str(song), "--runtime", args.runtime, "--device", args.device]
            for _ in range(args.repeats):
                for candidates in args.beat_candidates:  # in turn, so that a drifting machine hits both
                    command = [*child, "--beat-candidates", str(candidates)]
                    result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
                    rows.setdefault((seconds, candidates), []).append(result)
                    minutes, rest = divmod(round(result["duration"]), 60)
                    print(
                        f"| {minutes}:{rest:02d} | {candidates} | {result['decode']:.2f} | {result['features']:.2f} "
                        f"| {result['tokens']:.2f} | {result['rotations']:.2f} | {result['total']:.2f} "
                        f"| {result['total'] / result['duration']:.3f} | {result['rss_loaded_mb']:.0f} "
                        f"/ {result['rss_features_mb']:.0f} / {result['peak_rss_mb']:.0f} | {result['gpu_mb']:.0f} |"
                    )
        every = [row for runs in rows.values() for row in runs]
        print(f"runtime: {every[0]['runtime']} on {every[0]['device']}")
        print("networks' warm-up (s): " + ", ".join(f"{row['networks_warm_up']:.2f}" for row in every))
        medians = {key: float(np.median([row["total"] for row in runs])) for key, runs in rows.items()}
        if args.repeats > 1:
            print(
                "median total (s): "
                + ", ".join(
                    f"{seconds:g} s x {candidates}: {total:.2f}" for (seconds, candidates), total in medians.items()
                )
            )
        plain, *searched = args.beat_candidates
        for candidates in searched:
            print(
                f"{candidates} candidates / {plain}: "
                + ", ".join(f"{s:g} s {medians[s, candidates] / medians[s, plain]:.2f}x" for s in args.seconds)
            )
        if len(args.seconds) > 1:
            for candidates in args.beat_candidates:
                longest, second = medians[args.seconds[-1], candidates], medians[args.seconds[-2], candidates]
                print(f"{candidates} candidate(s): longest / second: {longest / second:.2f}x the time")
        first_song = Path(folder) / "first.ogg"
        write_song(args.song, FIRST_SONG_S, first_song)
        first_out = Path(folder) / "first.npz"
        starts = [cold_start(args.runtime, args.device, first_song, first_out) for _ in range(COLD_START_RUNS)]
    print("cold start to ready (s): " + ", ".join(f"{ready:.2f}" for ready, _ in starts))
    print(
        f"cold start to the first dance of a {FIRST_SONG_S:g}-s song (s): "
        + ", ".join(f"{first:.2f}" for _, first in starts)
    )


if __name__ == "__main__":
    main()
