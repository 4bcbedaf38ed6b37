"""Training-side pieces that run on a CPU in seconds: IK fitting, mirroring, data alignment."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bailando_blender import skeleton as sk
from training.ik import SMPL_JOINT_MAP, FitConfig, fit_positions
from training.prepare_data import aligned_features, mirror_motion

from .conftest import REPO


def known_dance(num_frames: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Smoothly varying moderate poses, and a pelvis path."""
    t = np.linspace(0, 1, num_frames)[:, None, None]
    axes = np.random.default_rng(4).normal(0, 0.35, (1, 24, 3))
    rotations = Rotation.from_rotvec((axes * np.sin(2 * t + 0.3)).reshape(-1, 3)).as_matrix()
    translation = np.stack([0.3 * t[:, 0, 0], 0.95 + 0.02 * t[:, 0, 0], -0.2 * t[:, 0, 0]], axis=1)
    return rotations.reshape(num_frames, 24, 3, 3), translation


def test_fitting_recovers_positions_of_a_known_pose_sequence() -> None:
    rotations, translation = known_dance()
    positions, _ = sk.forward_kinematics(rotations, translation)
    result = fit_positions(positions, SMPL_JOINT_MAP, FitConfig(iterations=600, learning_rate=0.05))
    fitted, _ = sk.forward_kinematics(result.joint_rotations, result.root_translation)
    error = np.linalg.norm(fitted - positions, axis=-1)
    # On its own fitted skeleton within 1 cm; on the plain SMPL body (bones back to their
    # rest lengths) within 3 cm.
    assert result.mean_error < 0.01 and error.mean() < 0.03
    assert abs(result.scales[0] - 1.0) < 0.03


def test_fitting_batches_independent_segments_with_their_own_scale() -> None:
    rotations, translation = known_dance()
    positions, _ = sk.forward_kinematics(rotations, translation)
    bigger = positions * 1.15  # a taller dancer, same dance
    result = fit_positions(
        np.concatenate([positions, bigger]),
        SMPL_JOINT_MAP,
        FitConfig(iterations=600, learning_rate=0.05),
        segment_lengths=[len(positions), len(bigger)],
    )
    assert result.segment_error.shape == (2,) and np.all(result.segment_error < 0.015)
    assert result.scales[1] / result.scales[0] > 1.08


