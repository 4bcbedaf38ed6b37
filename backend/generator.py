"""The trained (or, before training, freshly initialised) networks the pipeline runs, through one
of two runtimes: ONNX Runtime (the default; no torch needed) or torch.

Both runtimes give logits; choosing tokens from them (``sampling``) and the order of the
generation calls live here, once, so the same seed gives the same tokens on either.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from models.files import CheckpointError

from .beat_search import SEARCH_CHOICE_TEMPERATURE, SEARCH_CHUNK_STEPS, BeatScorer, choice_noise
from .errors import CancelledError
from .music_features import FEATURE_DIM
from .onnx_runtime import OnnxNetworks, have_graphs, onnxruntime_module
from .sampling import SamplingConfig, TokenSampler

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "weights" / "generator.safetensors"
RUNTIMES = ("auto", "onnx", "torch")
DEVICES = ("auto", "cuda", "cpu")
WARM_UP_EXTRA_STEPS = 2  # steps the warm-up generation runs past a full attention window
# Tokens the motion decoder runs on at a time on the GPU (68 s of dance): a longer song is
# decoded in overlapping chunks of this one shape, which the warm-up has seen. Each new input
# shape costs ONNX Runtime's CUDA provider a set-up of every convolution (0.06-0.13 s for the
# decoder on an H200, against 2-4 ms to run it; 2026-12-03), and every song is a new length.
# On the CPU a new shape costs nothing and the chunks' overlap 15 % more time: one pass there.
DECODE_CHUNK_TOKENS = 512
# Rates steps [start, end) of (B, L) upper and lower tokens, each row a candidate whose steps
# before start are the others' (``beat_search.BeatScorer``) -> (B,) ratings, higher is better.
ChunkScorer = Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]
# The three streams of the GPT's sequence (models.gpt: music, upper, lower at each step).
MUSIC, UPPER, LOWER = 0, 1, 2


class Networks(Protocol):
    """What a runtime offers: the three graphs of ``models.onnx_export``, numpy in and out."""

    runtime: str  # "onnx" or "torch"
    device: str  # "cpu" or "cuda"
    frames_per_token: int
    vqvae_config: dict[str, Any]  # the checkpoint's VQ-VAE config (models.vqvae.VQVAEConfig's fields)
    d_model: int
    context_steps: int  # the GPT's attention window, in steps

    def encode_music(self, music: np.ndarray) -> np.ndarray: ...

    def new_cache(self, batch: int = 1) -> Any:
        """An empty cache of ``batch`` rows (beat search's candidates), all alike."""
        ...

    def step(
        self, streams: np.ndarray, tokens: np.ndarray, music_steps: np.ndarray, cache: Any
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        """(n,) streams, (B, n) tokens, (n, d_model) music -> (B, codes) upper and lower logits
        of each row's last input, and the cache to pass next."""
        ...

    def keep_row(self, cache: Any, row: int, positions: int) -> Any:
        """The cache with every row as ``row``, whose last ``positions`` positions (fewer than a
        window) are the only ones the rows differ in; the one to pass next."""
        ...

    def decode(self, upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, L) tokens -> (B, 4L, 90) upper and (B, 4L, 58) lower motion vectors."""
        ...


def decoder_reach_tokens(vqvae_config: dict[str, Any]) -> int:
    """How many tokens to either side of a token the motion decoder's output frames depend on
    (``models.vqvae.Decoder``, rounded up): a kernel-3 convolution at the token rate, then per
    upsampling stage its dilated residual blocks (reach 3**i each) and a kernel-3 convolution at
    the doubled rate, then two more kernel-3 convolutions at the frame rate."""
    stages = int(vqvae_config["num_downsamples"])
    residual = sum(3**i for i in range(int(vqvae_config["res_blocks"])))
    reach = 1.0 + sum(residual / 2**stage + 1 / 2 ** (stage + 1) for stage in range(stages)) + 2 / 2**stages
    return math.ceil(reach)


def decode_spans(length: int, chunk: int, margin: int) -> list[tuple[int, int, int]]:
    """(chunk start, first kept, end kept) token indices covering ``range(length)`` with chunks of
    ``chunk`` tokens (one whole span when it is no longer): each kept token has ``margin`` tokens
    of its chunk on both sides, or the song's own start or end, so it decodes as in one pass."""
    if length <= chunk:
        return [(0, 0, length)]
    spans, kept = [], 0
    while kept < length:
        start = min(max(kept - margin, 0), length - chunk)
        end = length if start + chunk == length else start + chunk - margin
        spans.append((start, kept, end))
        kept = end
    return spans


def torch_installed() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def choose_runtime(weights: Path, runtime: str) -> str:
    """'auto' -> ONNX when ONNX Runtime is installed and the graphs are beside the weights, else torch."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime}")
    if runtime != "auto":
        return runtime
    if onnxruntime_module() is not None and have_graphs(weights):
        return "onnx"
    if torch_installed():
        return "torch"
    if not have_graphs(weights):
        raise CheckpointError(f"{weights}: has no ONNX graphs beside it, and torch (to run it) is not installed")
    raise CheckpointError("neither onnxruntime nor torch is installed: the generator cannot run")


@dataclass
class DanceGenerator:
    networks: Networks
    trained: bool
    source: str

    @property
    def frames_per_token(self) -> int:
        return self.networks.frames_per_token

    @property
    def runtime(self) -> str:
        return self.networks.runtime

    @property
    def device(self) -> str:
        return self.networks.device

    @classmethod
    def load(cls, weights: str | Path | None = None, device: str = "auto", runtime: str = "auto") -> DanceGenerator:
        """From a checkpoint (or its ONNX graphs); with nothing at the default place, untrained
        networks (torch only).

        device: auto / cuda / cpu. runtime: auto (ONNX Runtime when its graphs are there, else
        torch) / onnx / torch. Raises CheckpointError or ValueError with a one-line message.
        """
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device}")
        path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
        if weights is None and not path.exists() and not have_graphs(path):
            log.warning("no trained weights at %s: the networks are untrained", path)
            return cls.untrained(device)
        chosen = choose_runtime(path, runtime)
        if chosen == "onnx":
            return cls(OnnxNetworks.load(path, device), True, str(path))
        if not torch_installed():
            raise CheckpointError("runtime 'torch' was asked for, but torch is not installed (pip install .[torch])")
        if not path.is_file():
            raise CheckpointError(f"{path}: no such checkpoint")
        from .torch_runtime import TorchNetworks

        return cls(TorchNetworks.load(path, device), True, str(path))

    @classmethod
    def untrained(cls, device: str = "auto") -> DanceGenerator:
        if not torch_installed():
            raise CheckpointError(f"no trained weights at {DEFAULT_WEIGHTS}, and torch (for untrained ones) is missing")
        from .torch_runtime import TorchNetworks

        return cls(TorchNetworks.untrained(device), False, "untrained")

    def tokens(
        self,
        features: np.ndarray,
        sampling: SamplingConfig,
        progress: Callable[[float], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        score: ChunkScorer | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(T, FEATURE_DIM) features -> upper, lower tokens (L,) with L = ceil(T / frames_per_token).

        Each step is two calls: [lower token of the last step, music of this one] -> the upper
        token; [that upper token] -> the lower token. Only the new positions are computed; the
        cache holds the window behind them.

        With ``score`` and ``sampling.beat_candidates`` > 1, beat search (``beat_search``): each
        chunk of SEARCH_CHUNK_STEPS steps is sampled that many times from the same cache, the
        candidates side by side as the rows of one batch, and one continuation is kept: the
        highest of ``score(upper, lower, start, end)`` plus SEARCH_CHOICE_TEMPERATURE times Gumbel
        noise drawn from ``choice_noise(seed)``, one draw per candidate. A chunk's token draws
        are taken candidate by candidate (each candidate's steps in order), as if the candidates
        were sampled one after another, so a seed's dance does not depend on the batching.
        """
        networks = self.networks
        steps = -(-features.shape[0] // self.frames_per_token)
        padded = np.zeros((steps * self.frames_per_token, features.shape[1]), dtype=np.float32)
        padded[: features.shape[0]] = features
        padded[features.shape[0] :] = features[-1]
        music_steps = networks.encode_music(padded)
        no_music = np.zeros((1, networks.d_model), dtype=np.float32)
        sampler = TokenSampler(sampling)
        candidates = sampling.beat_candidates if score is not None else 1
        chunk = SEARCH_CHUNK_STEPS if candidates > 1 else max(1, steps // 100)
        upper = np.zeros((candidates, steps), dtype=np.int64)
        lower = np.zeros((candidates, steps), dtype=np.int64)
        cache = networks.new_cache(candidates)
        noise = choice_noise(sampling.seed)
        for first in range(0, steps, chunk):
            end = min(first + chunk, steps)
            draws = sampler.draws((candidates, end - first, 2))  # (candidate, step, upper / lower)
            positions = 0  # written in this chunk
            for t in range(first, end):
                if cancelled is not None and cancelled():
                    raise CancelledError()
                if t == 0:
                    streams, tokens, music = np.array([MUSIC]), np.zeros((candidates, 1), np.int64), music_steps[:1]
                else:  # the lower token of the last step and the music of this one go in one call
                    streams = np.array([LOWER, MUSIC])
                    tokens = np.stack([lower[:, t - 1], np.zeros(candidates, np.int64)], axis=1)
                    music = np.concatenate([no_music, music_steps[t : t + 1]])
                upper_logits, _, cache = networks.step(streams, tokens, music, cache)
                upper[:, t] = sampler.choose(upper_logits, draws[:, t - first, 0])
                _, lower_logits, cache = networks.step(np.array([UPPER]), upper[:, t : t + 1], no_music, cache)
                lower[:, t] = sampler.choose(lower_logits, draws[:, t - first, 1])
                positions += len(streams) + 1
            if candidates > 1:
                assert score is not None
                ratings = score(upper[:, :end], lower[:, :end], first, end)
                kept = int(np.argmax(ratings + SEARCH_CHOICE_TEMPERATURE * noise.gumbel(size=candidates)))
                upper[:, first:end] = upper[kept, first:end]
                lower[:, first:end] = lower[kept, first:end]
                cache = networks.keep_row(cache, kept, positions)
            if progress is not None:
                progress(end / steps)
        return upper[0], lower[0]

    def warm_up(self) -> None:
        """One short generation past a full window, plainly and by beat search with the default
        candidates, and a decode of one chunk, so that whatever a runtime prepares on first use
        (allocations; on the GPU, cuBLAS and cuDNN set-up and the CUDA graphs of both batches,
        the candidates' decoder shapes) is ready for the first song."""
        steps = self.networks.context_steps + WARM_UP_EXTRA_STEPS
        features = np.zeros((steps * self.frames_per_token, FEATURE_DIM), dtype=np.float32)
        self.decode(*self.tokens(features, SamplingConfig(seed=0, beat_candidates=1)))
        score = BeatScorer(features, self.decode_candidates, self.frames_per_token)
        self.tokens(features, SamplingConfig(seed=0), score=score)
        if self.device == "cuda":
            chunk = np.zeros((1, DECODE_CHUNK_TOKENS), dtype=np.int64)
            self.networks.decode(chunk, chunk)

    def decode_candidates(self, upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, L) tokens of a few seconds (beat search's candidates) -> (B, 4L, 90) upper and
        (B, 4L, 58) lower motion vectors, in one pass."""
        return self.networks.decode(np.asarray(upper, dtype=np.int64), np.asarray(lower, dtype=np.int64))

    def decode(
        self, upper: np.ndarray, lower: np.ndarray, in_chunks: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tokens (L,) -> upper (4L, 90), lower (4L, 58) motion vectors. ``in_chunks`` (None: on
        the GPU only): in chunks of DECODE_CHUNK_TOKENS (``decode_spans``), the frames of one pass
        (to float rounding) in one input shape."""
        upper, lower = np.asarray(upper, dtype=np.int64), np.asarray(lower, dtype=np.int64)
        if in_chunks is None:
            in_chunks = self.device == "cuda"
        if not in_chunks or len(upper) <= DECODE_CHUNK_TOKENS:
            whole = self.networks.decode(upper[None], lower[None])
            return whole[0][0], whole[1][0]
        spans = decode_spans(len(upper), DECODE_CHUNK_TOKENS, decoder_reach_tokens(self.networks.vqvae_config))
        frames = self.frames_per_token
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        for start, first, end in spans:
            chunk = slice(start, start + DECODE_CHUNK_TOKENS)
            decoded = self.networks.decode(upper[None, chunk], lower[None, chunk])
            kept = slice((first - start) * frames, (end - start) * frames)
            parts.append((decoded[0][0, kept], decoded[1][0, kept]))
        return np.concatenate([up for up, _ in parts]), np.concatenate([low for _, low in parts])
