"""The critic of the actor-critic stage: the expected future beat reward of each step.

A small causal transformer over one vector per step (music + upper + lower token
embeddings); its value head estimates, at each step, the discounted reward still to come,
which the actor-critic finetuning subtracts from the returns (Bailando, Sec. 3.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .gpt import Block, GPTConfig, MusicEncoder, rope_tables, sequence_mask


@dataclass
class CriticConfig:
    music_dim: int = 57  # backend.music_features.FEATURE_DIM
    frames_per_token: int = 4
    num_upper_codes: int = 512
    num_lower_codes: int = 512
    context_steps: int = 60
    d_model: int = 256
    num_layers: int = 2
    num_heads: int = 4
    dropout: float = 0.1
    music_kernel: int = 9

    def as_gpt_config(self) -> GPTConfig:
        return GPTConfig(
            music_dim=self.music_dim,
            frames_per_token=self.frames_per_token,
            num_upper_codes=self.num_upper_codes,
            num_lower_codes=self.num_lower_codes,
            context_steps=self.context_steps,
            d_model=self.d_model,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            dropout=self.dropout,
            music_kernel=self.music_kernel,
        )


class Critic(nn.Module):
    def __init__(self, cfg: CriticConfig) -> None:
        super().__init__()
        self.cfg = cfg
        block_cfg = cfg.as_gpt_config()
        self.music_encoder = MusicEncoder(block_cfg)
        self.upper_embedding = nn.Embedding(cfg.num_upper_codes, cfg.d_model)
        self.lower_embedding = nn.Embedding(cfg.num_lower_codes, cfg.d_model)
        self.blocks = nn.ModuleList(Block(block_cfg) for _ in range(cfg.num_layers))
        self.final_norm = nn.LayerNorm(cfg.d_model)
        self.value_head = nn.Linear(cfg.d_model, 1)

    def forward(self, music: torch.Tensor, upper_tokens: torch.Tensor, lower_tokens: torch.Tensor) -> torch.Tensor:
        """music (B, L * frames_per_token, music_dim), tokens (B, L) -> values (B, L)."""
        x = self.music_encoder(music) + self.upper_embedding(upper_tokens) + self.lower_embedding(lower_tokens)
        positions = torch.arange(x.shape[1], device=x.device)
        rotary = rope_tables(positions, self.cfg.d_model // self.cfg.num_heads)
        mask = sequence_mask(x.shape[1], self.blocks[0].attention.window, x.device)
        for block in self.blocks:
            x, _, _ = block(x, rotary, mask)
        return self.value_head(self.final_norm(x)).squeeze(-1)
