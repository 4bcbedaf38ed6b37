"""The trained (or, before training, freshly initialised) networks the pipeline runs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import read_checkpoint, restore_network
from models.gpt import GPTConfig, MotionGPT
from models.vqvae import MotionVQVAE, VQVAEConfig

from .errors import CancelledError
from .sampling import SamplingConfig, TokenSampler

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "weights" / "generator.safetensors"
UNTRAINED_INIT_SEED = 20_240_101  # fixed, so untrained networks are the same in every process


def pick_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA when torch sees a GPU, else CPU; 'cuda' or 'cpu' as asked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA GPU")
    return torch.device(device)


@dataclass
class DanceGenerator:
    vqvae: MotionVQVAE
    gpt: MotionGPT
    device: torch.device
    trained: bool
    source: str

    @property
    def frames_per_token(self) -> int:
        return self.vqvae.cfg.frames_per_token

    @classmethod
    def load(cls, weights: str | Path | None = None, device: str = "auto") -> DanceGenerator:
        """From a checkpoint; with no checkpoint at the default place, untrained networks."""
        chosen = pick_device(device)
        path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
        if weights is None and not path.exists():
            log.warning("no trained weights at %s: the networks are untrained", path)
            return cls.untrained(chosen)
        configs, tensors, _ = read_checkpoint(path)
        vqvae = restore_network(configs, tensors, "vqvae", VQVAEConfig, MotionVQVAE, str(path))
        gpt = restore_network(configs, tensors, "gpt", GPTConfig, MotionGPT, str(path))
        return cls(vqvae.to(chosen).eval(), gpt.to(chosen).eval(), chosen, True, str(path))

    @classmethod
    def untrained(cls, device: torch.device) -> DanceGenerator:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(UNTRAINED_INIT_SEED)
            vqvae, gpt = MotionVQVAE(VQVAEConfig()), MotionGPT(GPTConfig())
        # An untrained codebook is all zeros; spread it so that tokens decode differently.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(UNTRAINED_INIT_SEED + 1)
            for half in (vqvae.upper, vqvae.lower):
                half.quantiser.codebook.normal_()
        return cls(vqvae.to(device).eval(), gpt.to(device).eval(), device, False, "untrained")

    @torch.inference_mode()
    def tokens(
        self,
        features: np.ndarray,
        sampling: SamplingConfig,
        progress: Callable[[float], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(T, FEATURE_DIM) features -> upper, lower tokens (L,) with L = ceil(T / frames_per_token)."""
        steps = -(-features.shape[0] // self.frames_per_token)
        padded = np.zeros((steps * self.frames_per_token, features.shape[1]), dtype=np.float32)
        padded[: features.shape[0]] = features
        padded[features.shape[0] :] = features[-1]
        music = torch.from_numpy(padded).to(self.device)[None]
        music_steps = self.gpt.music_encoder(music)
        sampler = TokenSampler(sampling)
        cache = self.gpt.new_cache()
        upper = np.zeros(steps, dtype=np.int64)
        lower = np.zeros(steps, dtype=np.int64)
        pending = self.gpt.music_input(music_steps[:, :1])
        report_every = max(1, steps // 100)
        for t in range(steps):
            if cancelled is not None and cancelled():
                raise CancelledError()
            hidden = self.gpt.step(pending, cache)[:, -1:]
            upper[t] = sampler(self.gpt.upper_head(hidden)[0, 0].float().cpu().numpy())
            up_token = torch.tensor([[upper[t]]], device=self.device)
            hidden = self.gpt.step(self.gpt.upper_input(up_token), cache)
            lower[t] = sampler(self.gpt.lower_head(hidden)[0, 0].float().cpu().numpy())
            down_token = torch.tensor([[lower[t]]], device=self.device)
            pending = self.gpt.lower_input(down_token)
            if t + 1 < steps:
                # The lower token of this step and the music of the next go in one call.
                pending = torch.cat([pending, self.gpt.music_input(music_steps[:, t + 1 : t + 2])], dim=1)
            if progress is not None and (t % report_every == 0 or t == steps - 1):
                progress((t + 1) / steps)
        return upper, lower

    @torch.inference_mode()
    def decode(self, upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens (L,) -> upper (4L, 90), lower (4L, 58) motion vectors."""
        up = torch.from_numpy(np.asarray(upper, dtype=np.int64)).to(self.device)[None]
        down = torch.from_numpy(np.asarray(lower, dtype=np.int64)).to(self.device)[None]
        upper_motion, lower_motion = self.vqvae.decode(up, down)
        return upper_motion[0].float().cpu().numpy(), lower_motion[0].float().cpu().numpy()
