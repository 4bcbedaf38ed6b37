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
# A ring cache's slot count is a multiple of this, so each row of the ring's scores and mask
# starts 32-byte aligned for the batched products (184 slots: the configuration measured).
RING_ALIGN = 8


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

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def window_positions(self) -> int:
        """The attention window in sequence positions (three a step)."""
        return self.context_steps * POSITIONS_PER_STEP

    def cache_shape(self, batch: int, positions: int) -> tuple[int, int, int, int, int]:
        """Keys or values of ``positions`` cached positions: (num_layers, batch, num_heads, positions, head_dim)."""
        return (self.num_layers, batch, self.num_heads, positions, self.head_dim)


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


def rope_angles(positions: torch.Tensor, head_dim: int) -> torch.Tensor:
    """(N,) absolute positions -> (N, head_dim / 2) angles, radians: each position times each
    feature pair's frequency, ROPE_BASE ** (-2i / head_dim)."""
    inv_freq = ROPE_BASE ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    return positions.to(torch.float32)[:, None] * inv_freq[None]


def rope_tables(positions: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) absolute positions -> cos and signed sin (N, head_dim): computed once per pass,
    shared by every layer's queries and keys. The sin's first half is negated, so that ``rope``
    is a roll and two products (3 kernels, not the 5 of rotate-half's split, negate and join)."""
    angles = rope_angles(positions, head_dim)
    sin = angles.sin()
    return torch.cat([angles, angles], dim=-1).cos(), torch.cat([-sin, sin], dim=-1)


def ring_rotations(positions: torch.Tensor, head_dim: int) -> torch.Tensor:
    """(N,) absolute positions -> (N, 3, head_dim, head_dim): for each position, matrices R with
    x @ R = ``rope`` of x there for its queries and its keys (the cos on the diagonal, each
    feature's signed sin in its partner's row: the roll), and the identity for its values. A
    ring step turns all of a layer's projections with one batched product, where the roll took
    six small kernels (and splitting queries and keys from values, unequal parts, made ONNX
    Runtime's CUDA provider copy the split's sizes to the GPU every call).

    Built as cos * C + sin * S + V from three constant (3, head_dim, head_dim) patterns (C the
    diagonals of the queries' and keys' blocks, S their partners with the sin's sign, V the
    values' identity): two products and two sums, four nodes fewer in ONNX Runtime's optimised
    graph than stacking the blocks, and exactly rope's values (each entry takes one term, the
    others are zeros)."""
    angles = rope_angles(positions, head_dim)
    angles = torch.cat([angles, angles], dim=-1)[:, None, None, :]  # (N, 1, 1, head_dim), by output column
    identity = torch.eye(head_dim, device=positions.device)
    partner = identity.roll(head_dim // 2, dims=0)  # partner[i, j] = 1 where i = j + head_dim / 2 (mod)
    # made on the positions' device: a copy from the host cannot be captured in a CUDA graph
    half = head_dim // 2
    sign = torch.cat([torch.full((half,), -1.0, device=positions.device), torch.ones(half, device=positions.device)])
    none = torch.zeros_like(identity)
    diagonals = torch.stack([identity, identity, none])
    partners = torch.stack([partner * sign, partner * sign, none])
    values = torch.stack([none, none, identity])
    return angles.cos() * diagonals + angles.sin() * partners + values


def rope(x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate (..., N, head_dim) queries and/or keys by their positions' ``rope_tables``: each
    pair (x_i, x_i+half) turns by its angle, x_i cos - x_i+half sin, x_i+half cos + x_i sin."""
    cos, signed_sin = rotary
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), signed_sin).to(x.dtype)


def ring_slots(cfg: GPTConfig, max_inputs: int) -> int:
    """Slots of a ring cache for calls of up to ``max_inputs`` positions: the window, plus room
    so that writing the last input never overwrites what the first still sees, rounded up to
    ``RING_ALIGN``."""
    needed = cfg.window_positions + max_inputs - 1
    return -(-needed // RING_ALIGN) * RING_ALIGN


@dataclass
class KVCache:
    """Keys and values of the last ``window`` positions, for generation one step at a time.

    keys, values: (num_layers, B, num_heads, P, head_dim), P <= window (None before the first step);
    next_position: the absolute position the next input takes.
    """

    keys: torch.Tensor | None = None
    values: torch.Tensor | None = None
    next_position: int = 0


def window_mask(num_queries: int, num_keys: int, window: int, device: torch.device) -> torch.Tensor:
    """(num_queries, num_keys) bool: the queries are the last positions of the keys; each
    sees itself and the ``window - 1`` positions before it."""
    offset = torch.arange(num_queries, device=device)[:, None] + (num_keys - num_queries)
    offset = offset - torch.arange(num_keys, device=device)[None, :]
    return (offset >= 0) & (offset < window)


def sequence_mask(length: int, window: int, device: torch.device) -> torch.Tensor | None:
    """The attention mask of a whole sequence: None (plain causal) when it fits in the window."""
    return None if length <= window else window_mask(length, length, window, device)


class CausalSelfAttention(nn.Module):
    """Causal attention over a sliding window of ``context_steps`` steps.

    Training on sequences longer than the window uses the same band as cached generation,
    so a cached step equals the full pass exactly, however long the song.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.window = cfg.window_positions
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None = None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        ring: tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, n, d_model) with its positions' ``rope_tables``, after the cached ``past`` keys
        and values (B, H, P, head_dim) if any; mask (n, P + n) bool, None for plain causal ->
        output (B, n, d_model), and the keys and values of the P + n positions attended over.

        Or, instead of ``past``, a ring: keys and values (B, H, R, head_dim) written at ``slots``
        (n,), in place or (``in_place`` False) into a copy, and attended over whole; then rotary
        is (n, 3, head_dim, head_dim), the positions' ``ring_rotations``, and mask is (n, R)
        float, 0 where an input sees a slot and -inf where not."""
        batch, length, width = x.shape
        if ring is not None:
            ring_keys, ring_values, slots, in_place = ring
            # (n, 3, B * H, head_dim) @ (n, 3, head_dim, head_dim): each position's queries and
            # keys of all rows and heads turned, its values kept, in one product of B * H rows
            # (rather than B products of H rows, each with its copy of the rotations); then
            # (3, B, H, n, head_dim).
            projected = self.qkv(x).view(batch, length, 3, self.num_heads, -1).permute(1, 2, 0, 3, 4)
            turned = (projected.reshape(length, 3, batch * self.num_heads, -1) @ rotary).view(projected.shape)
            q, k, v = turned.permute(1, 2, 3, 0, 4).unbind(0)
            if in_place:  # the CUDA graph's ring: its own memory, no copy
                ring_keys.index_copy_(2, slots, k)
                ring_values.index_copy_(2, slots, v)
            else:  # an ONNX graph cannot write its inputs
                # A scatter of whole head_dim rows at (row, head, slot), ONNX's ScatterND; index_copy
                # exports as a transpose of the whole ring, a scatter along its first axis and a
                # transpose back, and a scatter of single elements (ScatterElements) computes each
                # element's place: 15 % of a call for 8 candidates on a 2-core CPU.
                rows = torch.arange(batch, device=slots.device)[:, None, None]
                heads = torch.arange(self.num_heads, device=slots.device)[None, :, None]
                where = (rows, heads, slots[None, None, :])
                ring_keys, ring_values = ring_keys.index_put(where, k), ring_values.index_put(where, v)
            # One or two queries against the ring: scaled scores plus the mask's bias in one
            # batched product, a softmax, a product. Fewer and shorter kernels than the fused
            # attention, which is made for long blocks of queries (23 us a layer on an H200).
            heads = batch * self.num_heads
            scores = torch.baddbmm(
                mask.expand(heads, length, -1),
                q.reshape(heads, length, -1),
                ring_keys.flatten(0, 1).transpose(1, 2),
                alpha=q.shape[-1] ** -0.5,
            )
            y = (scores.softmax(dim=-1) @ ring_values.flatten(0, 1)).view(batch, self.num_heads, length, -1)
            return self.proj(y.transpose(1, 2).reshape(batch, length, width)), ring_keys, ring_values
        # (3, B, H, n, head_dim); queries and keys rotated together, half the small kernels.
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        (q, k), v = rope(qkv[:2], rotary), qkv[2]
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(y.transpose(1, 2).reshape(batch, length, width)), k, v


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

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None = None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        ring: tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attended, keys, values = self.attention(self.norm1(x), rotary, mask, past, ring)
        x = x + attended
        return x + self.mlp(self.norm2(x)), keys, values


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

    def transformer(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        rotary = rope_tables(positions, self.cfg.head_dim)
        mask = sequence_mask(x.shape[1], self.cfg.window_positions, x.device)
        for block in self.blocks:
            x, _, _ = block(x, rotary, mask)
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

    def embed(self, streams: torch.Tensor, tokens: torch.Tensor, music_steps: torch.Tensor) -> torch.Tensor:
        """Input vectors of mixed positions: streams (B, n) 0 music / 1 upper / 2 lower, tokens
        (B, n) (read where the stream is 1 or 2), music_steps (B, n, d_model) (read where it is 0)."""
        upper = self.upper_embedding(tokens.clamp(0, self.cfg.num_upper_codes - 1))
        lower = self.lower_embedding(tokens.clamp(0, self.cfg.num_lower_codes - 1))
        stream = streams[..., None]
        chosen = torch.where(stream == 0, music_steps, torch.where(stream == 1, upper, lower))
        return chosen + self.stream_embedding(streams)

    def cached_step(
        self, inputs: torch.Tensor, position: torch.Tensor, past_keys: torch.Tensor, past_values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Append inputs (B, n, d_model) to a cached sequence; position: () int64, where inputs[:, 0] sits.

        past_keys, past_values: (num_layers, B, num_heads, P, head_dim), the last P <= window
        positions (P = 0 at the start). Returns the inputs' hidden states (B, n, d_model) and the
        cache with them appended, trimmed to the last window positions. Tensors only, no Python
        state, so the generation step exports to ONNX as it runs here.
        """
        count = inputs.shape[1]
        positions = position + torch.arange(count, device=inputs.device)
        window = self.cfg.window_positions
        rotary = rope_tables(positions, self.cfg.head_dim)
        mask = window_mask(count, past_keys.shape[3] + count, window, inputs.device)
        x, keys, values = inputs, [], []
        for layer, block in enumerate(self.blocks):
            x, k, v = block(x, rotary, mask, (past_keys[layer], past_values[layer]))
            keys.append(k[:, :, -window:])
            values.append(v[:, :, -window:])
        return self.final_norm(x), torch.stack(keys), torch.stack(values)

    def generation_step(
        self,
        streams: torch.Tensor,
        tokens: torch.Tensor,
        music_steps: torch.Tensor,
        position: torch.Tensor,
        past_keys: torch.Tensor,
        past_values: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One call of generation (see ``embed`` and ``cached_step``): the upper and lower logits
        (B, num_codes) of the last input, and the new cache. Torch runs this on the CPU; on the GPU
        and in the ONNX graph the same step runs on a ring (``ring_step_at``)."""
        inputs = self.embed(streams, tokens, music_steps)
        hidden, keys, values = self.cached_step(inputs, position, past_keys, past_values)
        last = hidden[:, -1]
        return self.upper_head(last), self.lower_head(last), keys, values

    def ring_generation_step(
        self,
        streams: torch.Tensor,
        tokens: torch.Tensor,
        music_steps: torch.Tensor,
        position: torch.Tensor,
        ring_keys: torch.Tensor,
        ring_values: torch.Tensor,
        slot_positions: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``generation_step`` with its cache in a ring updated in place: the same logits, and no
        tensor that grows, shrinks or is copied, so one CUDA graph serves every call of a song.

        ring_keys, ring_values: (num_layers, B, num_heads, R, head_dim) with R from ``ring_slots``;
        slot_positions: (R,) int64, the absolute position each slot holds (``models.files.EMPTY_SLOT`` before
        any). The inputs go to slots position % R; each attends to the slots whose positions are
        in its window.
        """
        positions = position + torch.arange(streams.shape[1], device=streams.device)
        last, *_ = self.ring_step_at(streams, tokens, music_steps, positions, ring_keys, ring_values, slot_positions)
        return self.upper_head(last), self.lower_head(last)

    def ring_step_at(
        self,
        streams: torch.Tensor,
        tokens: torch.Tensor,
        music_steps: torch.Tensor,
        positions: torch.Tensor,
        ring_keys: torch.Tensor,
        ring_values: torch.Tensor,
        slot_positions: torch.Tensor,
        in_place: bool = True,
    ) -> tuple[torch.Tensor, ...]:
        """``ring_generation_step`` given the inputs' (n,) absolute positions rather than the
        first: the ONNX graph takes them so, and holds no op that reads a shape to make data
        (such an op runs on the CPU, and a CUDA graph cannot replay what crosses the bus).
        -> the last input's hidden state (B, d_model), for the heads, and the ring's keys,
        values and slot positions: the ones given, written in place, or (``in_place`` False, for
        the ONNX graph) new ones, the keys and values then as tuples of one (B, num_heads, R,
        head_dim) tensor per layer.

        ring_keys, ring_values: stacked (num_layers, ...) tensors, or sequences of per-layer
        tensors: the ONNX graph takes and returns each layer's apart, since slicing a stacked
        input and stacking the output copy the whole ring twice more per call."""
        inputs = self.embed(streams, tokens, music_steps)
        slots = positions % slot_positions.shape[0]
        if in_place:
            slot_positions.index_copy_(0, slots, positions)
        else:
            slot_positions = slot_positions.index_copy(0, slots, positions)
        distance = positions[:, None] - slot_positions[None, :]
        seen = (distance >= 0) & (distance < self.cfg.window_positions)
        mask = torch.where(seen, 0.0, float("-inf")).to(inputs.dtype)
        rotary = ring_rotations(positions, self.cfg.head_dim)
        x, keys, values = inputs, [], []
        for layer, block in enumerate(self.blocks):
            x, k, v = block(x, rotary, mask, ring=(ring_keys[layer], ring_values[layer], slots, in_place))
            keys.append(k)
            values.append(v)
        if not in_place:
            ring_keys, ring_values = tuple(keys), tuple(values)
        return self.final_norm(x)[:, -1], ring_keys, ring_values, slot_positions

    def empty_cache(self, batch: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        shape = self.cfg.cache_shape(batch, 0)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def new_cache(self) -> KVCache:
        return KVCache()

    def step(self, inputs: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Append (B, n, d_model) input vectors to the cached sequence; returns their hidden states."""
        if cache.keys is None or cache.values is None:
            cache.keys, cache.values = self.empty_cache(inputs.shape[0], inputs.device)
        position = torch.tensor(cache.next_position, device=inputs.device)
        hidden, cache.keys, cache.values = self.cached_step(inputs, position, cache.keys, cache.values)
        cache.next_position += inputs.shape[1]
        return hidden
