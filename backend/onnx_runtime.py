"""The generator's networks through ONNX Runtime: CUDA provider on an NVIDIA GPU, CPU otherwise.

Reads the graphs ``python -m models.onnx_export`` writes beside a checkpoint; needs neither
torch nor the checkpoint itself (when the checkpoint is there, the graphs must have been made
from it). The GPT's key/value cache is a ring in buffers bound once and written in place
(``RingStep``): on the GPU it never crosses the bus, and each kind of call replays a CUDA graph.
"""

from __future__ import annotations

import ctypes
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.files import (
    EMPTY_SLOT,
    MAX_INPUTS,
    META_CONFIGS,
    META_FORMAT,
    META_SOURCE_SHA256,
    ONNX_FORMAT,
    ONNX_GRAPHS,
    CheckpointError,
    check_ring_cache,
    onnx_path,
    sha256_of,
)

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
# The CUDA provider's option that captures a session's calls as CUDA graphs (bound buffers and
# fixed shapes only: the GPT step's session), and the run option naming which graph a call is.
CUDA_GRAPH_OPTION = "enable_cuda_graph"
CUDA_GRAPH_ID = "gpu_graph_id"
CUDA_OPTIONS = {
    # Each song is a new length for the convolutions: an exhaustive search of cuDNN's algorithms
    # for every new shape costs more than the convolutions themselves.
    "cudnn_conv_algo_search": "HEURISTIC",
    # Full fp32 products, as on the CPU: TF32's 10-bit mantissas change the sampled tokens.
    "use_tf32": "0",
}

log = logging.getLogger(__name__)


def onnxruntime_module() -> Any | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def have_graphs(weights: Path) -> bool:
    return all(onnx_path(weights, graph).is_file() for graph in ONNX_GRAPHS)


def nvidia_driver_present() -> bool:
    """Whether the NVIDIA driver's CUDA library loads. ONNX Runtime's GPU build lists its CUDA
    provider everywhere, and on a machine without a GPU trying it only prints errors."""
    try:
        ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
    except OSError:
        return False
    return True


def cuda_available() -> bool:
    runtime = onnxruntime_module()
    return runtime is not None and CUDA_PROVIDER in runtime.get_available_providers() and nvidia_driver_present()


@dataclass
class OnnxCache:
    """A song's place in ``RingStep``'s ring: the ring lives there, so each cache is used once,
    and the one a step returns is the one to pass next."""

    position: int
    batch: int = 1


