"""The GPT step alone, ONNX Runtime: ms a call, and two sets of graphs side by side.

    .venv/bin/python benchmarks/gpt_calls.py [WEIGHTS ...] [--device cpu|cuda] [--blocks 6]
        [--batch 1] [--kernels]

WEIGHTS: checkpoints (or where their graphs lie: ``<stem>.<graph>.onnx``), the shipped one by
default; two of them are compared in one process, block by block, alternating, which is how
a change is told apart from a shared machine's drift. For each: the tokens of 1 350 steps (a
3-minute song) of random features in the songs' range, and whether they equal the first
set's; the median ms of a call over blocks of 200 calls (one and two positions alternating);
then one and two positions apart. ``--batch``: the rows of each timed call (beat search runs its
candidates as the rows of one batch: 8 by default).

``--kernels`` (CUDA, needs torch with CUDA beside onnxruntime-gpu): the kernels of 50 replays
of each kind of call through torch's profiler (CUPTI): count and kernel time a call, and the
twelve costliest.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backend.generator import DEFAULT_WEIGHTS, DanceGenerator  # noqa: E402
from backend.music_features import FEATURE_DIM  # noqa: E402
from backend.sampling import SamplingConfig  # noqa: E402

STEPS = 1350  # a 3-minute song at 7.5 steps a second
FEATURE_SCALE = 30.0  # random features spread over the range computed songs' span
BLOCK_CALLS = 200
SETTLE_CALLS = 20  # calls of a block left out of its median (the ring filling, clocks rising)
PROFILED_CALLS = 50
TOP_KERNELS = 12


def calls_ms(generator: DanceGenerator, counts: tuple[int, ...], batch: int) -> float:
    """Median ms of a call of ``batch`` rows over BLOCK_CALLS calls of ``counts`` positions in
    turn, from an empty ring."""
    networks = generator.networks
    music = networks.encode_music(np.zeros((4 * max(counts), FEATURE_DIM), np.float32))
    cache = networks.new_cache(batch)
    times = []
    for call in range(BLOCK_CALLS):
        count = counts[call % len(counts)]
        start = time.perf_counter()
        tokens = np.zeros((batch, count), np.int64)
        _, _, cache = networks.step(np.zeros(count, np.int64), tokens, music[:count], cache)
        times.append(time.perf_counter() - start)
    return float(np.median(times[SETTLE_CALLS:]) * 1000)


def kernels(generator: DanceGenerator, batch: int) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    ring = generator.networks.ring(batch)
    for count in (1, 2):
        with profile(activities=[ProfilerActivity.CUDA]) as profiler:
            for _ in range(PROFILED_CALLS):
                ring.replay(count)
            torch.cuda.synchronize()
        time_us: dict[str, float] = collections.defaultdict(float)
        launches: collections.Counter[str] = collections.Counter()
        for event in profiler.events():
            if event.device_type.name == "CUDA":
                time_us[event.name] += event.device_time_total
                launches[event.name] += 1
        total = sum(time_us.values()) / PROFILED_CALLS
        print(f"  {count} position(s): {launches.total() / PROFILED_CALLS:.0f} kernels, {total:.1f} us a call")
        for name, spent in sorted(time_us.items(), key=lambda item: -item[1])[:TOP_KERNELS]:
            print(f"    {spent / PROFILED_CALLS:7.1f} us {launches[name] / PROFILED_CALLS:5.1f}x  {name[:100]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, nargs="*", default=[DEFAULT_WEIGHTS])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--batch", type=int, default=1, help="rows of each timed call")
    parser.add_argument("--kernels", action="store_true")
    args = parser.parse_args()
    generators = [DanceGenerator.load(path, args.device, "onnx") for path in args.weights]
    for generator in generators:
        generator.warm_up()
    features = np.random.default_rng(0).normal(0, FEATURE_SCALE, (4 * STEPS, FEATURE_DIM)).astype(np.float32)
    first = None
    for path, generator in zip(args.weights, generators, strict=True):
        start = time.perf_counter()
        tokens = generator.tokens(features, SamplingConfig(seed=1))
        seconds = time.perf_counter() - start
        first = tokens if first is None else first
        parted = np.flatnonzero((tokens[0] != first[0]) | (tokens[1] != first[1]))
        same = "the same tokens" if parted.size == 0 else f"tokens part from the first set's at step {parted[0]}"
        print(f"{path}: {STEPS} steps in {seconds:.3f} s ({1000 * seconds / (2 * STEPS):.3f} ms a call), {same}")
    blocks: dict[Path, list[float]] = {path: [] for path in args.weights}
    for _ in range(args.blocks):
        for path, generator in zip(args.weights, generators, strict=True):
            blocks[path].append(calls_ms(generator, (1, 2), args.batch))
    for path, generator in zip(args.weights, generators, strict=True):
        alone = ", ".join(f"{count} position(s) {calls_ms(generator, (count,), args.batch):.3f}" for count in (1, 2))
        by_block = " ".join(f"{v:.3f}" for v in blocks[path])
        print(f"{path} ({args.device}, {args.batch} row(s)): ms a call by block {by_block}; {alone}")
        if args.kernels and generator.device == "cuda":
            kernels(generator, args.batch)


if __name__ == "__main__":
    main()
