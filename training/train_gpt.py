"""Stage 2: the motion GPT learns which moves follow which, given the music.

    python -m training.train_gpt --data data/dataset.npz --vqvae runs/vqvae/vqvae.safetensors \
        --out runs/gpt --minutes 8

The frozen VQ-VAE turns every training dance into upper/lower tokens, once for each of
the four frame phases of its 4-frame tokens (four times the data). Resumes from
``<out>/train_state.pt``; keeps the weights with the lowest held-out loss in
``<out>/gpt.safetensors`` and, with ``--keep-every N``, the weights every N steps as
``<out>/gpt_<step>.safetensors`` (fp16, as shipped), so that later steps can be judged by the
dances they make and not by the held-out loss alone.

``--music-noise S`` adds Gaussian noise of S times each music feature's standard deviation
(over the training songs) to the music of every training batch: with 37 dances the GPT learns
which move goes with which moment of which song within a few hundred steps, and noise on the
music leaves it less to recognise a song by.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from models.checkpoint import read_checkpoint, restore_network, save_checkpoint
from models.gpt import GPTConfig, MotionGPT
from models.vqvae import MotionVQVAE, VQVAEConfig

from .common import Dataset, Logger, load_train_state, optimiser_step, save_train_state, setup_distributed


@dataclass
class TrainConfig:
    steps_per_window: int = 60  # tokens per training sequence (8 s), the attention window
    batch: int = 128  # sequences per step, per GPU
    learning_rate: float = 3e-4
    weight_decay: float = 0.1
    warmup_steps: int = 300
    dropout: float = 0.3  # high: 43 dances are memorised within a few hundred steps at 0.1
    # Share of input tokens swapped for random ones (targets untouched), so that the model
    # learns to recover from its own sampling slips instead of copying the history.
    token_corruption: float = 0.2
    music_noise: float = 0.0  # noise on the training music, in units of each feature's std; 0: none
    eval_every: int = 250
    keep_every: int = 0  # steps between kept snapshots (a multiple of eval_every); 0: none
    log_every: int = 50


@dataclass
class TokenSequence:
    upper: np.ndarray  # (L,) int64
    lower: np.ndarray  # (L,) int64
    music: np.ndarray  # (4L, 57) float32


@torch.no_grad()
def tokenize(data: Dataset, dances: list[int], vqvae: MotionVQVAE, device: torch.device) -> list[TokenSequence]:
    per_token = vqvae.cfg.frames_per_token
    sequences = []
    for dance in dances:
        for phase in range(per_token):
            count = (len(data.upper[dance]) - phase) // per_token
            frames = slice(phase, phase + count * per_token)
            upper = torch.from_numpy(data.upper[dance][frames]).to(device)[None]
            lower = torch.from_numpy(data.lower[dance][frames]).to(device)[None]
            up_tokens, low_tokens = vqvae.encode(upper, lower)
            sequences.append(
                TokenSequence(up_tokens[0].cpu().numpy(), low_tokens[0].cpu().numpy(), data.features[dance][frames])
            )
    return sequences


def sample_batch(rng: np.random.Generator, sequences: list[TokenSequence], steps: int, batch: int, per_token: int):
    lengths = np.array([len(s.upper) for s in sequences], dtype=np.float64)
    usable = np.maximum(lengths - steps + 1, 0)
    picks = rng.choice(len(sequences), size=batch, p=usable / usable.sum())
    upper, lower, music = [], [], []
    for pick in picks:
        start = int(rng.integers(0, usable[pick]))
        sequence = sequences[pick]
        upper.append(sequence.upper[start : start + steps])
        lower.append(sequence.lower[start : start + steps])
        music.append(sequence.music[start * per_token : (start + steps) * per_token])
    return (torch.from_numpy(np.stack(x)) for x in (music, upper, lower))


def corrupt(tokens: torch.Tensor, share: float, num_codes: int) -> torch.Tensor:
    """Replace a random ``share`` of the tokens with uniformly random codes."""
    if share <= 0:
        return tokens
    swap = torch.rand(tokens.shape, device=tokens.device) < share
    return torch.where(swap, torch.randint_like(tokens, num_codes), tokens)


def noisy_music(music: torch.Tensor, feature_std: torch.Tensor, scale: float) -> torch.Tensor:
    """(B, frames, music_dim) music features plus Gaussian noise of ``scale`` x each feature's std."""
    if scale <= 0:
        return music
    music = music.float()
    return music + scale * feature_std * torch.randn_like(music)


