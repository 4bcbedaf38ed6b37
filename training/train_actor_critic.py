"""Stage 3: actor-critic finetuning of the motion GPT with the beat reward (Bailando, Sec. 3.3).

    python -m training.train_actor_critic --generator models/weights/generator.safetensors \
        --music data/rl_music.npz --out runs/ac --minutes 8

The reward needs no dance, only music (``backend/beat_reward.py``), so every song we may
train on takes part: the training captures' songs and the music-only songs of
``prepare_data rl-music`` (never the evaluation songs). Each iteration samples rollouts with
the GPT (the actor) on random stretches of music, decodes them with the frozen VQ-VAE,
scores every token step, and moves the actor along the advantage (discounted return minus
the critic's value) with a KL penalty to the starting policy, which keeps the moves close
to the captures', an optional bonus on the policy's entropy, an optional bonus on each
rollout's variety (how far its kinetic features lie from the other rollouts' of the batch), an
optional realism charge (how far the batch's dance features lie, on average, from the
training captures', ``training.capture_statistics``) and an optional spread charge (how far
the spread of the policy's recent dances is from the captures').
The critic is trained alone first. Resumes from ``<out>/train_state.pt``;
writes ``<out>/gpt.safetensors`` for ``training.export`` and, with ``--keep-every N``, the
actor every N iterations as ``<out>/gpt_<iteration>.safetensors`` (fp16, as shipped), so that
a run's checkpoints can be compared afterwards.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import multiprocessing
import multiprocessing.pool
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from backend.beat_reward import CAPTURES_SLOWEST_LEG_SPEED_M_S, RewardWeights, step_rewards
from backend.motion_representation import decode_motion
from backend.music_features import BEAT_COLUMN, FPS
from backend.pipeline import floor_height
from bailando_blender.skeleton import forward_kinematics
from models.checkpoint import read_checkpoint, restore_network, save_checkpoint
from models.critic import Critic, CriticConfig
from models.gpt import GPTConfig, MotionGPT
from models.vqvae import MotionVQVAE, VQVAEConfig

from .common import Logger, optimiser_step, setup_distributed
from .dance_features import FEATURE_DIMS, KINETIC_DIMS, dance_features, prepare, standardise
from .prepare_data import load_song_features

MAX_GRAD_NORM = 1.0  # gradient clipping of both networks, as the GPT's own training
# Geometric relations (dance_features.GEOMETRIC_RELATIONS) whose share of the rollouts' frames
# is logged: those version 2's critic stage moved furthest from the captures' (the wrists
# along the torso's normal, the right hand above the neck, the hands apart, the right hand
# against the left, the right ankle off the left leg's plane; model card), so that a run
# shows such a drift while it happens. The held-out captures: 0.35, 0.31, 0.03, 0.63, 0.33, 0.29.
WATCHED_RELATIONS = (0, 1, 2, 8, 11, 14)
# Rollouts whose dance features estimate the policy's spread for the spread charge: the last 8
# batches of 64 (a covariance of 72 kinetic features needs several times 72 dances).
SPREAD_MEMORY = 512
# Smallest eigenvalue kept in that estimate, in the captures' standardised units squared: the
# charge divides by its square root, and a direction the policy never varies in would blow up.
SPREAD_EIGENVALUE_FLOOR = 1e-3


@dataclass
class ActorCriticConfig:
    rollout_steps: int = 64  # tokens per rollout (8.5 s): past the GPT's 60-step attention window
    batch: int = 64  # rollouts per iteration, per GPU
    actor_learning_rate: float = 1e-5  # small: finetuning, not relearning
    critic_learning_rate: float = 3e-4
    critic_warmup: int = 40  # iterations training the critic alone
    gamma: float = 0.9  # per token step (133 ms): credit reaches about a second ahead
    kl_weight: float = 0.05  # per step, on log pi(a) - log pi_ref(a) of the sampled tokens
    # Bonus on the entropy (nats, both heads) of the policy at each step, in units of the
    # normalised advantage: the beat reward alone narrows the policy to a few moves that hit.
    entropy_weight: float = 0.0
    # Bonus per step on the rollout's variety (``variety_bonus``): the beat reward narrows the
    # policy to one way of moving for every song (version 4's critic run: Div_k 5.2 of the
    # captures' 11.3), which per-step entropy does not prevent (model card).
    variety_weight: float = 0.0
    # Charge per step on the rollout's share of the batch's distance from the training
    # captures' mean dance features (``realism_charge``): the variety bonus spreads the dances
    # where the captures never go (its first runs: FID_k 171-196 against version 4's 89).
    realism_weight: float = 0.0
    # Charge per step on the rollout's part in the distance of the policy's spread (the
    # covariance of its recent dances' features) from the captures' (``spread_charge``): FID's
    # covariance term, which the realism charge leaves alone (version 5: FID_g 23.2, of which
    # the mean term is 7.8).
    spread_weight: float = 0.0
    log_every: int = 10
    save_every: int = 50
    keep_every: int = 0  # iterations between kept snapshots of the actor; 0: none
    reward: RewardWeights = field(default_factory=RewardWeights)


def sample_music(rng: np.random.Generator, songs: list[np.ndarray], frames: int, batch: int) -> np.ndarray:
    lengths = np.array([len(song) for song in songs], dtype=np.float64)
    usable = np.maximum(lengths - frames + 1, 0)
    picks = rng.choice(len(songs), size=batch, p=usable / usable.sum())
    starts = [int(rng.integers(0, usable[pick])) for pick in picks]
    return np.stack([songs[pick][start : start + frames] for pick, start in zip(picks, starts, strict=True)])


@torch.no_grad()
def rollout(gpt: MotionGPT, music: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample (B, steps) upper and lower tokens at temperature 1, as generation does."""
    music_steps = gpt.music_encoder(music)
    cache = gpt.new_cache()
    pending = gpt.music_input(music_steps[:, :1])
    upper, lower = [], []
    for t in range(steps):
        hidden = gpt.step(pending, cache)[:, -1]
        up = torch.distributions.Categorical(logits=gpt.upper_head(hidden).float()).sample()
        hidden = gpt.step(gpt.upper_input(up[:, None]), cache)[:, -1]
        down = torch.distributions.Categorical(logits=gpt.lower_head(hidden).float()).sample()
        upper.append(up)
        lower.append(down)
        pending = gpt.lower_input(down[:, None])
        if t + 1 < steps:
            pending = torch.cat([pending, gpt.music_input(music_steps[:, t + 1 : t + 2])], dim=1)
    return torch.stack(upper, dim=1), torch.stack(lower, dim=1)


