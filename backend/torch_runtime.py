"""The generator's networks in torch: for training's checkpoints without ONNX graphs, untrained
networks, and whoever asks for torch (``--runtime torch``). Imported only then."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import read_checkpoint, restore_network
from models.files import EMPTY_SLOT, MAX_INPUTS, check_ring_cache
from models.gpt import GPTConfig, MotionGPT, ring_slots
from models.vqvae import MotionVQVAE, VQVAEConfig

UNTRAINED_INIT_SEED = 20_240_101  # fixed, so untrained networks are the same in every process
GRAPH_WARMUP_RUNS = 3  # eager runs before a CUDA graph capture (cuBLAS sets itself up in them)


def pick_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA when torch sees a GPU, else CPU; 'cuda' or 'cpu' as asked."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA GPU")
    if device == "cuda":
        # Full fp32 products on the GPU, as on the CPU. cuDNN's convolutions default to TF32,
        # whose 10-bit mantissas moved the music encoder's output enough that the example
        # song's tokens parted from the CPU's (H200, 2026-12-03; the same tokens without it).
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return torch.device(device)


@dataclass
class TorchCache:
    """Keys and values (num_layers, B, num_heads, P, head_dim) of the last P <= window positions."""

    position: int
    keys: torch.Tensor
    values: torch.Tensor


@dataclass
class RingCache:
    """A song's place in ``GraphedRing``'s ring: the ring itself lives there, so each cache is
    used once, and the one a step returns is the one to pass next."""

    position: int
    batch: int = 1


class GraphedRing:
    """Generation on CUDA: the cache is a ring updated in place (``ring_generation_step``), and
    each call replays a CUDA graph, one per input count (1 and 2 positions), captured once.

    A call's work is ~150 tiny kernels; launched one by one from Python they cost ~8 ms on an
    H100, replayed from a graph 0.29 ms (one position) and 0.43 ms (two) on an H200. Inputs go in
    through pinned host buffers and the logits come back through one: a call is two small
    copies, a replay and one wait. (The earlier cache, copied into a graph's static tensors and
    trimmed every call, cost 1.6 ms a step instead of 1.0; torch.compile's fused kernels would
    save another quarter of the replay, for 10-25 s of compiling in every new process.)
    """

    def __init__(self, gpt: MotionGPT, device: torch.device, batch: int = 1) -> None:
        cfg = gpt.cfg
        self.gpt = gpt
        self.device = device
        self.batch = batch
        self.position = 0
        slots = ring_slots(cfg, MAX_INPUTS)
        self.keys = torch.zeros(cfg.cache_shape(batch, slots), device=device)
        self.values = torch.zeros(cfg.cache_shape(batch, slots), device=device)
        self.slot_positions = torch.full((slots,), EMPTY_SLOT, dtype=torch.long, device=device)
        counts = range(1, MAX_INPUTS + 1)
        # Per input count: [position, streams..., each row's tokens...] and the music vectors.
        self.host_ints = {n: torch.zeros(1 + n + batch * n, dtype=torch.long).pin_memory() for n in counts}
        self.host_music = {n: torch.zeros((1, n, cfg.d_model)).pin_memory() for n in counts}
        self.ints = {n: torch.zeros(1 + n + batch * n, dtype=torch.long, device=device) for n in counts}
        self.music = {n: torch.zeros((1, n, cfg.d_model), device=device) for n in counts}
        self.logits = torch.zeros((batch, cfg.num_upper_codes + cfg.num_lower_codes), device=device)
        self.host_logits = torch.zeros(self.logits.shape).pin_memory()
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}

    def _run(self, count: int) -> None:
        ints = self.ints[count]
        upper, lower = self.gpt.ring_generation_step(
            ints[1 : 1 + count][None],
            ints[1 + count :].view(self.batch, count),
            self.music[count],
            ints[0],
            self.keys,
            self.values,
            self.slot_positions,
        )
        torch.cat([upper, lower], dim=1, out=self.logits)

    @torch.inference_mode()
    def _capture(self) -> None:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up runs, off the capture, as CUDA graphs require
            for count in self.ints:
                for _ in range(GRAPH_WARMUP_RUNS):
                    self._run(count)
        torch.cuda.current_stream(self.device).wait_stream(side)
        for count in self.ints:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._run(count)
            self.graphs[count] = graph

    @torch.inference_mode()
    def new_cache(self) -> RingCache:
        """An empty ring (the warm-up runs of the first capture wrote into it too)."""
        if not self.graphs:
            self._capture()
        self.keys.zero_()
        self.values.zero_()
        self.slot_positions.fill_(EMPTY_SLOT)
        self.position = 0
        return RingCache(0, self.batch)

    @torch.inference_mode()
    def keep_row(self, cache: RingCache, row: int, positions: int) -> RingCache:
        """Every row takes row ``row``'s keys and values of the last ``positions`` positions, in
        place (the graphs read these buffers)."""
        check_ring_cache(cache.position, self.position)
        first = max(self.position - positions, 0)
        slots = torch.arange(first, self.position, device=self.device) % self.keys.shape[3]
        for ring in (self.keys, self.values):
            kept = ring[:, row : row + 1].index_select(3, slots)
            ring.index_copy_(3, slots, kept.expand(-1, self.batch, -1, -1, -1).contiguous())
        return RingCache(self.position, self.batch)

    def step(self, streams: np.ndarray, tokens: np.ndarray, music: np.ndarray, cache: RingCache) -> np.ndarray:
        """The inputs' (n,) streams, (B, n) tokens and (n, d_model) music -> (B, upper + lower
        codes) logits of the last input of each row."""
        check_ring_cache(cache.position, self.position)
        count = len(streams)
        ints = self.host_ints[count].numpy()
        ints[0] = cache.position
        ints[1 : 1 + count] = streams
        ints[1 + count :] = tokens.ravel()
        self.host_music[count].numpy()[0] = music
        self.ints[count].copy_(self.host_ints[count], non_blocking=True)
        self.music[count].copy_(self.host_music[count], non_blocking=True)
        self.graphs[count].replay()
        self.host_logits.copy_(self.logits, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        self.position += count
        return self.host_logits.numpy()


class TorchNetworks:
    runtime = "torch"

    def __init__(self, vqvae: MotionVQVAE, gpt: MotionGPT, device: torch.device) -> None:
        self.vqvae = vqvae.to(device).eval()
        self.gpt = gpt.to(device).eval()
        self.torch_device = device
        self.device = device.type
        self.frames_per_token = vqvae.cfg.frames_per_token
        self.vqvae_config = dataclasses.asdict(vqvae.cfg)
        self.d_model = gpt.cfg.d_model
        self.context_steps = gpt.cfg.context_steps
        self.graphed: dict[int, GraphedRing] = {}  # by batch, on CUDA: made on first use

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

    def ring(self, batch: int) -> GraphedRing:
        if batch not in self.graphed:
            self.graphed[batch] = GraphedRing(self.gpt, self.torch_device, batch)
        return self.graphed[batch]

    def new_cache(self, batch: int = 1) -> TorchCache | RingCache:
        if self.device == "cuda":
            return self.ring(batch).new_cache()
        keys, values = self.gpt.empty_cache(batch, self.torch_device)
        return TorchCache(0, keys, values)

    @torch.inference_mode()
    def step(
        self, streams: np.ndarray, tokens: np.ndarray, music_steps: np.ndarray, cache: TorchCache | RingCache
    ) -> tuple[np.ndarray, np.ndarray, TorchCache | RingCache]:
        """The inputs' (n,) streams, (B, n) tokens and (n, d_model) music -> (B, codes) upper and
        lower logits of the last input of each row."""
        split = self.gpt.cfg.num_upper_codes
        if isinstance(cache, RingCache):
            scores = self.ring(cache.batch).step(streams, tokens, music_steps, cache)
            # Copies: the pinned buffer is overwritten by the next call.
            after = RingCache(cache.position + len(streams), cache.batch)
            return scores[:, :split].copy(), scores[:, split:].copy(), after
        inputs = (
            self._tensor(streams.astype(np.int64))[None],
            self._tensor(tokens.astype(np.int64)),
            self._tensor(music_steps.astype(np.float32))[None],
        )
        position = torch.tensor(cache.position, device=self.torch_device)
        upper, lower, keys, values = self.gpt.generation_step(*inputs, position, cache.keys, cache.values)
        scores = torch.cat([upper, lower], dim=1).float().cpu().numpy()  # one copy back, not two
        return scores[:, :split], scores[:, split:], TorchCache(cache.position + len(streams), keys, values)

    def keep_row(self, cache: TorchCache | RingCache, row: int, positions: int) -> TorchCache | RingCache:
        """Every row of the cache as row ``row`` (whose last ``positions`` positions differ)."""
        if isinstance(cache, RingCache):
            return self.ring(cache.batch).keep_row(cache, row, positions)
        batch = cache.keys.shape[1]  # each step makes new tensors: a view of the kept row will do
        keys, values = (part[:, row : row + 1].expand(-1, batch, -1, -1, -1) for part in (cache.keys, cache.values))
        return TorchCache(cache.position, keys, values)

    @torch.inference_mode()
    def decode(self, upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, L) tokens -> (B, 4L, 90) upper and (B, 4L, 58) lower motion."""
        upper_motion, lower_motion = self.vqvae.decode(
            self._tensor(upper.astype(np.int64)), self._tensor(lower.astype(np.int64))
        )
        return upper_motion.float().cpu().numpy(), lower_motion.float().cpu().numpy()
