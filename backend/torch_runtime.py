"""The generator's networks in torch: for training's checkpoints without ONNX graphs, untrained
networks, and whoever asks for torch (``--runtime torch``). Imported only then."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import read_checkpoint, restore_network
from models.gpt import GPTConfig, MotionGPT
from models.vqvae import MotionVQVAE, VQVAEConfig

UNTRAINED_INIT_SEED = 20_240_101  # fixed, so untrained networks are the same in every process
GRAPH_WARMUP_RUNS = 3  # eager runs before a CUDA graph capture (cuBLAS sets itself up in them)


def pick_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA when torch sees a GPU, else CPU; 'cuda' or 'cpu' as asked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA GPU")
    return torch.device(device)


@dataclass
class TorchCache:
    position: int
    keys: torch.Tensor
    values: torch.Tensor


class GraphedSteps:
    """``generation_step`` replayed from CUDA graphs once the cache holds a full window.

    A step's work is a few hundred tiny kernels; launched one by one from Python they cost
    ~8 ms a call on an H100 (measured), replayed from a graph 0.85 ms. (torch.compile's fused
    kernels inside the same graphs gave 0.68 ms, for 26 s of compiling and a backend that takes
    10 s instead of 4 to start: not worth it.) One graph per input count (1 and 2 positions),
    captured on first use (the backend's warm-up dance does it); inputs are copied into the
    graphs' static tensors, the cache into their static past.
    """

    def __init__(self, gpt: MotionGPT, device: torch.device) -> None:
        cfg = gpt.cfg
        self.gpt = gpt
        self.device = device
        self.window = cfg.window_positions
        shape = cfg.cache_shape(1, self.window)
        self.past_keys = torch.zeros(shape, device=device)
        self.past_values = torch.zeros(shape, device=device)
        self.position = torch.zeros((), dtype=torch.long, device=device)
        self.inputs: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.outputs: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}

    def _run(self, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        streams, tokens, music = self.inputs[count]
        upper, lower, keys, values = self.gpt.generation_step(
            streams, tokens, music, self.position, self.past_keys, self.past_values
        )
        return torch.cat([upper[0], lower[0]]), keys, values

    def _capture(self, count: int) -> None:
        cfg = self.gpt.cfg
        self.inputs[count] = (
            torch.zeros((1, count), dtype=torch.long, device=self.device),
            torch.zeros((1, count), dtype=torch.long, device=self.device),
            torch.zeros((1, count, cfg.d_model), device=self.device),
        )
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up runs, off the capture, as CUDA graphs require
            for _ in range(GRAPH_WARMUP_RUNS):
                self._run(count)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.outputs[count] = self._run(count)
        self.graphs[count] = graph

    def fits(self, cache: TorchCache) -> bool:
        return cache.keys.shape[3] == self.window

    def step(
        self, streams: torch.Tensor, tokens: torch.Tensor, music: torch.Tensor, cache: TorchCache
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        count = streams.shape[1]
        if count not in self.graphs:
            self._capture(count)
        static_streams, static_tokens, static_music = self.inputs[count]
        static_streams.copy_(streams)
        static_tokens.copy_(tokens)
        static_music.copy_(music)
        self.position.fill_(cache.position)
        self.past_keys.copy_(cache.keys)
        self.past_values.copy_(cache.values)
        self.graphs[count].replay()
        return self.outputs[count]


class TorchNetworks:
    runtime = "torch"

    def __init__(self, vqvae: MotionVQVAE, gpt: MotionGPT, device: torch.device) -> None:
        self.vqvae = vqvae.to(device).eval()
        self.gpt = gpt.to(device).eval()
        self.torch_device = device
        self.device = device.type
        self.frames_per_token = vqvae.cfg.frames_per_token
        self.d_model = gpt.cfg.d_model
        self.context_steps = gpt.cfg.context_steps
        self.graphed = GraphedSteps(self.gpt, device) if device.type == "cuda" else None

    @classmethod
    def load(cls, weights: Path, device: str) -> TorchNetworks:
        configs, tensors, _ = read_checkpoint(weights)
        vqvae = restore_network(configs, tensors, "vqvae", VQVAEConfig, MotionVQVAE, str(weights))
        gpt = restore_network(configs, tensors, "gpt", GPTConfig, MotionGPT, str(weights))
        return cls(vqvae, gpt, pick_device(device))

    @classmethod
    def untrained(cls, device: str) -> TorchNetworks:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(UNTRAINED_INIT_SEED)
            vqvae, gpt = MotionVQVAE(VQVAEConfig()), MotionGPT(GPTConfig())
        # An untrained codebook is all zeros; spread it so that tokens decode differently.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(UNTRAINED_INIT_SEED + 1)
            for half in (vqvae.upper, vqvae.lower):
                half.quantiser.codebook.normal_()
        return cls(vqvae, gpt, pick_device(device))

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.torch_device)

    @torch.inference_mode()
    def encode_music(self, music: np.ndarray) -> np.ndarray:
        return self.gpt.music_encoder(self._tensor(music.astype(np.float32))[None])[0].float().cpu().numpy()

    def new_cache(self) -> TorchCache:
        keys, values = self.gpt.empty_cache(1, self.torch_device)
        return TorchCache(0, keys, values)

    @torch.inference_mode()
    def step(
        self, streams: np.ndarray, tokens: np.ndarray, music_steps: np.ndarray, cache: TorchCache
    ) -> tuple[np.ndarray, np.ndarray, TorchCache]:
        inputs = (
            self._tensor(streams.astype(np.int64))[None],
            self._tensor(tokens.astype(np.int64))[None],
            self._tensor(music_steps.astype(np.float32))[None],
        )
        if self.graphed is not None and self.graphed.fits(cache):
            logits, keys, values = self.graphed.step(*inputs, cache)
        else:
            position = torch.tensor(cache.position, device=self.torch_device)
            upper, lower, keys, values = self.gpt.generation_step(*inputs, position, cache.keys, cache.values)
            logits = torch.cat([upper[0], lower[0]])
        scores = logits.float().cpu().numpy()  # one copy back, not two
        split = self.gpt.cfg.num_upper_codes
        return scores[:split], scores[split:], TorchCache(cache.position + len(streams), keys, values)

    @torch.inference_mode()
    def decode(self, upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        upper_motion, lower_motion = self.vqvae.decode(
            self._tensor(upper.astype(np.int64))[None], self._tensor(lower.astype(np.int64))[None]
        )
        return upper_motion[0].float().cpu().numpy(), lower_motion[0].float().cpu().numpy()