def token_loss(
    model: torch.nn.Module,
    music: torch.Tensor,
    upper: torch.Tensor,
    lower: torch.Tensor,
    corruption: float = 0.0,
    num_codes: int = 512,
) -> torch.Tensor:
    upper_logits, lower_logits = model(
        music, corrupt(upper, corruption, num_codes), corrupt(lower, corruption, num_codes)
    )
    return F.cross_entropy(upper_logits.flatten(0, 1).float(), upper.flatten()) + F.cross_entropy(
        lower_logits.flatten(0, 1).float(), lower.flatten()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--vqvae", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=TrainConfig.batch, help="sequences per step, per GPU")
    parser.add_argument("--dropout", type=float, default=TrainConfig.dropout)
    parser.add_argument("--token-corruption", type=float, default=TrainConfig.token_corruption)
    parser.add_argument(
        "--music-noise",
        type=float,
        default=TrainConfig.music_noise,
        help="Gaussian noise on the training music, in units of each feature's standard deviation",
    )
    parser.add_argument(
        "--eval-every", type=int, default=TrainConfig.eval_every, help="steps between held-out evaluations"
    )
    parser.add_argument(
        "--keep-every",
        type=int,
        default=TrainConfig.keep_every,
        help="keep the weights every N steps, a multiple of --eval-every (0: never)",
    )
    parser.add_argument(
        "--without-mirrored",
        action="store_true",
        help="train and score on the captures' own handedness only (no mirrored copies)",
    )
    args = parser.parse_args()
    if args.batch < 1:
        parser.error(f"--batch must be >= 1, got {args.batch}")
    if not 0 <= args.dropout < 1:
        parser.error(f"--dropout must be in [0, 1), got {args.dropout}")
    if not 0 <= args.token_corruption <= 1:
        parser.error(f"--token-corruption must be in [0, 1], got {args.token_corruption}")
    if args.music_noise < 0:
        parser.error(f"--music-noise must be >= 0, got {args.music_noise}")
    if args.eval_every < 1:
        parser.error(f"--eval-every must be >= 1, got {args.eval_every}")
    if args.keep_every < 0 or args.keep_every % args.eval_every:
        parser.error(f"--keep-every must be a multiple of --eval-every ({args.eval_every}), got {args.keep_every}")
    cfg = TrainConfig(
        batch=args.batch,
        dropout=args.dropout,
        token_corruption=args.token_corruption,
        music_noise=args.music_noise,
        eval_every=args.eval_every,
        keep_every=args.keep_every,
    )
    env = setup_distributed()
    torch.manual_seed(env.rank)
    rng = np.random.default_rng(2000 + env.rank)
    data = Dataset.load(args.data)

    configs, tensors, _ = read_checkpoint(args.vqvae)
    vqvae = restore_network(configs, tensors, "vqvae", VQVAEConfig, MotionVQVAE, str(args.vqvae))
    vqvae.to(env.device).eval()
    mirrored = not args.without_mirrored
    train = tokenize(data, data.indices(held_out=False, mirrored=mirrored), vqvae, env.device)
    held = tokenize(data, data.indices(held_out=True, mirrored=mirrored), vqvae, env.device)
    per_token = vqvae.cfg.frames_per_token

    gpt = MotionGPT(GPTConfig(frames_per_token=per_token, context_steps=cfg.steps_per_window, dropout=cfg.dropout))
    features = np.concatenate([s.music for s in train])
    gpt.music_encoder.feature_mean.copy_(torch.tensor(features.mean(0)))
    gpt.music_encoder.feature_std.copy_(torch.tensor(features.std(0) + 1e-4))
    gpt.to(env.device)
    decay = [p for n, p in gpt.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in gpt.named_parameters() if p.dim() < 2]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
        betas=(0.9, 0.95),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    state_path = args.out / "train_state.pt"
    step = load_train_state(state_path, gpt, optimiser)
    model = env.wrap(gpt)
    logger = Logger(args.out / "log.jsonl", env.main)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if env.device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    eval_rng = np.random.default_rng(0)
    held_batches = [
        [t.to(env.device) for t in sample_batch(eval_rng, held, cfg.steps_per_window, 64, per_token)] for _ in range(4)
    ]
    best_path = args.out / "gpt.safetensors"
    best = float(read_checkpoint(best_path)[2].get("held_out_loss", "inf")) if best_path.exists() else float("inf")
    deadline = time.monotonic() + args.minutes * 60
    while env.keep_going(step < args.max_steps and time.monotonic() < deadline):
        gpt.train()
        music, upper, lower = (
            t.to(env.device) for t in sample_batch(rng, train, cfg.steps_per_window, cfg.batch, per_token)
        )
        for group in optimiser.param_groups:
            group["lr"] = cfg.learning_rate * min(1.0, (step + 1) / cfg.warmup_steps)
        music = noisy_music(music, gpt.music_encoder.feature_std, cfg.music_noise)
        with autocast:
            loss = token_loss(model, music, upper, lower, cfg.token_corruption, gpt.cfg.num_upper_codes)
        optimiser_step(optimiser, loss, gpt.parameters(), max_grad_norm=1.0)
        step += 1
        if step % cfg.log_every == 0:
            logger.log(step, loss=loss.item())
        if step % cfg.eval_every == 0 and env.main:
            gpt.eval()
            with torch.no_grad(), autocast:
                held_loss = float(np.mean([token_loss(gpt, *batch).item() for batch in held_batches]))
            logger.log(step, held_out_loss=held_loss)
            record = {"steps": str(step), "held_out_loss": f"{held_loss:.4f}"}
            if held_loss < best:
                best = held_loss
                save_checkpoint(best_path, {"gpt": gpt}, {"gpt": gpt.cfg}, extra=record)
            if cfg.keep_every and step % cfg.keep_every == 0:
                snapshot = args.out / f"gpt_{step}.safetensors"
                save_checkpoint(snapshot, {"gpt": gpt}, {"gpt": gpt.cfg}, dtype=torch.float16, extra=record)
            save_train_state(state_path, step, gpt, optimiser)
    if env.main:
        save_train_state(state_path, step, gpt, optimiser)
        if not best_path.exists():
            save_checkpoint(best_path, {"gpt": gpt}, {"gpt": gpt.cfg}, extra={"steps": str(step)})
    env.finish()


if __name__ == "__main__":
    main()
