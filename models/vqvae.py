"""The choreographic memory: a VQ-VAE over rotation streams, one codebook per body half.

Each half is a 1-D convolutional autoencoder over time (T2M-GPT's shape): the encoder
downsamples by ``2 ** num_downsamples`` and its output is snapped to the nearest entry of
an EMA-updated codebook; the decoder upsamples back to 6D joint rotations. The lower
half's decoder has a second head, the root branch, that outputs the root's heading
velocity, horizontal step and height (see ``backend.motion_representation``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F


@dataclass
class VQVAEConfig:
    upper_dim: int = 90  # 15 joints x 6D
    lower_dim: int = 54  # 9 joints x 6D
    root_dim: int = 4  # heading velocity, 2 horizontal steps, height offset
    width: int = 192  # convolution channels
    code_dim: int = 256  # codebook vector size
    num_codes: int = 512  # per half, as Bailando
    num_downsamples: int = 2  # x4 in time: 7.5 tokens/s at 30 fps (Bailando: x8 at 60 fps)
    res_blocks: int = 3  # dilated residual blocks per resolution
    ema_decay: float = 0.99  # codebook EMA (T2M-GPT, Bailando)
    dead_code_threshold: float = 1.0  # EMA usage under which a code is restarted

    @property
    def frames_per_token(self) -> int:
        return 2**self.num_downsamples


class ResBlock(nn.Module):
    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.proj = nn.Conv1d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(F.relu(self.conv(F.relu(x))))


def res_stack(width: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(width, 3**i) for i in range(count)))


class Encoder(nn.Module):
    """(B, in_dim, T) -> (B, code_dim, T / 2**num_downsamples)."""

    def __init__(self, in_dim: int, cfg: VQVAEConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(in_dim, cfg.width, 3, padding=1), nn.ReLU()]
        for _ in range(cfg.num_downsamples):
            layers += [nn.Conv1d(cfg.width, cfg.width, 4, stride=2, padding=1), res_stack(cfg.width, cfg.res_blocks)]
        layers.append(nn.Conv1d(cfg.width, cfg.code_dim, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """(B, code_dim, L) -> one (B, dim, L * 2**num_downsamples) tensor per output head."""

    def __init__(self, out_dims: tuple[int, ...], cfg: VQVAEConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(cfg.code_dim, cfg.width, 3, padding=1), nn.ReLU()]
        for _ in range(cfg.num_downsamples):
            layers += [
                res_stack(cfg.width, cfg.res_blocks),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv1d(cfg.width, cfg.width, 3, padding=1),
            ]
        layers += [nn.Conv1d(cfg.width, cfg.width, 3, padding=1), nn.ReLU()]
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleList(nn.Conv1d(cfg.width, dim, 3, padding=1) for dim in out_dims)

    def forward(self, codes: torch.Tensor) -> list[torch.Tensor]:
        hidden = self.trunk(codes)
        return [head(hidden) for head in self.heads]


class EMACodebook(nn.Module):
    """Nearest-neighbour quantiser whose entries follow an EMA of the vectors they win.

    Entries whose EMA usage drops under ``dead_code_threshold`` are restarted on random
    encoder outputs of the current batch, so the whole codebook stays in use.
    """

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        self.decay = cfg.ema_decay
        self.threshold = cfg.dead_code_threshold
        self.register_buffer("codebook", torch.zeros(cfg.num_codes, cfg.code_dim))
        self.register_buffer("ema_count", torch.ones(cfg.num_codes))
        self.register_buffer("ema_sum", torch.zeros(cfg.num_codes, cfg.code_dim))
        self.register_buffer("initialised", torch.tensor(False))

    def indices(self, vectors: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,) index of the nearest codebook entry."""
        distances = (
            vectors.pow(2).sum(1, keepdim=True) - 2 * vectors @ self.codebook.T + self.codebook.pow(2).sum(1)[None]
        )
        return distances.argmin(dim=1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, L) indices -> (B, code_dim, L) codebook vectors."""
        return F.embedding(indices, self.codebook).transpose(1, 2)

    @torch.no_grad()
    def _random_rows(self, vectors: torch.Tensor, count: int) -> torch.Tensor:
        repeats = (count + vectors.shape[0] - 1) // vectors.shape[0]
        pool = vectors.repeat(repeats, 1)
        return pool[torch.randperm(pool.shape[0], device=vectors.device)[:count]]

    @torch.no_grad()
    def _initialise(self, vectors: torch.Tensor) -> None:
        fresh = self._random_rows(vectors, self.codebook.shape[0])
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(fresh, src=0)
        self.codebook.copy_(fresh)
        self.ema_sum.copy_(fresh)
        self.ema_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _update(self, vectors: torch.Tensor, indices: torch.Tensor) -> None:
        one_hot = F.one_hot(indices, self.codebook.shape[0]).type(vectors.dtype)
        count = one_hot.sum(0)
        total = one_hot.T @ vectors
        fresh = self._random_rows(vectors, self.codebook.shape[0])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(count)
            dist.all_reduce(total)
            dist.broadcast(fresh, src=0)
        self.ema_count.mul_(self.decay).add_(count, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(total, alpha=1 - self.decay)
        alive = (self.ema_count >= self.threshold).unsqueeze(1)
        centre = self.ema_sum / self.ema_count.clamp(min=1e-5).unsqueeze(1)
        self.codebook.copy_(torch.where(alive, centre, fresh))
        self.ema_sum.copy_(torch.where(alive, self.ema_sum, fresh))
        self.ema_count.copy_(torch.where(alive.squeeze(1), self.ema_count, torch.ones_like(self.ema_count)))

    def forward(self, encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, D, L) encoder output -> quantised (B, D, L) (straight-through), indices (B, L), commit loss."""
        batch, dim, length = encoded.shape
        vectors = encoded.transpose(1, 2).reshape(-1, dim)
        if self.training:
            if not bool(self.initialised):
                self._initialise(vectors.detach().float())
            indices = self.indices(vectors.detach())
            self._update(vectors.detach().float(), indices)
        else:
            indices = self.indices(vectors)
        quantised = F.embedding(indices, self.codebook).view(batch, length, dim).transpose(1, 2)
        commit_loss = F.mse_loss(encoded, quantised.detach())
        quantised = encoded + (quantised - encoded).detach()
        return quantised, indices.view(batch, length), commit_loss

    def usage(self) -> float:
        """Fraction of entries whose EMA usage is above the restart threshold."""
        return float((self.ema_count >= self.threshold).float().mean())


