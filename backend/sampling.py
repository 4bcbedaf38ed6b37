"""Choosing a token from logits: temperature and top-k, seeded, in plain numpy.

Kept out of the networks so that every runtime that produces logits samples the same way:
the same seed and the same logits give the same token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.files import MAX_BATCH

# Continuations sampled per chunk by beat search (``beat_search``): with the drawn choice, 8 held
# unseen songs' beat at 0.253-0.265 in the prototype sweep at 3 m where 6 gave 0.235-0.251 (model card:
# Version 7; the product's report at 8: 0.240); 1 samples plainly, as fast as the GPT runs
# (search costs that many times its time, and more).
DEFAULT_BEAT_CANDIDATES = 8
MAX_BEAT_CANDIDATES = MAX_BATCH  # the graphs' batch axis allows no more


@dataclass(frozen=True)
class SamplingConfig:
    """temperature > 0 (1 = the model's own distribution; lower = safer, more repetitive);
    top_k: sample among the k likeliest tokens (0 = all); beat_candidates: continuations beat
    search tries per chunk (1 = none)."""

    seed: int = 0
    temperature: float = 1.0
    top_k: int = 0
    beat_candidates: int = DEFAULT_BEAT_CANDIDATES

    def validate(self) -> None:
        if not np.isfinite(self.temperature) or self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 1 <= self.beat_candidates <= MAX_BEAT_CANDIDATES:
            raise ValueError(f"beat_candidates must be in [1, {MAX_BEAT_CANDIDATES}], got {self.beat_candidates}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {self.seed}")


class TokenSampler:
    """Chooses tokens for a batch of rows at once, each from its own uniform draw.

    A row's token is the one whose share of the cumulative (temperature-scaled, top-k) weights
    the draw lands in; the draws come from the config's seed in the order the caller takes them
    (``draws``), so a caller that takes them as one row after another sampled gets the same tokens.
    """

    def __init__(self, config: SamplingConfig) -> None:
        config.validate()
        self.config = config
        self.rng = np.random.default_rng(config.seed)

    def draws(self, shape: tuple[int, ...]) -> np.ndarray:
        """The next uniform [0, 1) draws of the seed's stream, in C order of ``shape``."""
        return self.rng.random(shape)

    def choose(self, logits: np.ndarray, draws: np.ndarray) -> np.ndarray:
        """(B, num_codes) logits and (B,) draws -> (B,) int64 token indices."""
        scaled = np.asarray(logits, dtype=np.float64) / self.config.temperature
        k = self.config.top_k
        if 0 < k < scaled.shape[-1]:
            threshold = np.partition(scaled, -k, axis=-1)[:, -k:].min(axis=-1, keepdims=True)
            scaled = np.where(scaled >= threshold, scaled, -np.inf)
        weights = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
        cumulative = np.cumsum(weights, axis=-1)
        target = draws * cumulative[:, -1]
        # The first index whose cumulative weight exceeds the target (a right-sided search).
        chosen = (cumulative <= target[:, None]).sum(axis=-1)
        return np.minimum(chosen, scaled.shape[-1] - 1).astype(np.int64)

    def __call__(self, logits: np.ndarray) -> int:
        """(num_codes,) logits -> one token index, from the next draw."""
        return int(self.choose(np.asarray(logits)[None], self.draws((1,)))[0])
