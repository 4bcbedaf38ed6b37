"""The generator's networks through ONNX Runtime: CUDA provider on an NVIDIA GPU, CPU otherwise.

Reads the graphs ``python -m models.onnx_export`` writes beside a checkpoint; needs neither
torch nor the checkpoint itself (when the checkpoint is there, the graphs must have been made
from it). The key/value cache lives in numpy arrays between calls (on the GPU it is bound to
device memory instead, so it never crosses the bus).
"""

from __future__ import annotations

import ctypes
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.files import (
    META_CONFIGS,
    META_FORMAT,
    META_SOURCE_SHA256,
    ONNX_FORMAT,
    ONNX_GRAPHS,
    CheckpointError,
    onnx_path,
    sha256_of,
)

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


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
    position: int
    keys: Any  # (layers, 1, heads, P, head_dim): a numpy array, or an OrtValue on the GPU
    values: Any


class OnnxNetworks:
    runtime = "onnx"

    def __init__(self, runtime: Any, sessions: dict[str, Any], configs: dict[str, dict[str, Any]], device: str) -> None:
        self.ort = runtime  # the onnxruntime module
        self.sessions = sessions
        self.device = device
        gpt = configs["gpt"]
        self.frames_per_token = 2 ** int(configs["vqvae"]["num_downsamples"])
        self.d_model = int(gpt["d_model"])
        self.context_steps = int(gpt["context_steps"])
        self.cache_shape = (int(gpt["num_layers"]), 1, int(gpt["num_heads"]), 0, self.d_model // int(gpt["num_heads"]))

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
            try:
                session = runtime.InferenceSession(str(path), options, providers=providers)
            except Exception as error:  # noqa: BLE001 - ONNX Runtime raises its own unrelated classes
                raise CheckpointError(f"{path}: not a usable ONNX graph ({str(error).splitlines()[0]})") from None
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

    def new_cache(self) -> OnnxCache:
        empty = np.zeros(self.cache_shape, dtype=np.float32)
        return OnnxCache(0, empty, empty)

    def step(
        self, streams: np.ndarray, tokens: np.ndarray, music_steps: np.ndarray, cache: OnnxCache
    ) -> tuple[np.ndarray, np.ndarray, OnnxCache]:
        feeds = {
            "streams": streams[None].astype(np.int64),
            "tokens": tokens[None].astype(np.int64),
            "music_steps": music_steps[None].astype(np.float32),
            "position": np.array(cache.position, dtype=np.int64),
        }
        session = self.sessions["gpt_step"]
        if self.device == "cuda":
            return self._step_on_gpu(session, feeds, cache, len(streams))
        feeds.update(past_keys=cache.keys, past_values=cache.values)
        upper, lower, keys, values = session.run(None, feeds)
        return upper[0], lower[0], OnnxCache(cache.position + len(streams), keys, values)

    def _step_on_gpu(
        self, session: Any, feeds: dict[str, np.ndarray], cache: OnnxCache, count: int
    ) -> tuple[np.ndarray, np.ndarray, OnnxCache]:
        binding = session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        for name, value in (("past_keys", cache.keys), ("past_values", cache.values)):
            if isinstance(value, np.ndarray):
                value = self.ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0)
            binding.bind_ortvalue_input(name, value)
        binding.bind_output("upper_logits")
        binding.bind_output("lower_logits")
        binding.bind_output("keys", "cuda")
        binding.bind_output("values", "cuda")
        session.run_with_iobinding(binding)
        upper, lower, keys, values = binding.get_outputs()
        return upper.numpy()[0], lower.numpy()[0], OnnxCache(cache.position + count, keys, values)

    def decode(self, upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feeds = {"upper_tokens": upper[None].astype(np.int64), "lower_tokens": lower[None].astype(np.int64)}
        upper_motion, lower_motion = self.sessions["motion_decoder"].run(None, feeds)
        return upper_motion[0], lower_motion[0]