class HalfBodyVQVAE(nn.Module):
    def __init__(self, in_dim: int, out_dims: tuple[int, ...], cfg: VQVAEConfig) -> None:
        super().__init__()
        self.encoder = Encoder(in_dim, cfg)
        self.quantiser = EMACodebook(cfg)
        self.decoder = Decoder(out_dims, cfg)


class MotionVQVAE(nn.Module):
    """Upper and lower halves, each (B, T, dim) in and out; T a multiple of frames_per_token."""

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.upper = HalfBodyVQVAE(cfg.upper_dim, (cfg.upper_dim,), cfg)
        self.lower = HalfBodyVQVAE(cfg.lower_dim + cfg.root_dim, (cfg.lower_dim, cfg.root_dim), cfg)
        # Root numbers span very different scales (rad/frame, m/frame, m): training sets
        # these from the data so that the network sees unit-scale inputs.
        self.register_buffer("root_mean", torch.zeros(cfg.root_dim))
        self.register_buffer("root_std", torch.ones(cfg.root_dim))

    def _lower_in(self, lower: torch.Tensor) -> torch.Tensor:
        rot, root = lower[..., : self.cfg.lower_dim], lower[..., self.cfg.lower_dim :]
        return torch.cat([rot, (root - self.root_mean) / self.root_std], dim=-1)

    def encode(self, upper: torch.Tensor, lower: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, 90), (B, T, 58) -> token indices (B, L), (B, L)."""
        up = self.upper.encoder(upper.transpose(1, 2))
        down = self.lower.encoder(self._lower_in(lower).transpose(1, 2))
        up_flat = up.transpose(1, 2).reshape(-1, up.shape[1])
        down_flat = down.transpose(1, 2).reshape(-1, down.shape[1])
        return (
            self.upper.quantiser.indices(up_flat).view(up.shape[0], -1),
            self.lower.quantiser.indices(down_flat).view(down.shape[0], -1),
        )

    def decode(self, upper_tokens: torch.Tensor, lower_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """token indices (B, L), (B, L) -> upper (B, 4L, 90), lower (B, 4L, 58) in the input's units."""
        (upper,) = self.upper.decoder(self.upper.quantiser.lookup(upper_tokens))
        rot, root = self.lower.decoder(self.lower.quantiser.lookup(lower_tokens))
        root = root.transpose(1, 2) * self.root_std + self.root_mean
        return upper.transpose(1, 2), torch.cat([rot.transpose(1, 2), root], dim=-1)

    def forward(self, upper: torch.Tensor, lower: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reconstruct both halves; returns reconstructions (normalised root) and losses' parts."""
        up_q, up_idx, up_commit = self.upper.quantiser(self.upper.encoder(upper.transpose(1, 2)))
        down_q, down_idx, down_commit = self.lower.quantiser(self.lower.encoder(self._lower_in(lower).transpose(1, 2)))
        (up_rec,) = self.upper.decoder(up_q)
        rot_rec, root_rec = self.lower.decoder(down_q)
        return {
            "upper": up_rec.transpose(1, 2),
            "lower_rotations": rot_rec.transpose(1, 2),
            "root_normalised": root_rec.transpose(1, 2),
            "upper_tokens": up_idx,
            "lower_tokens": down_idx,
            "commit_loss": up_commit + down_commit,
        }