def token_log_probs(
    model: torch.nn.Module, music: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) log pi(upper_t) + log pi(lower_t | upper_t) of the given tokens, and (B, L) the
    entropy in nats of those two distributions, summed."""
    upper_logits, lower_logits = model(music, upper, lower)
    up_all = F.log_softmax(upper_logits.float(), dim=-1)
    down_all = F.log_softmax(lower_logits.float(), dim=-1)
    up = up_all.gather(-1, upper[..., None])[..., 0]
    down = down_all.gather(-1, lower[..., None])[..., 0]
    entropy = -(up_all.exp() * up_all).sum(-1) - (down_all.exp() * down_all).sum(-1)
    return up + down, entropy


def score_one(
    task: tuple[np.ndarray, np.ndarray, np.ndarray, int, RewardWeights, bool],
) -> tuple[np.ndarray, dict, np.ndarray]:
    """One rollout's motion vectors -> its step rewards, their parts, and its (104,) dance
    features (``dance_features``: 72 kinetic, corrected, then 32 geometric); when ``watch`` (the
    task's last item: an iteration that logs) the parts include the shares of the
    WATCHED_RELATIONS (``relation_<i>``), which only the log reads (run in worker processes)."""
    upper_motion, lower_motion, beats, per_token, weights, watch = task
    rotations, translation = decode_motion(upper_motion, lower_motion)
    positions, _ = forward_kinematics(rotations, translation)
    positions[..., 1] -= floor_height(positions)  # as the pipeline grounds dances
    rewards, parts = step_rewards(positions, beats, per_token, weights)
    features = dance_features(prepare(positions, FPS))
    if not watch:
        return rewards, parts, features
    shares = features[KINETIC_DIMS:]
    return rewards, parts | {f"relation_{i}": float(shares[i]) for i in WATCHED_RELATIONS}, features


def variety_bonus(features: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, float]:
    """(B, D) rollouts' features -> (B,) each one's mean dissimilarity to the others, less the
    batch's mean of it, and that mean (the batch's variety).

    Distances are in fixed units, ``scale`` (D,) (the starting policy's spread of each
    feature), divided by sqrt(D); a pair's dissimilarity is 1 - exp(-d^2 / 2), which saturates,
    so that no rollout gains by being extreme. The bonus is then the REINFORCE signal (the
    batch mean as baseline) of the policy's expected dissimilarity: it pays for spreading out,
    and shrinks when the rollouts do. Measured and dropped (model card): standardising by each
    batch's spread (blind to the spread itself: the policy collapsed onto a few tokens for some
    songs), and the plain distance (unbounded: the policy learnt to make outliers, jerk 530 m/s^3).
    """
    count, dims = features.shape
    normal = features / np.where(scale > 0, scale, 1.0)
    distances = np.linalg.norm(normal[:, None] - normal[None], axis=-1) / np.sqrt(dims)
    dissimilarity = 1.0 - np.exp(-0.5 * distances**2)
    to_others = dissimilarity.sum(axis=1) / max(count - 1, 1)
    return to_others - to_others.mean(), float(to_others.mean())


def realism_charge(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, float]:
    """(B, D) rollouts' features -> (B,) each one's charge, and the batch's gap: the squared
    distance of its mean from the captures' ``mean``, in the captures' ``std`` per feature (the
    mean term of FID, as FID normalises), divided by D.

    The charge is the REINFORCE signal of that gap: each rollout's deviation from the batch
    mean projected on the batch's own deviation from the captures, so a rollout that leans the
    way the batch already errs is charged and one that leans back is paid (the charges sum to
    zero). Unlike a charge on each rollout's own distance from the captures' mean, it asks for
    no rollout to be average: only the batch as a whole, so it leaves the spread to the policy.
    """
    dims = features.shape[1]
    normal = standardise(features, mean, std)
    bias = normal.mean(axis=0)
    return (normal - bias) @ bias / dims, float(bias @ bias / dims)


def frechet_spread_pull(policy: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """(D, D) covariances of the policy's and the captures' features -> (D, D) I - M, and the
    covariance term of their Fréchet distance, tr(P + T - 2 (P^1/2 T P^1/2)^1/2).

    M = P^-1/2 (P^1/2 T P^1/2)^1/2 P^-1/2 is the derivative of tr((P^1/2 T P^1/2)^1/2) by P,
    doubled (M P M = T; M = I when P = T), so that term moves by tr((I - M) dP) when P moves by dP.
    P's eigenvalues are floored at ``SPREAD_EIGENVALUE_FLOOR``.
    """
    values, vectors = np.linalg.eigh(policy)
    values = np.maximum(values, SPREAD_EIGENVALUE_FLOOR)
    root = (vectors * np.sqrt(values)) @ vectors.T
    inverse_root = (vectors / np.sqrt(values)) @ vectors.T
    inner_values, inner_vectors = np.linalg.eigh(root @ target @ root)
    inner_roots = np.sqrt(np.clip(inner_values, 0.0, None))
    geometric_mean = inverse_root @ ((inner_vectors * inner_roots) @ inner_vectors.T) @ inverse_root
    term = float(values.sum() + np.trace(target) - 2.0 * inner_roots.sum())
    return np.eye(len(policy)) - geometric_mean, term


def spread_charge(
    features: np.ndarray, recent: np.ndarray, mean: np.ndarray, std: np.ndarray, covariance: np.ndarray
) -> tuple[np.ndarray, float]:
    """(B, D) rollouts' features and (N, D) the policy's recent ones (the batch among them) ->
    (B,) each rollout's charge, and the spread gap: FID's covariance term between the recent
    rollouts and the captures (``covariance`` (D, D), in the units of their ``mean`` and ``std``,
    as ``realism_charge``), summed over FID_k's and FID_g's features apart, divided by D.

    The charge is the REINFORCE signal of that gap: with P the recent rollouts' covariance, a
    rollout at d from their mean would move P by d d^T - P, and the gap by d^T (I - M) d less a
    constant (``frechet_spread_pull``), halved as the realism charge halves the mean term's
    derivative. Where the policy spreads wider than the captures, a rollout far out is charged;
    where narrower, paid; in a direction where the captures' features go together and the
    policy's do not, a rollout that moves them together is paid. The charges sum to zero.
    """
    dims = features.shape[1]
    normal, memory = standardise(features, mean, std), standardise(recent, mean, std)
    deviation = normal - memory.mean(axis=0)
    charge = np.zeros(len(features))
    gap = 0.0
    for block in (slice(0, KINETIC_DIMS), slice(KINETIC_DIMS, dims)):
        pull, term = frechet_spread_pull(np.cov(memory[:, block], rowvar=False, bias=True), covariance[block, block])
        charge += np.einsum("bi,ij,bj->b", deviation[:, block], pull, deviation[:, block])
        gap += term
    charge = 0.5 * charge / dims
    return charge - charge.mean(), gap / dims


def score(
    vqvae: MotionVQVAE,
    upper: torch.Tensor,
    lower: torch.Tensor,
    music: np.ndarray,
    weights: RewardWeights,
    pool: multiprocessing.pool.Pool | None,
    watch: bool = False,
) -> tuple[np.ndarray, dict[str, float], np.ndarray]:
    """(B, L) rewards of the rollouts, the mean of their parts (with the watched relations'
    shares when ``watch``) and (B, 104) their dance features."""
    with torch.no_grad():
        upper_motion, lower_motion = vqvae.decode(upper, lower)
    upper_motion, lower_motion = upper_motion.float().cpu().numpy(), lower_motion.float().cpu().numpy()
    per_token = vqvae.cfg.frames_per_token
    tasks = [
        (upper_motion[i], lower_motion[i], music[i, :, BEAT_COLUMN] > 0.5, per_token, weights, watch)
        for i in range(len(upper_motion))
    ]
    results = pool.map(score_one, tasks) if pool is not None else [score_one(task) for task in tasks]
    rewards = np.stack([reward for reward, _, _ in results])
    means = {key: float(np.mean([part[key] for _, part, _ in results])) for key in results[0][1]}
    return rewards, means, np.stack([features for _, _, features in results])


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    return returns


def critic_values(critic: torch.nn.Module, music: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor):
    """V(s_t): the critic sees the music up to step t and the tokens before it (shifted by one)."""
    return critic(music, F.pad(upper[:, :-1], (1, 0)), F.pad(lower[:, :-1], (1, 0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", type=Path, required=True, help="generator checkpoint (VQ-VAE + GPT)")
    parser.add_argument("--music", type=Path, required=True, help="features from prepare_data rl-music")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--max-iterations", type=int, default=100_000)
    defaults = ActorCriticConfig()
    parser.add_argument("--batch", type=int, default=defaults.batch, help="rollouts per iteration, per GPU")
    parser.add_argument("--rollout-steps", type=int, default=defaults.rollout_steps)
    parser.add_argument("--critic-warmup", type=int, default=defaults.critic_warmup)
    parser.add_argument("--hit-weight", type=float, default=defaults.reward.hit, help="reward per music beat hit")
    parser.add_argument(
        "--slow-weight",
        type=float,
        default=defaults.reward.slow,
        help="charge per step on joint speed under the captures' slowest dance (0: none; the frozen charge stays)",
    )
    parser.add_argument(
        "--slow-joints",
        choices=("all", "legs"),
        default=defaults.reward.slow_joints,
        help="whose mean speed the slowness charge reads: all joints, or the pelvis and legs",
    )
    parser.add_argument(
        "--slow-limit",
        type=float,
        default=None,
        help="m/s under which the slowness charge starts (default: the captures' slowest dance's, "
        f"{defaults.reward.slow_limit_m_s} for all joints, {CAPTURES_SLOWEST_LEG_SPEED_M_S} for the legs)",
    )
    parser.add_argument(
        "--kl-weight", type=float, default=defaults.kl_weight, help="charge per step on the policy's drift from the GPT"
    )
    parser.add_argument("--actor-learning-rate", type=float, default=defaults.actor_learning_rate)
    parser.add_argument(
        "--entropy-weight", type=float, default=defaults.entropy_weight, help="bonus on the policy's entropy per step"
    )
    parser.add_argument(
        "--variety-weight",
        type=float,
        default=defaults.variety_weight,
        help="bonus per step on how far the rollout's kinetic features lie from the batch's others",
    )
    parser.add_argument(
        "--realism-weight",
        type=float,
        default=defaults.realism_weight,
        help="charge per step on the rollout's part in the batch's distance from the captures' dance features",
    )
    parser.add_argument(
        "--spread-weight",
        type=float,
        default=defaults.spread_weight,
        help="charge per step on the rollout's part in the distance of the policy's spread from the captures'",
    )
    parser.add_argument(
        "--capture-statistics",
        type=Path,
        default=None,
        help="the captures' feature statistics (training.capture_statistics), which --realism-weight "
        "and --spread-weight need",
    )
    parser.add_argument(
        "--keep-every", type=int, default=defaults.keep_every, help="keep the actor every N iterations (0: never)"
    )
    parser.add_argument(
        "--score-workers", type=int, default=0, help="processes scoring rollouts (default: the cores / GPUs)"
    )
    args = parser.parse_args()
    for flag, weight in (("--realism-weight", args.realism_weight), ("--spread-weight", args.spread_weight)):
        if weight and args.capture_statistics is None:
            parser.error(f"{flag} needs --capture-statistics (python -m training.capture_statistics)")
    capture_mean = capture_std = capture_covariance = None
    if args.capture_statistics is not None:
        try:
            with np.load(args.capture_statistics) as statistics:
                capture_mean, capture_std = statistics["mean"], statistics["std"]
                if "covariance" in statistics:
                    capture_covariance = statistics["covariance"]
        except (OSError, KeyError, ValueError) as error:
            parser.error(f"--capture-statistics {args.capture_statistics}: not a capture_statistics file ({error})")
        if capture_mean.shape != (FEATURE_DIMS,) or capture_std.shape != (FEATURE_DIMS,):
            parser.error(
                f"--capture-statistics {args.capture_statistics}: {capture_mean.shape} features, not {FEATURE_DIMS}"
            )
        if args.spread_weight and capture_covariance is None:
            parser.error(
                f"--capture-statistics {args.capture_statistics}: has no covariance, which --spread-weight needs "
                "(made before it; run training.capture_statistics again)"
            )
        if capture_covariance is not None and capture_covariance.shape != (FEATURE_DIMS, FEATURE_DIMS):
            parser.error(
                f"--capture-statistics {args.capture_statistics}: a {capture_covariance.shape} covariance, "
                f"not ({FEATURE_DIMS}, {FEATURE_DIMS})"
            )
    slow_limit = args.slow_limit
    if slow_limit is None:
        slow_limit = CAPTURES_SLOWEST_LEG_SPEED_M_S if args.slow_joints == "legs" else defaults.reward.slow_limit_m_s
    cfg = dataclasses.replace(
        defaults,
        batch=args.batch,
        rollout_steps=args.rollout_steps,
        critic_warmup=args.critic_warmup,
        kl_weight=args.kl_weight,
        actor_learning_rate=args.actor_learning_rate,
        entropy_weight=args.entropy_weight,
        variety_weight=args.variety_weight,
        realism_weight=args.realism_weight,
        spread_weight=args.spread_weight,
        keep_every=args.keep_every,
        reward=dataclasses.replace(
            defaults.reward,
            hit=args.hit_weight,
            slow=args.slow_weight,
            slow_joints=args.slow_joints,
            slow_limit_m_s=slow_limit,
        ),
    )
    env = setup_distributed()
    torch.manual_seed(3000 + env.rank)
    rng = np.random.default_rng(3000 + env.rank)
    songs = [features for _, features in load_song_features(args.music)]

    configs, tensors, _ = read_checkpoint(args.generator)
    vqvae = restore_network(configs, tensors, "vqvae", VQVAEConfig, MotionVQVAE, str(args.generator)).float()
    gpt = restore_network(configs, tensors, "gpt", GPTConfig, MotionGPT, str(args.generator)).float()
    vqvae.to(env.device).eval()
    gpt.to(env.device).eval()  # dropout off: the policy that samples is the one that learns
    reference = copy.deepcopy(gpt).requires_grad_(False)
    critic = Critic(CriticConfig(context_steps=gpt.cfg.context_steps)).to(env.device)
    critic.music_encoder.feature_mean.copy_(gpt.music_encoder.feature_mean)
    critic.music_encoder.feature_std.copy_(gpt.music_encoder.feature_std)
    actor_optimiser = torch.optim.AdamW(gpt.parameters(), lr=cfg.actor_learning_rate, weight_decay=0.0)
    critic_optimiser = torch.optim.AdamW(critic.parameters(), lr=cfg.critic_learning_rate, weight_decay=0.0)

    args.out.mkdir(parents=True, exist_ok=True)
    state_path = args.out / "train_state.pt"
    iteration = 0
    variety_scale: np.ndarray | None = None
    warm_up_kinetic: list[np.ndarray] = []
    # The policy's recent dance features, for the spread charge (not kept across a resume: it
    # fills again within a few batches).
    recent_features = np.zeros((0, FEATURE_DIMS))
    if state_path.exists():
        state = torch.load(state_path, map_location=env.device, weights_only=True)
        gpt.load_state_dict(state["actor"])
        critic.load_state_dict(state["critic"])
        actor_optimiser.load_state_dict(state["actor_optimiser"])
        critic_optimiser.load_state_dict(state["critic_optimiser"])
        iteration = int(state["iteration"])
        if "variety_scale" in state:
            variety_scale = state["variety_scale"].cpu().numpy()
    actor = env.wrap(gpt)
    critic_model = env.wrap(critic)
    logger = Logger(args.out / "log.jsonl", env.main)
    per_token = vqvae.cfg.frames_per_token
    frames = cfg.rollout_steps * per_token

    def save() -> None:
        if not env.main:
            return
        torch.save(
            {
                "actor": gpt.state_dict(),
                "critic": critic.state_dict(),
                "actor_optimiser": actor_optimiser.state_dict(),
                "critic_optimiser": critic_optimiser.state_dict(),
                "iteration": iteration,
            }
            | ({} if variety_scale is None else {"variety_scale": torch.from_numpy(variety_scale)}),
            state_path,
        )
        save_checkpoint(
            args.out / "gpt.safetensors", {"gpt": gpt}, {"gpt": gpt.cfg}, extra={"ac_iterations": str(iteration)}
        )

    # Scoring decodes and measures every rollout on the CPU: spread it over the cores.
    workers = args.score_workers or (os.cpu_count() or 1) // max(env.world_size, 1)
    workers = max(1, min(cfg.batch, workers))
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    deadline = time.monotonic() + args.minutes * 60
    while env.keep_going(iteration < args.max_iterations and time.monotonic() < deadline):
        music_np = sample_music(rng, songs, frames, cfg.batch)
        music = torch.from_numpy(music_np).to(env.device)
        upper, lower = rollout(gpt, music, cfg.rollout_steps)
        logs_now = (iteration + 1) % cfg.log_every == 0
        rewards_np, parts, features = score(vqvae, upper, lower, music_np, cfg.reward, pool, watch=logs_now)
        kinetic = features[:, :KINETIC_DIMS]
        if variety_scale is None:
            # The units of the variety bonus: the starting policy's spread, over the critic's warm-up.
            warm_up_kinetic.append(kinetic)
            if iteration + 1 >= cfg.critic_warmup:
                variety_scale = np.concatenate(warm_up_kinetic).std(axis=0)
        if variety_scale is not None:
            bonus, parts["variety"] = variety_bonus(kinetic, variety_scale)
            rewards_np = rewards_np + cfg.variety_weight * bonus[:, None]
        if capture_mean is not None:
            charge, parts["realism_gap"] = realism_charge(features, capture_mean, capture_std)
            rewards_np = rewards_np - cfg.realism_weight * charge[:, None]
        if capture_covariance is not None:
            recent_features = np.concatenate([recent_features, features])[-SPREAD_MEMORY:]
            charge, parts["spread_gap"] = spread_charge(
                features, recent_features, capture_mean, capture_std, capture_covariance
            )
            rewards_np = rewards_np - cfg.spread_weight * charge[:, None]
        rewards = torch.from_numpy(rewards_np).float().to(env.device)

        training_actor = iteration >= cfg.critic_warmup
        with torch.set_grad_enabled(training_actor):
            # Through DDP only when a backward follows, as DDP requires.
            log_probs, entropy = token_log_probs(actor if training_actor else gpt, music, upper, lower)
        with torch.no_grad():
            kl = log_probs.detach() - token_log_probs(reference, music, upper, lower)[0]
        returns = discounted_returns(rewards - cfg.kl_weight * kl, cfg.gamma)
        values = critic_values(critic_model, music, upper, lower)
        critic_loss = F.mse_loss(values, returns)
        optimiser_step(critic_optimiser, critic_loss, critic.parameters(), MAX_GRAD_NORM)

        actor_loss = torch.zeros((), device=env.device)
        if training_actor:
            advantage = returns - values.detach()
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-6)
            actor_loss = -(advantage * log_probs).mean() - cfg.entropy_weight * entropy.mean()
            optimiser_step(actor_optimiser, actor_loss, gpt.parameters(), MAX_GRAD_NORM)
        iteration += 1
        if logs_now:
            logger.log(
                iteration,
                reward=float(rewards_np.mean()),
                kl=float(kl.mean()),
                entropy=float(entropy.detach().mean()),
                critic_loss=critic_loss.item(),
                actor_loss=actor_loss.item(),
                **parts,
            )
        if iteration % cfg.save_every == 0:
            save()
        if env.main and cfg.keep_every and iteration % cfg.keep_every == 0:
            save_checkpoint(
                args.out / f"gpt_{iteration}.safetensors",
                {"gpt": gpt},
                {"gpt": gpt.cfg},
                dtype=torch.float16,
                extra={"ac_iterations": str(iteration)},
            )
    save()
    if pool is not None:
        pool.close()
    env.finish()


if __name__ == "__main__":
    main()
