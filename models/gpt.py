"""The cross-conditional motion GPT: the next upper and lower tokens from music and history.

Each time step t (one token, ``frames_per_token`` motion frames) is three positions of one
causal sequence: ``[music_t, upper_t, lower_t]``. The hidden state at ``music_t`` predicts
``upper_t`` (it has seen the music up to t and both halves up to t-1); the hidden state at
``upper_t`` predicts ``lower_t`` (it has also seen ``upper_t``). So each half is
conditioned on the other's history, and the lower body on the upper body's current move,
Bailando's cross-conditional scheme in one plain causal transformer.

Positions are rotary (RoPE), so attention depends only on distances, and each position
attends to the last ``context_steps`` steps only: generation slides that window over a song
of any length, one cached step at a time, and computes exactly what the full pass would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

POSITIONS_PER_STEP = 3  # music, upper, lower
ROPE_BASE = 10_000.0  # RoPE frequency base (Su et al. 2021)


@dataclass
class GPTConfig:
    music_dim: int = 57  # backend.music_features.FEATURE_DIM
    frames_per_token: int = 4  # VQVAEConfig.frames_per_token
    num_upper_codes: int = 512
    num_lower_codes: int = 512
    context_steps: int = 60  # attention window in steps: 8 s at 7.5 steps/s
    d_model: int = 384
    num_layers: int = 6
    num_heads: int = 6
    dropout: float = 0.1
    music_kernel: int = 9  # frames seen around each frame by the music encoder (0.3 s at 30 fps)


class MusicEncoder(nn.Module):
    """(B, T, music_dim) raw features -> (B, T / frames_per_token, d_model), one vector per step.

    Not causal: the whole song is known, and a dancer may anticipate the next beat.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        # Per-feature statistics of the training songs (MFCCs span hundreds, the beat
        # columns one); training sets them, so callers pass features as computed.
        self.register_buffer("feature_mean", torch.zeros(cfg.music_dim))
        self.register_buffer("feature_std", torch.ones(cfg.music_dim))
        self.frame_conv = nn.Conv1d(cfg.music_dim, cfg.d_model, cfg.music_kernel, padding=cfg.music_kernel // 2)
        self.step_conv = nn.Conv1d(cfg.d_model, cfg.d_model, cfg.frames_per_token, stride=cfg.frames_per_token)

    def forward(self, music: torch.Tensor) -> torch.Tensor:
        music = (music - self.feature_mean) / self.feature_std
        return self.step_conv(F.gelu(self.frame_conv(music.transpose(1, 2)))).transpose(1, 2)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, N, head_dim) queries or keys by their absolute positions (N,)."""
    head_dim = x.shape[-1]
    inv_freq = ROPE_BASE ** (-torch.arange(0, head_dim, 2, device=x.device, dtype=torch.float32) / head_dim)
    angles = positions.to(torch.float32)[:, None] * inv_freq[None]
    angles = torch.cat([angles, angles], dim=-1)
    return (x * angles.cos() + rotate_half(x) * angles.sin()).to(x.dtype)


class KVCache:
    """Keys and values of the last ``max_positions`` positions, per layer, for generation."""

    def __init__(self, num_layers: int, max_positions: int) -> None:
        self.max_positions = max_positions
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.next_position = 0

    def extend(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        old_keys, old_values = self.keys[layer], self.values[layer]
        if old_keys is not None:
            keys = torch.cat([old_keys, keys], dim=2)
            values = torch.cat([old_values, values], dim=2)
        self.keys[layer] = keys[:, :, -self.max_positions :]
        self.values[layer] = values[:, :, -self.max_positions :]
        return keys, values


def window_mask(num_queries: int, num_keys: int, window: int, device: torch.device) -> torch.Tensor:
    """(num_queries, num_keys) bool: the queries are the last positions of the keys; each
    sees itself and the ``window - 1`` positions before it."""
    offset = torch.arange(num_queries, device=device)[:, None] + (num_keys - num_queries)
    offset = offset - torch.arange(num_keys, device=device)[None, :]
    return (offset >= 0) & (offset < window)


class CausalSelfAttention(nn.Module):
    """Causal attention over a sliding window of ``context_steps`` steps.

    Training on sequences longer than the window uses the same band as cached generation,
    so a cached step equals the full pass exactly, however long the song.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.window = cfg.context_steps * POSITIONS_PER_STEP
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
        q, k = rope(q, positions), rope(k, positions)
        if cache is not None:
            k, v = cache.extend(layer, k, v)
        if cache is None and length <= self.window:
            mask, causal = None, True
        else:
            mask, causal = window_mask(length, k.shape[2], self.window, x.device), False
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(y.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attention = CausalSelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, 4 * cfg.d_model),
            nn.GELU(),
            nn.Linear(4 * cfg.d_model, cfg.d_model),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), positions, cache, layer)
        return x + self.mlp(self.norm2(x))


class MotionGPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.music_encoder = MusicEncoder(cfg)
        self.upper_embedding = nn.Embedding(cfg.num_upper_codes, cfg.d_model)
        self.lower_embedding = nn.Embedding(cfg.num_lower_codes, cfg.d_model)
        self.stream_embedding = nn.Embedding(POSITIONS_PER_STEP, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.final_norm = nn.LayerNorm(cfg.d_model)
        self.upper_head = nn.Linear(cfg.d_model, cfg.num_upper_codes, bias=False)
        self.lower_head = nn.Linear(cfg.d_model, cfg.num_lower_codes, bias=False)
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(parameter, std=0.02 / math.sqrt(2 * cfg.num_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def transformer(self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        for layer, block in enumerate(self.blocks):
            x = block(x, positions, cache, layer)
        return self.final_norm(x)

    def music_input(self, music_steps: torch.Tensor) -> torch.Tensor:
        return music_steps + self.stream_embedding.weight[0]

    def upper_input(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.upper_embedding(tokens) + self.stream_embedding.weight[1]

    def lower_input(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.lower_embedding(tokens) + self.stream_embedding.weight[2]

    def forward(
        self, music: torch.Tensor, upper_tokens: torch.Tensor, lower_tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits for training.

        music (B, L * frames_per_token, music_dim) features as computed; tokens (B, L), any
        L (attention reaches back ``context_steps`` steps). Returns upper and lower logits (B, L, num_codes); position t
        predicts token t.
        """
        music_steps = self.music_encoder(music)
        batch, steps, width = music_steps.shape
        interleaved = torch.stack(
            [self.music_input(music_steps), self.upper_input(upper_tokens), self.lower_input(lower_tokens)], dim=2
        ).view(batch, steps * POSITIONS_PER_STEP, width)
        positions = torch.arange(steps * POSITIONS_PER_STEP, device=music.device)
        hidden = self.transformer(interleaved, positions).view(batch, steps, POSITIONS_PER_STEP, width)
        return self.upper_head(hidden[:, :, 0]), self.lower_head(hidden[:, :, 1])

    def new_cache(self) -> KVCache:
        return KVCache(self.cfg.num_layers, self.cfg.context_steps * POSITIONS_PER_STEP)

    def step(self, inputs: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Append (B, n, d_model) input vectors to the cached sequence; returns their hidden states."""
        positions = torch.arange(cache.next_position, cache.next_position + inputs.shape[1], device=inputs.device)
        cache.next_position += inputs.shape[1]
        return self.transformer(inputs, positions, cache)