class RingStep:
    """The GPT step's key/value cache for ``batch`` rows (beat search's candidates): one ring of
    the graph's fixed shape (each layer's keys and values, and the slots' positions), bound once
    as both the inputs ``<name>`` and the outputs ``next_<name>``, so each call writes its new
    slots in place.

    That is sound for the graphs of ``models.onnx_export``, which checks it: each ring input is
    written by one node only, a scatter, whose output is ``next_<name>``, and read elsewhere only
    by what that scatter waits for; ONNX Runtime's scatter kernels (CPU and CUDA) copy their input
    to their output only when the two are different buffers. Writing into a second ring instead
    copied the whole ring every call (12 copies of 283 KB a row: 15 % of a call's time in ONNX
    Runtime's profile on a 2-core CPU). Every buffer is made and bound once, so on the GPU nothing
    crosses the bus but the inputs and the logits, and ONNX Runtime's CUDA provider captures each
    kind of call (1 or 2 positions) as a CUDA graph and replays it: a call is 150-160 tiny kernels
    (an H200, 2026-12-03), which launched one by one cost more than the work (2.5 ms a call
    before, with the cache bound but no graphs). Beat search keeps a candidate with the
    ``ring_select`` graph, on the same buffers: the slots its chunk wrote, copied across rows."""

    def __init__(self, runtime: Any, sessions: dict[str, Any], device: str, upper_codes: int, batch: int) -> None:
        self.ort = runtime
        self.session = sessions["gpt_step"]
        self.select_session = sessions["ring_select"]
        self.device = device
        self.batch = batch
        shapes = {arg.name: arg.shape for arg in self.session.get_inputs()}
        # Each layer's keys and values (ring_keys_<layer>, ring_values_<layer>): (batch, heads,
        # slots, head_dim), what a call reads and writes back, as next_<name>, into the same buffer.
        self.ring_shapes = {
            name: (batch, *(int(size) for size in shape[1:]))
            for name, shape in shapes.items()
            if name.startswith("ring_")
        }
        self.slots = int(shapes["slot_positions"][0])
        self.d_model = int(shapes["music_steps"][-1])
        self.ring = self._device_buffers(self._empty_ring())
        # Per input count, what the bound input buffers hold, here and there: a call copies only
        # what changed (most calls' streams and music do not), each copy a wait on the GPU.
        self.host_inputs = {
            count: {
                "streams": np.zeros((batch, count), np.int64),
                "tokens": np.zeros((batch, count), np.int64),
                "music_steps": np.zeros((batch, count, self.d_model), np.float32),
                "positions": np.zeros(count, np.int64),
            }
            for count in range(1, MAX_INPUTS + 1)
        }
        self.inputs = {count: self._device_buffers(arrays) for count, arrays in self.host_inputs.items()}
        # Both heads' logits in one output (the upper head's first): one copy back a call.
        (codes,) = (int(out.shape[-1]) for out in self.session.get_outputs() if out.name == "logits")
        self.logits = self._device_buffers({"logits": np.zeros((batch, codes), np.float32)})
        self.upper_codes = upper_codes
        self.bindings: dict[int, tuple[Any, Any]] = {}
        self.position = 0

    def _empty_ring(self) -> dict[str, np.ndarray]:
        return {name: np.zeros(shape, np.float32) for name, shape in self.ring_shapes.items()} | {
            "slot_positions": np.full(self.slots, EMPTY_SLOT, np.int64)
        }

    def _device_buffers(self, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        """Buffers on this device holding copies of ``arrays`` (on the CPU an OrtValue would
        otherwise share the array's memory, and ``host_inputs`` must stay apart from it)."""
        return {
            name: self.ort.OrtValue.ortvalue_from_numpy(value.copy(), self.device, 0) for name, value in arrays.items()
        }

    def _binding(self, count: int) -> tuple[Any, Any]:
        if count not in self.bindings:
            binding = self.session.io_binding()
            for name, value in {**self.inputs[count], **self.ring}.items():
                binding.bind_ortvalue_input(name, value)
            for name, value in self.logits.items():
                binding.bind_ortvalue_output(name, value)
            for name, value in self.ring.items():
                binding.bind_ortvalue_output(f"next_{name}", value)
            options = self.ort.RunOptions()
            if self.device == "cuda":  # one CUDA graph per kind of call and batch; ids from 1 (0 is the default)
                options.add_run_config_entry(CUDA_GRAPH_ID, str(self.batch * (MAX_INPUTS + 1) + count))
            self.bindings[count] = (binding, options)
        return self.bindings[count]

    def replay(self, count: int) -> None:
        """Run the call of ``count`` positions on what its bound buffers hold (the last such
        call's inputs, the ring as it is): the graph's time alone, for benchmarks."""
        binding, options = self._binding(count)
        self.session.run_with_iobinding(binding, options)

    def new_cache(self) -> OnnxCache:
        """The ring emptied, for a new song. (A ring restarted at position 0 would not see what
        an earlier song left: each slot is rewritten before its position comes into a window.)"""
        for name, value in self._empty_ring().items():
            self.ring[name].update_inplace(value)
        self.position = 0
        return OnnxCache(0, self.batch)

    def keep_row(self, cache: OnnxCache, row: int, positions: int) -> OnnxCache:
        """Every row takes row ``row``'s keys and values of the last ``positions`` positions
        (at most a window: the rows were equal before them), in place."""
        check_ring_cache(cache.position, self.position)
        first = max(self.position - positions, 0)
        slots = np.arange(first, self.position, dtype=np.int64) % self.slots
        binding = self.select_session.io_binding()
        binding.bind_cpu_input("row", np.array([row], np.int64))
        binding.bind_cpu_input("slots", slots)
        for name, value in self.ring.items():
            if name != "slot_positions":
                binding.bind_ortvalue_input(name, value)
                binding.bind_ortvalue_output(f"next_{name}", value)
        self.select_session.run_with_iobinding(binding)
        return OnnxCache(self.position, self.batch)

    def step(
        self, streams: np.ndarray, tokens: np.ndarray, music_steps: np.ndarray, cache: OnnxCache
    ) -> tuple[np.ndarray, np.ndarray, OnnxCache]:
        check_ring_cache(cache.position, self.position)
        count = len(streams)
        values = {
            "streams": streams[None],
            "tokens": tokens,
            "music_steps": music_steps[None],
            "positions": np.arange(self.position, self.position + count),
        }
        for name, value in values.items():
            held = self.host_inputs[count][name]
            # Same shapes by construction: the element-wise test alone (np.array_equal's checks
            # around it cost 5 of the host's 68 us a call on a 2-core CPU).
            if not (held == value).all():
                held[...] = value
                self.inputs[count][name].update_inplace(held)
        binding, options = self._binding(count)
        self.session.run_with_iobinding(binding, options)
        self.position += count
        logits = self.logits["logits"].numpy()  # a copy, the host's own
        return logits[:, : self.upper_codes], logits[:, self.upper_codes :], OnnxCache(self.position, self.batch)


def open_session(runtime: Any, path: Path, options: Any, providers: list[str], graphed: bool) -> Any:
    """An inference session of one graph; on the GPU with ``CUDA_OPTIONS`` and, if ``graphed``,
    CUDA graphs (a provider that cannot capture the graph refuses the session: then it runs
    with the provider's defaults)."""
    attempts = [providers]
    if CUDA_PROVIDER in providers:
        options_here = {**CUDA_OPTIONS, **({CUDA_GRAPH_OPTION: "1"} if graphed else {})}
        attempts.insert(0, [(CUDA_PROVIDER, options_here), *providers[1:]])
    for number, attempt in enumerate(attempts, start=1):
        try:
            return runtime.InferenceSession(str(path), options, providers=attempt)
        except Exception as error:  # noqa: BLE001 - ONNX Runtime raises its own unrelated classes
            if number == len(attempts):
                raise CheckpointError(f"{path}: not a usable ONNX graph ({str(error).splitlines()[0]})") from None
            log.warning("%s: the CUDA provider's options refused (%s)", path.name, str(error).splitlines()[0])
    raise AssertionError("unreachable")


class OnnxNetworks:
    runtime = "onnx"

    def __init__(self, runtime: Any, sessions: dict[str, Any], configs: dict[str, dict[str, Any]], device: str) -> None:
        self.ort = runtime  # the onnxruntime module
        self.sessions = sessions
        self.device = device
        gpt = configs["gpt"]
        self.frames_per_token = 2 ** int(configs["vqvae"]["num_downsamples"])
        self.vqvae_config = configs["vqvae"]
        self.d_model = int(gpt["d_model"])
        self.context_steps = int(gpt["context_steps"])
        self.upper_codes = int(gpt["num_upper_codes"])
        self.rings: dict[int, RingStep] = {}  # by batch: made on first use, kept for the next song

    def ring(self, batch: int = 1) -> RingStep:
        if batch not in self.rings:
            self.rings[batch] = RingStep(self.ort, self.sessions, self.device, self.upper_codes, batch)
        return self.rings[batch]

    @classmethod
    def load(cls, weights: Path, device: str) -> OnnxNetworks:
        """device: 'cpu', 'cuda' or 'auto' (CUDA when ONNX Runtime has its provider and it starts)."""
        runtime = onnxruntime_module()
        if runtime is None:
            raise CheckpointError("onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu)")
        if device == "cuda" and not cuda_available():
            raise ValueError("device 'cuda' was asked for, but ONNX Runtime has no CUDA provider here")
        providers = [CUDA_PROVIDER, CPU_PROVIDER] if device != "cpu" and cuda_available() else [CPU_PROVIDER]
        if CUDA_PROVIDER in providers and hasattr(runtime, "preload_dlls"):
            runtime.preload_dlls()  # CUDA and cuDNN from PyPI's nvidia-* packages, when installed (.[cuda])
        options = runtime.SessionOptions()
        options.graph_optimization_level = runtime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: the CUDA provider's notes are not the user's business
        sessions, configs, sources = {}, None, set()
        for graph in ONNX_GRAPHS:
            path = onnx_path(weights, graph)
            if not path.is_file():
                raise CheckpointError(f"{path}: missing (python -m models.onnx_export {weights} makes it)")
            session = open_session(runtime, path, options, providers, graph == "gpt_step")
            meta = session.get_modelmeta().custom_metadata_map
            if meta.get(META_FORMAT) != ONNX_FORMAT:
                raise CheckpointError(f"{path}: not a {ONNX_FORMAT} graph")
            configs = json.loads(meta[META_CONFIGS])
            sources.add(meta.get(META_SOURCE_SHA256))
            sessions[graph] = session
        if len(sources) != 1:
            raise CheckpointError(f"{weights}: its ONNX graphs were made from different checkpoints")
        if weights.is_file() and sha256_of(weights) not in sources:
            raise CheckpointError(
                f"{weights}: its ONNX graphs were made from another checkpoint (python -m models.onnx_export {weights})"
            )
        on_gpu = sessions["gpt_step"].get_providers()[0] == CUDA_PROVIDER
        assert configs is not None
        return cls(runtime, sessions, configs, "cuda" if on_gpu else "cpu")

    def encode_music(self, music: np.ndarray) -> np.ndarray:
        """(T, music_dim) features, T a multiple of frames_per_token -> (T / frames_per_token, d_model)."""
        (steps,) = self.sessions["music_encoder"].run(None, {"music": music[None].astype(np.float32)})
        return steps[0]

    def new_cache(self, batch: int = 1) -> OnnxCache:
        return self.ring(batch).new_cache()

    def step(
        self, streams: np.ndarray, tokens: np.ndarray, music_steps: np.ndarray, cache: OnnxCache
    ) -> tuple[np.ndarray, np.ndarray, OnnxCache]:
        """The inputs' (n,) streams, (B, n) tokens and (n, d_model) music -> (B, codes) upper and
        lower logits of the last input of each row."""
        return self.ring(cache.batch).step(streams, tokens, music_steps, cache)

    def keep_row(self, cache: OnnxCache, row: int, positions: int) -> OnnxCache:
        return self.ring(cache.batch).keep_row(cache, row, positions)

    def decode(self, upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, L) tokens -> (B, 4L, 90) upper and (B, 4L, 58) lower motion."""
        feeds = {"upper_tokens": upper.astype(np.int64), "lower_tokens": lower.astype(np.int64)}
        upper_motion, lower_motion = self.sessions["motion_decoder"].run(None, feeds)
        return upper_motion, lower_motion