def test_mirroring_twice_is_the_identity_and_reflects_the_path() -> None:
    rotations, translation = known_dance(10)
    mirrored_rotations, mirrored_translation = mirror_motion(rotations, translation)
    np.testing.assert_allclose(mirrored_translation[:, 0], -translation[:, 0])
    back_rotations, back_translation = mirror_motion(mirrored_rotations, mirrored_translation)
    np.testing.assert_allclose(back_rotations, rotations, atol=1e-12)
    np.testing.assert_allclose(back_translation, translation)
    # A proper rotation stays proper, and the left elbow's bend becomes the right elbow's.
    np.testing.assert_allclose(np.linalg.det(mirrored_rotations), 1.0, atol=1e-12)
    reflect = np.diag([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(mirrored_rotations[:, 19], reflect @ rotations[:, 18] @ reflect, atol=1e-12)


def test_music_rows_follow_the_motions_start_in_the_song() -> None:
    features = np.arange(100, dtype=np.float32)[:, None].repeat(3, axis=1)
    aligned = aligned_features(features, offset_s=1.0, num_frames=80)  # 1 s = 30 rows at 30 fps
    np.testing.assert_array_equal(aligned[:70, 0], np.arange(30, 100))
    np.testing.assert_array_equal(aligned[70:, 0], 99)  # the song ran out: its last row holds


# --- the actor-critic stage ------------------------------------------------------------


def beat_dance(frames: int, period: int, phase: float) -> np.ndarray:
    """A body whose arms sweep sideways, their speed 1 - cos: still once every ``period`` frames, at ``phase``."""
    from bailando_blender.skeleton import REST_PELVIS_HEIGHT, rest_positions

    t = np.arange(frames) - phase
    offset = 0.004 * (t - period / (2 * np.pi) * np.sin(2 * np.pi * t / period))
    body = rest_positions()[None] + np.array([0.0, REST_PELVIS_HEIGHT, 0.0])
    moved = np.repeat(body, frames, axis=0)
    moved[:, 16:, 0] += offset[:, None]
    return moved


def test_the_beat_reward_pays_for_motion_beats_on_music_beats() -> None:
    from backend.beat_reward import RewardWeights, step_rewards

    frames, period = 240, 16
    beats = np.zeros(frames, dtype=bool)
    beats[np.arange(4, frames, period)] = True
    weights = RewardWeights()
    on_beat, on_parts = step_rewards(beat_dance(frames, period, 4.5), beats, 4, weights)
    off_beat, off_parts = step_rewards(beat_dance(frames, period, 12.5), beats, 4, weights)
    assert on_parts["hit_rate"] > 0.9 and off_parts["hit_rate"] < 0.1
    assert on_beat.sum() > off_beat.sum() and on_beat.shape == (frames // 4,)
    assert on_parts["offbeat_per_s"] < off_parts["offbeat_per_s"]


def test_jitter_and_stillness_are_penalised() -> None:
    from backend.beat_reward import RewardWeights, step_rewards

    frames = 240
    beats = np.zeros(frames, dtype=bool)
    beats[::16] = True
    smooth = beat_dance(frames, 16, 0.5)
    jittery = smooth + np.random.default_rng(0).normal(0.0, 0.02, smooth.shape)
    still = np.repeat(smooth[:1], frames, axis=0)
    _, smooth_parts = step_rewards(smooth, beats, 4, RewardWeights())
    jitter_reward, jitter_parts = step_rewards(jittery, beats, 4, RewardWeights())
    still_reward, still_parts = step_rewards(still, beats, 4, RewardWeights())
    assert jitter_parts["jerk_m_s3"] > 10 * smooth_parts["jerk_m_s3"] and jitter_reward.mean() < -1
    assert still_parts["frozen_share"] == 1.0 and still_reward.mean() <= -1


def test_a_short_pause_is_not_charged_as_slow_but_sustained_slowness_is() -> None:
    from backend.beat_reward import RewardWeights, step_rewards

    def gliding(speeds_m_s: np.ndarray) -> np.ndarray:
        """(F,) speeds -> (F, 24, 3) a body sliding along X at those speeds, 30 fps."""
        travel = np.concatenate([[0.0], np.cumsum(speeds_m_s[1:] / 30.0)])
        body = np.random.default_rng(1).normal(0.0, 0.3, (1, 24, 3)) + np.array([0.0, 1.0, 0.0])
        return body + travel[:, None, None] * np.array([1.0, 0.0, 0.0])

    frames = 240
    beats = np.zeros(frames, dtype=bool)
    only_slow = RewardWeights(hit=0.0, offbeat=0.0, jerk=0.0, skating=0.0, frozen=0.0)
    pause = np.full(frames, 0.9)
    pause[120:135] = 0.3  # half a second
    sustained = np.full(frames, 0.9)
    sustained[60:180] = 0.3  # four seconds
    pause_reward, _ = step_rewards(gliding(pause), beats, 4, only_slow)
    sustained_reward, _ = step_rewards(gliding(sustained), beats, 4, only_slow)
    assert pause_reward.min() == 0.0
    assert sustained_reward[25:35].max() < -0.4  # 1 - 0.3 / 0.6 at the middle of the slow stretch
    per_step, _ = step_rewards(gliding(pause), beats, 4, dataclasses.replace(only_slow, slow_window_s=0.0))
    assert per_step[30:33].max() < -0.4  # the old charge, per step, would have paid for the pause


def test_the_legs_slowness_charge_is_not_paid_by_swinging_the_arms() -> None:
    from backend.beat_reward import CAPTURES_SLOWEST_LEG_SPEED_M_S, LEG_JOINTS, RewardWeights, step_rewards
    from bailando_blender.skeleton import REST_PELVIS_HEIGHT, rest_positions

    frames = 240
    t = np.arange(frames) / 30.0
    body = np.repeat(rest_positions()[None] + np.array([0.0, REST_PELVIS_HEIGHT, 0.0]), frames, axis=0)
    pumping = body.copy()
    pumping[:, 18:, 2] += 0.4 * np.sin(2 * np.pi * 2.0 * t)[:, None]  # elbows and hands, 2 Hz
    stepping = pumping.copy()
    stepping[:, list(LEG_JOINTS), 0] += 0.6 * t[:, None]  # the pelvis and legs travel at 0.6 m/s
    beats = np.zeros(frames, dtype=bool)
    only_slow = RewardWeights(hit=0.0, offbeat=0.0, jerk=0.0, skating=0.0, frozen=0.0)
    legs = dataclasses.replace(only_slow, slow_joints="legs", slow_limit_m_s=CAPTURES_SLOWEST_LEG_SPEED_M_S)
    all_joints_reward, parts = step_rewards(pumping, beats, 4, only_slow)
    assert parts["speed_m_s"] > only_slow.slow_limit_m_s and parts["leg_speed_m_s"] == 0.0
    assert all_joints_reward.min() == 0.0  # the arms alone pay the charge on all joints' speed
    assert step_rewards(pumping, beats, 4, legs)[0].max() == pytest.approx(-1.0)  # not on the legs'
    assert step_rewards(stepping, beats, 4, legs)[0].min() == 0.0
    with pytest.raises(ValueError, match="slow_joints"):
        step_rewards(pumping, beats, 4, dataclasses.replace(only_slow, slow_joints="arms"))


def test_a_scored_rollout_carries_its_watched_relations() -> None:
    from backend.beat_reward import RewardWeights
    from backend.motion_representation import decode_motion, encode_motion
    from backend.pipeline import floor_height
    from training.dance_features import geometric_features, kinetic_features, prepare
    from training.train_actor_critic import WATCHED_RELATIONS, score_one

    upper, lower = encode_motion(*known_dance(96))
    beats = np.zeros(96, dtype=bool)
    beats[::15] = True
    rewards, parts, features = score_one((upper, lower, beats, 4, RewardWeights(), True))
    assert rewards.shape == (24,)
    unwatched_rewards, unwatched, unwatched_features = score_one((upper, lower, beats, 4, RewardWeights(), False))
    np.testing.assert_array_equal(unwatched_rewards, rewards)
    np.testing.assert_array_equal(unwatched_features, features)
    assert unwatched == {key: value for key, value in parts.items() if not key.startswith("relation_")}
    positions, _ = sk.forward_kinematics(*decode_motion(upper, lower))
    positions[..., 1] -= floor_height(positions)
    expected = geometric_features(prepare(positions, 30))
    for i in WATCHED_RELATIONS:
        assert parts[f"relation_{i}"] == expected[i] and 0.0 <= expected[i] <= 1.0
    np.testing.assert_allclose(features[:72], kinetic_features(prepare(positions, 30), published_quirk=False))
    np.testing.assert_allclose(features[72:], expected)


def test_the_variety_bonus_pays_the_rollout_unlike_the_rest() -> None:
    from training.train_actor_critic import variety_bonus

    rng = np.random.default_rng(0)
    scale = np.full(72, 0.5)
    alike = 1.0 + 0.01 * rng.normal(size=(8, 72))
    outlier = alike.copy()
    outlier[3] += 5.0  # one rollout far from the others
    bonus, diversity = variety_bonus(outlier, scale)
    assert bonus.shape == (8,) and abs(bonus.sum()) < 1e-9
    assert bonus.argmax() == 3 and bonus[3] > 0 > bonus.max(where=np.arange(8) != 3, initial=-np.inf)
    # in fixed units: a batch more spread out is more diverse, but an extreme rollout gains
    # hardly more than a clear outlier (the dissimilarity saturates)
    _, spread_diversity = variety_bonus(1.0 + 0.5 * rng.normal(size=(8, 72)), scale)
    assert 0.0 < diversity < spread_diversity < 1.0
    extreme = outlier.copy()
    extreme[3] += 100.0
    assert variety_bonus(extreme, scale)[0][3] == pytest.approx(bonus[3], rel=0.01)
    # a collapsed batch (near-identical rollouts) is hardly diverse and nobody is paid much
    collapsed_bonus, collapsed_diversity = variety_bonus(alike, scale)
    assert collapsed_diversity < 0.05 * diversity and np.abs(collapsed_bonus).max() < 0.05 * bonus[3]
    same_bonus, same_diversity = variety_bonus(np.ones((4, 72)), scale)
    assert np.all(same_bonus == 0.0) and same_diversity == 0.0


def test_the_realism_charge_pulls_the_batch_mean_not_each_rollout() -> None:
    from training.train_actor_critic import realism_charge

    rng = np.random.default_rng(1)
    mean, std = np.zeros(104), np.full(104, 2.0)
    std[5] = 0.0  # a relation the captures never show: counted in plain units, as FID does
    centred = rng.normal(size=(16, 104)) * 2.0
    centred -= centred.mean(axis=0)  # the batch's mean is the captures'
    charge, gap = realism_charge(centred, mean, std)
    assert gap < 1e-20 and np.allclose(charge, 0.0)  # spread alone costs nothing
    leaning = centred.copy()
    leaning[:, 7] += 4.0  # the batch errs upwards on one feature (2 of its standard deviations)
    charge, gap = realism_charge(leaning, mean, std)
    assert gap == pytest.approx(4.0 / 104) and abs(charge.sum()) < 1e-9
    # the rollouts that err the batch's way are charged, those leaning back are paid
    assert np.array_equal(np.argsort(charge), np.argsort(leaning[:, 7]))
    assert charge[leaning[:, 7].argmax()] > 0 > charge[leaning[:, 7].argmin()]


def test_the_spread_charge_is_the_gradient_of_fids_covariance_term() -> None:
    """Each rollout's charge is half the move of the covariance term (per feature) that weighing
    it a little more would make, less the batch's mean: checked against finite differences."""
    from training.train_actor_critic import frechet_spread_pull, spread_charge

    rng = np.random.default_rng(2)
    mean, std = rng.normal(size=104), rng.uniform(0.5, 2.0, 104)
    mixing = np.eye(104) + 0.3 * rng.normal(size=(104, 104)) / np.sqrt(104)
    target = mixing @ mixing.T  # the captures' covariance, standardised
    recent = mean + std * (rng.normal(size=(600, 104)) * rng.uniform(0.5, 1.5, 104))
    features = recent[-8:]  # the batch: the last rollouts of the memory

    def term(weights: np.ndarray) -> float:
        normal = (recent - mean) / std
        return sum(
            frechet_spread_pull(np.cov(normal[:, b], rowvar=False, aweights=weights, bias=True), target[b, b])[1]
            for b in (slice(0, 72), slice(72, 104))
        )

    charge, gap = spread_charge(features, recent, mean, std, target)
    assert abs(charge.sum()) < 1e-9 and gap == pytest.approx(term(np.ones(600)) / 104)
    step = 1e-4
    moves = []
    for i in range(592, 600):
        weights = np.ones(600)
        weights[i] += step
        moves.append((term(weights) - term(np.ones(600))) / step * 600 / 2 / 104)
    moves = np.array(moves)
    np.testing.assert_allclose(charge, moves - moves.mean(), atol=1e-3 * np.abs(charge).max())


def test_the_spread_charge_pays_for_the_captures_spread() -> None:
    from training.train_actor_critic import spread_charge

    rng = np.random.default_rng(4)
    mean, std, target = np.zeros(104), np.ones(104), np.eye(104)
    target[72, 73] = target[73, 72] = 0.9  # two relations the captures show together
    probes = np.zeros((4, 104))
    probes[0, :72] = probes[1, 72:] = 2.0  # far out in the kinetic, in the geometric features
    probes[2, 72:74] = [1.5, 1.5]  # the two relations together
    probes[3, 72:74] = [1.5, -1.5]  # one without the other
    for scale, sign in ((2.0, 1), (0.5, -1)):  # the policy spreads too wide: far out is charged; too narrow: paid
        recent = np.concatenate([rng.normal(size=(2000, 104)) * scale, probes])
        charge, gap = spread_charge(probes, recent, mean, std, target)
        assert np.sign(charge[0] - charge[2]) == sign and np.sign(charge[1] - charge[2]) == sign and gap > 0.1
    recent = np.concatenate([rng.normal(size=(2000, 104)), probes])
    charge, _ = spread_charge(probes, recent, mean, std, target)
    assert charge[2] < charge[3]  # moving them together, as the captures do, is paid
    matched = rng.multivariate_normal(np.zeros(104), target, size=20000)
    assert spread_charge(matched[:8], matched, mean, std, target)[1] < 0.02  # the captures' own spread: no gap


def test_the_entropy_bonus_widens_the_policy() -> None:
    """token_log_probs' entropy is the two heads' Categorical entropies, and a step on the
    bonus alone (advantage zero) raises it."""
    import torch

    from models.gpt import GPTConfig, MotionGPT
    from training.train_actor_critic import token_log_probs

    torch.manual_seed(0)
    cfg = GPTConfig(d_model=32, num_layers=1, num_heads=2, context_steps=4, num_upper_codes=16, num_lower_codes=16)
    gpt = MotionGPT(cfg).eval()
    music = torch.randn(3, 8 * cfg.frames_per_token, cfg.music_dim)
    upper, lower = torch.randint(0, 16, (3, 8)), torch.randint(0, 16, (3, 8))
    log_probs, entropy = token_log_probs(gpt, music, upper, lower)
    upper_logits, lower_logits = gpt(music, upper, lower)
    expected = (
        torch.distributions.Categorical(logits=upper_logits).entropy()
        + torch.distributions.Categorical(logits=lower_logits).entropy()
    )
    assert log_probs.shape == entropy.shape == (3, 8)
    assert torch.allclose(entropy, expected, atol=1e-5)
    optimiser = torch.optim.SGD(gpt.parameters(), lr=0.5)
    (-entropy.mean()).backward()
    optimiser.step()
    with torch.no_grad():
        assert token_log_probs(gpt, music, upper, lower)[1].mean() > entropy.mean() + 1e-3


@pytest.mark.slow
def test_actor_critic_runs_resumes_and_writes_a_gpt(tmp_path: Path) -> None:
    weights = REPO / "models" / "weights" / "generator.safetensors"
    if not weights.exists():
        pytest.skip("no shipped generator")
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 57)).astype(np.float16)
    features[:, 54] = 0
    features[::15, 54] = 1
    np.savez(tmp_path / "music.npz", names=np.array(["a", "b"]), lengths=np.array([200, 200]), features=features)
    command = [
        sys.executable, "-m", "training.train_actor_critic", "--generator", str(weights),
        "--music", str(tmp_path / "music.npz"), "--out", str(tmp_path / "ac"),
        "--batch", "2", "--rollout-steps", "12", "--critic-warmup", "1",
        "--slow-weight", "0.5", "--slow-joints", "legs", "--variety-weight", "1", "--realism-weight", "1",
    ]  # fmt: skip
    unsure = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert unsure.returncode == 2 and "--realism-weight needs --capture-statistics" in unsure.stderr
    np.savez(tmp_path / "old_stats.npz", mean=np.zeros(104), std=np.ones(104), clips=4)
    command += ["--spread-weight", "1", "--capture-statistics"]
    old = subprocess.run([*command, str(tmp_path / "old_stats.npz")], cwd=REPO, capture_output=True, text=True)
    assert old.returncode == 2 and "old_stats.npz: has no covariance, which --spread-weight needs" in old.stderr
    np.savez(tmp_path / "stats.npz", mean=np.zeros(104), std=np.ones(104), covariance=np.eye(104), clips=4)
    command += [str(tmp_path / "stats.npz")]
    first = subprocess.run([*command, "--max-iterations", "2"], cwd=REPO, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(
        [*command, "--max-iterations", "3", "--keep-every", "3"], cwd=REPO, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr
    kept = sorted(path.name for path in (tmp_path / "ac").glob("gpt_*.safetensors"))
    assert kept == ["gpt_3.safetensors"]  # iterations 1 and 2 ran without --keep-every
    from models.checkpoint import read_checkpoint, restore_network
    from models.gpt import GPTConfig, MotionGPT

    configs, tensors, extra = read_checkpoint(tmp_path / "ac" / "gpt.safetensors")
    assert extra["ac_iterations"] == "3"
    assert isinstance(restore_network(configs, tensors, "gpt", GPTConfig, MotionGPT, "gpt"), MotionGPT)
    import torch
    from safetensors import safe_open

    state = torch.load(tmp_path / "ac" / "train_state.pt", weights_only=True)
    assert state["variety_scale"].shape == (72,)  # the variety bonus' units, kept for resuming
    with safe_open(str(tmp_path / "ac" / "gpt_3.safetensors"), framework="pt") as kept_file:
        assert kept_file.metadata()["ac_iterations"] == "3"
        assert kept_file.get_tensor(kept_file.keys()[0]).dtype == torch.float16


def tiny_dataset(path: Path, dances: int = 4, frames: int = 160) -> None:
    """prepare_data fit's format: the last dance held out, every second one a mirrored copy."""
    from backend.motion_representation import encode_motion

    rows = [encode_motion(*known_dance(frames)) for _ in range(dances)]
    rng = np.random.default_rng(5)
    np.savez(
        path,
        names=np.array([f"dance{k}" for k in range(dances)]),
        held_out=np.array([k == dances - 1 for k in range(dances)]),
        mirrored=np.array([k % 2 == 1 for k in range(dances)]),
        lengths=np.full(dances, frames),
        music_lengths=np.full(dances, frames),
        upper=np.concatenate([upper for upper, _ in rows]),
        lower=np.concatenate([lower for _, lower in rows]),
        features=rng.normal(size=(dances * frames, 57)).astype(np.float32),
        music_features=rng.normal(size=(dances * frames, 57)).astype(np.float32),
    )


@pytest.mark.slow
def test_vqvae_trains_on_two_processes_under_torchrun(tmp_path: Path) -> None:
    """Two ranks (gloo on the CPU; NCCL on GPUs): DDP's gradients and the codebooks' EMA all-reduced."""
    tiny_dataset(tmp_path / "dataset.npz")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "training.train_vqvae", "--data", str(tmp_path / "dataset.npz"), "--out", str(tmp_path / "vq"),
        "--max-steps", "2",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "training on 2 process(es), cpu" in result.stdout
    from models.checkpoint import read_checkpoint

    _, tensors, extra = read_checkpoint(tmp_path / "vq" / "vqvae.safetensors")
    assert extra["steps"] == "2" and bool(tensors["vqvae"]["upper.quantiser.initialised"])


# --- positions -> rotations CLI ---------------------------------------------------------


def smooth_dance_positions(frames: int = 40) -> np.ndarray:
    t = np.linspace(0, 1, frames)[:, None, None]
    axis_angles = 0.5 * np.sin(2 * np.pi * t + np.random.default_rng(7).uniform(0, 6, (1, 24, 3)))
    axis_angles[:, [10, 11, 15, 22, 23]] = 0.0  # leaf joints: no child shows their rotation
    rotations = sk.axis_angle_to_matrix(axis_angles)
    translation = np.stack([0.3 * t[:, 0, 0], np.full(frames, 0.95), np.zeros(frames)], axis=1)
    return sk.forward_kinematics(rotations, translation)[0]


def test_positions_to_rotations_cli_reproduces_the_joints(tmp_path: Path) -> None:
    positions = smooth_dance_positions()
    np.save(tmp_path / "dance.npy", positions.reshape(len(positions), 72))
    result = subprocess.run(
        [sys.executable, "-m", "training.positions_to_rotations", str(tmp_path / "dance.npy"),
         "--out", str(tmp_path / "dance.npz"), "--fps", "30", "--keep-height", "--device", "cpu"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "mean joint position error" in result.stdout
    with np.load(tmp_path / "dance.npz") as data:
        rotations = sk.quaternion_to_matrix(data["joint_rotations"])
        fitted, _ = sk.forward_kinematics(rotations, data["root_translation"])
        assert float(data["fps"]) == 30.0
    assert np.linalg.norm(fitted - positions, axis=-1).mean() < 0.01  # 0.5 cm measured


def test_positions_to_rotations_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    from training.positions_to_rotations import main

    np.save(tmp_path / "wrong.npy", np.zeros((10, 23, 3)))
    np.save(tmp_path / "bailando.pkl", {"pred_position": np.zeros((10, 72))}, allow_pickle=True)
    (tmp_path / "bailando.pkl.npy").rename(tmp_path / "bailando.pkl")
    for name in ("wrong.npy", "bailando.pkl", "nope.npy"):
        assert main([str(tmp_path / name), "--out", str(tmp_path / "x.npz")]) == 2
    assert not (tmp_path / "x.npz").exists()
    from backend.errors import UserInputError
    from training.positions_to_rotations import read_positions

    with pytest.raises(UserInputError, match=r"expected \(T, 24, 3\)"):
        read_positions(tmp_path / "wrong.npy")
    with pytest.raises(UserInputError, match="--allow-pickle"):
        read_positions(tmp_path / "bailando.pkl")
    assert read_positions(tmp_path / "bailando.pkl", allow_pickle=True).shape == (10, 24, 3)


# --- AIST++ ---------------------------------------------------------------------------


def write_aist_sequence(folder: Path, name: str, frames: int, scaling: float) -> tuple[np.ndarray, np.ndarray]:
    import pickle

    rng = np.random.default_rng(len(name))
    poses = 0.3 * np.sin(np.linspace(0, 3, frames)[:, None] + rng.uniform(0, 6, (1, 72)))
    trans_m = np.stack([np.linspace(0, 1, frames), np.full(frames, 0.9), np.zeros(frames)], axis=1)
    with open(folder / f"{name}.pkl", "wb") as stream:
        pickle.dump({"smpl_poses": poses, "smpl_trans": trans_m * scaling, "smpl_scaling": np.array([scaling])}, stream)
    return poses, trans_m


def test_aistpp_sequences_land_in_the_training_form(tmp_path: Path) -> None:
    from .conftest import write_song

    (tmp_path / "motions").mkdir()
    (tmp_path / "music").mkdir()
    write_song(tmp_path / "music" / "mBR0.wav", duration_s=3.0)
    poses, trans_m = write_aist_sequence(tmp_path / "motions", "gBR_sBM_cAll_d04_mBR0_ch01", 121, 93.0)
    write_aist_sequence(tmp_path / "motions", "gBR_sBM_cAll_d05_mBR0_ch02", 100, 80.0)

    from training.aistpp import load_sequence

    sequence = load_sequence(tmp_path / "motions" / "gBR_sBM_cAll_d04_mBR0_ch01.pkl", tmp_path / "music")
    assert sequence.rotations.shape == (61, 24, 3, 3) and sequence.music.name == "mBR0.wav"
    # Every other 60-fps frame is a 30-fps frame: the same pose and the unscaled root path.
    np.testing.assert_allclose(sequence.rotations[10], sk.axis_angle_to_matrix(poses[20].reshape(24, 3)), atol=1e-9)
    np.testing.assert_allclose(sequence.translation, trans_m[::2], atol=1e-9)

    out = tmp_path / "aist.npz"
    result = subprocess.run(
        [sys.executable, "-m", "training.prepare_data", "aistpp", "--motions", str(tmp_path / "motions"),
         "--music", str(tmp_path / "music"), "--out", str(out), "--held-out", "gBR_sBM_cAll_d05_mBR0_ch02"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    from training.common import Dataset

    data = Dataset.load(out)
    assert len(data.names) == 4 and data.held_out.tolist() == [False, False, True, True]
    assert data.mirrored.tolist() == [False, True, False, True]
    assert data.indices(held_out=True) == [2, 3] and data.indices(held_out=True, mirrored=False) == [2]
    assert data.upper[0].shape == (61, 90) and data.features[0].shape == (61, 57)


# --- BVH ------------------------------------------------------------------------------

TINY_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Knee
  {
    OFFSET 0 -40 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -40 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
1 90 0 0 0 0 0 0 0
1 90 0 90 0 0 0 90 0
"""


def test_bvh_positions_follow_the_channels_and_the_hierarchy() -> None:
    from training.bvh import joint_positions, parse_bvh

    motion = parse_bvh(TINY_BVH)
    assert motion.names == ["Hips", "Knee"] and motion.parents == [-1, 0] and round(motion.fps) == 30
    positions = joint_positions(motion)
    np.testing.assert_allclose(positions[0], [[1, 90, 0], [1, 50, 0]], atol=1e-9)
    # The root turned 90 degrees about Z: the knee, 40 below it, swings to +X.
    np.testing.assert_allclose(positions[1], [[1, 90, 0], [41, 90, 0]], atol=1e-9)


def test_a_broken_bvh_is_refused_in_one_line() -> None:
    from backend.errors import UserInputError
    from training.bvh import parse_bvh

    with pytest.raises(UserInputError, match="declares 2 frames"):
        parse_bvh(TINY_BVH.rsplit("\n", 2)[0])
    with pytest.raises(UserInputError, match="HIERARCHY"):
        parse_bvh("MOTION\nFrames: 1\n")


@pytest.mark.slow
def test_the_bandai_namco_dance_fits_smpl() -> None:
    from training.bvh import BANDAI_JOINTS, fit_bvh, read_bvh
    from training.ik import FitConfig

    path = REPO.parent / "shared" / "data" / "bandai_namco_motion_1" / "data" / "dataset-1_dance-short_normal_001.bvh"
    if not path.exists():
        pytest.skip("the Bandai Namco data is not beside the repository")
    motion = read_bvh(path)
    motion.values = motion.values[:90]
    result = fit_bvh(motion, BANDAI_JOINTS, config=FitConfig(iterations=300))
    assert result.joint_rotations.shape == (90, 24, 3, 3)
    assert result.mean_error < 0.05  # metres, over the 20 mapped joints


def test_captures_are_read_without_mirrors_and_coded_in_whole_tokens(tmp_path: Path) -> None:
    from backend.motion_representation import encode_motion
    from models.vqvae import MotionVQVAE, VQVAEConfig
    from training.quality_report import load_captures
    from training.reference_scores import through_vqvae

    lengths = [10, 10, 7]  # dance 0, its mirrored copy, the held-out dance 1
    dances = [encode_motion(*known_dance(frames)) for frames in lengths]
    path = tmp_path / "dataset.npz"
    np.savez(
        path,
        names=np.array(["a", "a", "b"]),
        held_out=np.array([False, False, True]),
        mirrored=np.array([False, True, False]),
        lengths=np.array(lengths),
        upper=np.concatenate([upper for upper, _ in dances]).astype(np.float16),
        lower=np.concatenate([lower for _, lower in dances]).astype(np.float16),
        features=np.repeat([0.0, 1.0, 2.0], lengths)[:, None].repeat(57, axis=1).astype(np.float32),
    )
    captures = load_captures(path)
    assert captures.names == ["a", "b"] and captures.held_out == [False, True]
    trained, held = captures.streams
    assert held[0].shape == (7, 90) and held[1].shape == (7, 58) and np.all(captures.features[1] == 2.0)
    assert trained[0].shape == (10, 90) and np.all(captures.features[0] == 0.0)
    assert captures.motions[1].positions.shape == (7, 24, 3)
    upper, lower = through_vqvae(MotionVQVAE(VQVAEConfig()).eval(), *held)
    assert upper.shape == (4, 90) and lower.shape == (4, 58)  # 7 frames hold one whole 4-frame token


def test_export_interpolates_between_the_gpt_and_the_finetuned_policy(tmp_path: Path, monkeypatch) -> None:
    import torch

    from models.checkpoint import read_checkpoint, save_checkpoint
    from models.gpt import GPTConfig, MotionGPT
    from models.vqvae import MotionVQVAE, VQVAEConfig
    from training import export

    torch.manual_seed(0)
    cfg = GPTConfig(d_model=32, num_layers=1, num_heads=2, context_steps=4, num_upper_codes=16, num_lower_codes=16)
    base, tuned = MotionGPT(cfg), MotionGPT(cfg)
    vqvae = MotionVQVAE(VQVAEConfig(width=16, code_dim=8, num_codes=16, res_blocks=1))
    save_checkpoint(tmp_path / "base.safetensors", {"vqvae": vqvae, "gpt": base}, {"vqvae": vqvae.cfg, "gpt": cfg})
    save_checkpoint(tmp_path / "tuned.safetensors", {"gpt": tuned}, {"gpt": cfg}, extra={"ac_iterations": "7"})

    def run(*extra: str) -> dict[str, torch.Tensor]:
        out = tmp_path / "out.safetensors"
        argv = ["export", "--vqvae", str(tmp_path / "base.safetensors"), "--gpt", str(tmp_path / "tuned.safetensors")]
        monkeypatch.setattr("sys.argv", [*argv, "--out", str(out), *extra])
        export.main()
        _, tensors, metadata = read_checkpoint(out)
        assert metadata["gpt_ac_iterations"] == "7"
        return tensors["gpt"]

    key = "head.weight" if "head.weight" in base.state_dict() else next(iter(base.state_dict()))
    b, t = base.state_dict()[key], tuned.state_dict()[key]
    assert torch.allclose(run()[key], t.half().float())
    quarter = run("--base-gpt", str(tmp_path / "base.safetensors"), "--critic-share", "0.25")[key]
    assert torch.allclose(quarter, (0.75 * b + 0.25 * t).half().float(), atol=1e-3)
    nothing = run("--base-gpt", str(tmp_path / "base.safetensors"), "--critic-share", "0")[key]
    assert torch.allclose(nothing, b.half().float())
    save_checkpoint(tmp_path / "vqvae.safetensors", {"vqvae": vqvae}, {"vqvae": vqvae.cfg})
    with pytest.raises(SystemExit, match="has no network 'gpt'"):
        run("--base-gpt", str(tmp_path / "vqvae.safetensors"))
    wider = GPTConfig(d_model=64, num_layers=1, num_heads=2, context_steps=4, num_upper_codes=16, num_lower_codes=16)
    save_checkpoint(tmp_path / "wider.safetensors", {"gpt": MotionGPT(wider)}, {"gpt": wider})
    with pytest.raises(SystemExit, match="differ in shape"):
        run("--base-gpt", str(tmp_path / "wider.safetensors"))


def test_saved_song_features_are_the_songs_own(tmp_path: Path, click_song: Path) -> None:
    from backend.music_features import song_features
    from training.prepare_data import save_song_features
    from training.quality_report import saved_songs

    save_song_features([click_song, click_song], tmp_path / "songs.npz")
    saved = saved_songs(tmp_path / "songs.npz")
    direct = song_features(click_song)
    assert [name for name, _ in saved] == [click_song.name, click_song.name]
    for _, music in saved:
        np.testing.assert_array_equal(music.features, direct.features)
        np.testing.assert_allclose(music.beat_times, direct.beat_times)
    assert saved_songs(None) == []


def test_capture_statistics_are_the_training_clips_features(tmp_path: Path) -> None:
    """Only the captures neither held out nor mirrored count, one 10-s clip each here."""
    from training.capture_statistics import capture_statistics
    from training.dance_features import FEATURE_DIMS, dance_features, prepare, standardise
    from training.quality_report import load_captures

    tiny_dataset(tmp_path / "dataset.npz", dances=5, frames=330)  # 11 s at 30 fps: one clip per dance
    mean, std, covariance, count = capture_statistics(tmp_path / "dataset.npz")
    assert count == 2 and mean.shape == std.shape == (FEATURE_DIMS,)  # dances 0 and 2; 4 is held out
    captures = load_captures(tmp_path / "dataset.npz")
    assert [name for name, held in zip(captures.names, captures.held_out, strict=True) if not held] == [
        "dance0",
        "dance2",
    ]
    first = dance_features(prepare(captures.motions[0].positions[:300], 30))
    second = dance_features(prepare(captures.motions[1].positions[:300], 30))
    np.testing.assert_allclose(mean, (first + second) / 2)
    np.testing.assert_allclose(std, np.abs(first - second) / 2, atol=1e-12)
    # two clips, standardised: each feature +-1 (0 where both agree), the second the first's negative
    standard = standardise(first, mean, std)
    assert covariance.shape == (FEATURE_DIMS, FEATURE_DIMS)
    np.testing.assert_allclose(covariance, np.outer(standard, standard), atol=1e-12)
    missing = subprocess.run(
        [sys.executable, "-m", "training.capture_statistics", "--dataset", str(tmp_path / "none.npz"), "--out", "x"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and missing.stderr.strip().splitlines() == [
        f"error: --dataset {tmp_path / 'none.npz'}: no such file"
    ]


def test_music_noise_is_scaled_by_each_features_deviation() -> None:
    import torch

    from training.train_gpt import noisy_music

    music = torch.zeros(64, 200, 3, dtype=torch.float16)
    std = torch.tensor([0.0, 1.0, 10.0])
    assert noisy_music(music, std, 0.0) is music  # no noise: the batch as it was
    torch.manual_seed(0)
    noisy = noisy_music(music, std, 0.5)
    assert noisy.dtype == torch.float32
    spread = noisy.flatten(0, 1).std(dim=0)
    assert spread[0] == 0 and abs(spread[1] - 0.5) < 0.02 and abs(spread[2] - 5.0) < 0.2


@pytest.mark.slow
def test_gpt_trains_with_noisy_music_and_keeps_snapshots(tmp_path: Path) -> None:
    weights = REPO / "models" / "weights" / "generator.safetensors"
    if not weights.exists():
        pytest.skip("no shipped generator (its VQ-VAE codes the tiny dataset)")
    tiny_dataset(tmp_path / "dataset.npz", dances=4, frames=300)
    command = [
        sys.executable, "-m", "training.train_gpt", "--data", str(tmp_path / "dataset.npz"),
        "--vqvae", str(weights), "--out", str(tmp_path / "gpt"), "--music-noise", "0.5", "--eval-every", "1",
        "--batch", "4",
    ]  # fmt: skip
    bad = subprocess.run([*command, "--keep-every", "3", "--eval-every", "2"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].endswith(
        "--keep-every must be a multiple of --eval-every (2), got 3"
    )
    first = subprocess.run([*command, "--max-steps", "1"], cwd=REPO, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    second = subprocess.run(
        [*command, "--max-steps", "2", "--keep-every", "2"], cwd=REPO, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr[-2000:]
    import torch
    from safetensors import safe_open

    assert sorted(path.name for path in (tmp_path / "gpt").glob("gpt_*.safetensors")) == ["gpt_2.safetensors"]
    with safe_open(str(tmp_path / "gpt" / "gpt_2.safetensors"), framework="pt") as kept:
        assert kept.metadata()["steps"] == "2" and float(kept.metadata()["held_out_loss"]) > 0
        assert kept.get_tensor(kept.keys()[0]).dtype == torch.float16
    assert torch.load(tmp_path / "gpt" / "train_state.pt", weights_only=True)["step"] == 2
