"""The networks: shapes, codebook updates, cached generation equal to the full pass, checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.generator import DanceGenerator
from backend.sampling import SamplingConfig, TokenSampler
from models.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from models.critic import Critic, CriticConfig
from models.files import EMPTY_SLOT
from models.gpt import POSITIONS_PER_STEP, GPTConfig, MotionGPT, ring_rotations, ring_slots, rope, rope_tables
from models.vqvae import EMACodebook, MotionVQVAE, VQVAEConfig

SMALL_GPT = GPTConfig(d_model=64, num_layers=2, num_heads=4, context_steps=6, dropout=0.0)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_budget() -> None:
    total = count(MotionVQVAE(VQVAEConfig())) + count(MotionGPT(GPTConfig())) + count(Critic(CriticConfig()))
    assert 15e6 < total <= 21e6  # ~20 M in all, so fp16 weights stay near 40 MB


def test_vqvae_shapes_and_token_round_trip() -> None:
    torch.manual_seed(0)
    vqvae = MotionVQVAE(VQVAEConfig())
    upper, lower = torch.randn(2, 32, 90), torch.randn(2, 32, 58)
    vqvae(upper, lower)  # a training pass initialises the codebooks from the data
    vqvae.eval()
    out = vqvae(upper, lower)
    assert out["upper"].shape == (2, 32, 90) and out["lower_rotations"].shape == (2, 32, 54)
    assert out["root_normalised"].shape == (2, 32, 4) and out["upper_tokens"].shape == (2, 8)
    up_tokens, low_tokens = vqvae.encode(upper, lower)
    torch.testing.assert_close(up_tokens, out["upper_tokens"])
    decoded_upper, decoded_lower = vqvae.decode(up_tokens, low_tokens)
    assert decoded_upper.shape == (2, 32, 90) and decoded_lower.shape == (2, 32, 58)
    # Fully convolutional: any number of tokens decodes to four frames each.
    long_upper, _ = vqvae.decode(torch.zeros(1, 333, dtype=torch.long), torch.zeros(1, 333, dtype=torch.long))
    assert long_upper.shape == (1, 4 * 333, 90)


def test_ema_codebook_follows_its_vectors_and_restarts_dead_codes() -> None:
    torch.manual_seed(0)
    cfg = VQVAEConfig(num_codes=8, code_dim=2, ema_decay=0.5)
    codebook = EMACodebook(cfg).train()
    centres = torch.tensor([[5.0, 5.0], [-5.0, -5.0]])
    batch = (centres.repeat(64, 1) + 0.01 * torch.randn(128, 2)).T[None]  # (1, 2, 128)
    for _ in range(30):
        quantised, _, commit = codebook(batch)
    assert bool(codebook.initialised)
    # Every codebook entry either sits on a centre or was restarted onto the data.
    distances = torch.cdist(codebook.codebook, centres).min(dim=1).values
    assert torch.all(distances < 0.1)
    assert float(commit) < 1e-3
    # Straight-through: gradients reach the encoder output unchanged.
    encoded = batch.clone().requires_grad_(True)
    quantised, _, _ = codebook.eval()(encoded)
    quantised.sum().backward()
    torch.testing.assert_close(encoded.grad, torch.ones_like(encoded))


@pytest.mark.parametrize("steps", [SMALL_GPT.context_steps, 3 * SMALL_GPT.context_steps + 2])
def test_cached_generation_equals_the_full_forward_pass(steps: int) -> None:
    """Within the window and far past it (sliding), a cached step equals the full pass."""
    torch.manual_seed(0)
    gpt = MotionGPT(SMALL_GPT).eval()
    music = torch.randn(1, steps * 4, 57)
    upper = torch.randint(0, 512, (1, steps))
    lower = torch.randint(0, 512, (1, steps))
    with torch.no_grad():
        full_upper, full_lower = gpt(music, upper, lower)
        music_steps = gpt.music_encoder(music)
        cache = gpt.new_cache()
        for t in range(steps):
            hidden = gpt.step(gpt.music_input(music_steps[:, t : t + 1]), cache)
            torch.testing.assert_close(gpt.upper_head(hidden)[:, 0], full_upper[:, t], atol=1e-5, rtol=1e-5)
            hidden = gpt.step(gpt.upper_input(upper[:, t : t + 1]), cache)
            torch.testing.assert_close(gpt.lower_head(hidden)[:, 0], full_lower[:, t], atol=1e-5, rtol=1e-5)
            gpt.step(gpt.lower_input(lower[:, t : t + 1]), cache)
        assert cache.keys[0].shape[2] == min(steps, SMALL_GPT.context_steps) * POSITIONS_PER_STEP


def test_ring_cache_generation_equals_the_full_forward_pass() -> None:
    """The CUDA runtime's cache, a ring updated in place, with the generator's calls (the lower
    token and the next music in one call), far past the window: the full pass's logits."""
    torch.manual_seed(1)
    gpt = MotionGPT(SMALL_GPT).eval()
    steps = 4 * SMALL_GPT.context_steps + 1
    music = torch.randn(1, steps * 4, 57)
    upper = torch.randint(0, 512, (1, steps))
    lower = torch.randint(0, 512, (1, steps))
    slots = ring_slots(SMALL_GPT, 2)
    assert slots % 8 == 0 and slots > SMALL_GPT.window_positions
    keys = torch.randn(SMALL_GPT.cache_shape(1, slots))  # stale contents must not matter
    values = torch.randn(SMALL_GPT.cache_shape(1, slots))
    slot_positions = torch.full((slots,), EMPTY_SLOT)
    with torch.no_grad():
        full_upper, full_lower = gpt(music, upper, lower)
        music_steps = gpt.music_encoder(music)
        position = 0

        def call(streams: list[int], tokens: list[int], t: int) -> tuple[torch.Tensor, torch.Tensor]:
            nonlocal position
            step_music = music_steps[:, t : t + 1].expand(1, len(streams), -1)
            logits = gpt.ring_generation_step(
                torch.tensor([streams]), torch.tensor([tokens]), step_music, torch.tensor(position),
                keys, values, slot_positions,
            )  # fmt: skip
            position += len(streams)
            return logits

        for t in range(steps):
            if t == 0:
                up_logits, _ = call([0], [0], t)
            else:
                up_logits, _ = call([2, 0], [int(lower[0, t - 1]), 0], t)
            torch.testing.assert_close(up_logits[0], full_upper[0, t], atol=1e-5, rtol=1e-5)
            _, low_logits = call([1], [int(upper[0, t])], t)
            torch.testing.assert_close(low_logits[0], full_lower[0, t], atol=1e-5, rtol=1e-5)


def test_ring_rotations_turn_queries_and_keys_as_rope_does_and_keep_values() -> None:
    torch.manual_seed(0)
    positions = torch.tensor([0, 7, 901, 13_499])
    projections = torch.randn(len(positions), 3, 5, 16)  # (n, q k v, heads, head_dim)
    turned = projections @ ring_rotations(positions, 16)
    rotary = rope_tables(positions, 16)
    for part in (0, 1):
        expected = rope(projections[:, part].transpose(0, 1), rotary).transpose(0, 1)
        torch.testing.assert_close(turned[:, part], expected, atol=1e-6, rtol=0)
    assert torch.equal(turned[:, 2], projections[:, 2])


def test_a_ring_step_makes_every_tensor_on_the_inputs_device() -> None:
    """A CUDA graph cannot capture a copy from the host: the torch runtime's captured step must
    build everything on its inputs' device. Run on the meta device, where any such copy shows."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class CrossDeviceOps(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            tensors = [t for t in tree_leaves((args, kwargs, result)) if isinstance(t, torch.Tensor)]
            if len({t.device.type for t in tensors}) > 1:
                self.seen.append(str(func))
            return result

    with torch.device("meta"):
        gpt = MotionGPT(SMALL_GPT).eval()
        slots = ring_slots(SMALL_GPT, 2)
        keys = torch.zeros(SMALL_GPT.cache_shape(1, slots))
        values = torch.zeros(SMALL_GPT.cache_shape(1, slots))
        slot_positions = torch.full((slots,), EMPTY_SLOT, dtype=torch.long)
        streams, tokens = torch.tensor([[2, 0]]), torch.tensor([[5, 0]])
        music, position = torch.zeros(1, 2, SMALL_GPT.d_model), torch.tensor(7)
    with torch.inference_mode(), CrossDeviceOps() as watch:
        upper, lower = gpt.ring_generation_step(streams, tokens, music, position, keys, values, slot_positions)
    assert upper.device.type == lower.device.type == "meta" and upper.shape == (1, SMALL_GPT.num_upper_codes)
    assert watch.seen == []


def test_attention_reaches_back_exactly_one_window_per_layer() -> None:
    torch.manual_seed(2)
    gpt = MotionGPT(SMALL_GPT).eval()
    window, steps = SMALL_GPT.context_steps, 4 * SMALL_GPT.context_steps
    music = torch.randn(1, steps * 4, 57)
    upper = torch.randint(0, 512, (1, steps))
    lower = torch.randint(0, 512, (1, steps))
    changed = upper.clone()
    changed[0, 0] = (upper[0, 0] + 1) % 512
    with torch.no_grad():
        before, _ = gpt(music, upper, lower)
        after, _ = gpt(music, changed, lower)
    differs = (before - after).abs().amax(dim=-1)[0] > 1e-6
    # Upper token 0 (position 1) is not seen by music position 0, is seen by the next step,
    # and reaches at most num_layers windows of positions ahead.
    reach_positions = SMALL_GPT.num_layers * (window * POSITIONS_PER_STEP - 1)
    last_step_reached = (1 + reach_positions) // POSITIONS_PER_STEP
    assert not differs[0] and differs[1]
    assert not torch.any(differs[last_step_reached + 1 :])


def test_critic_values_one_per_step() -> None:
    critic = Critic(CriticConfig(d_model=32, num_heads=2, num_layers=1))
    values = critic(torch.randn(3, 40, 57), torch.randint(0, 512, (3, 10)), torch.randint(0, 512, (3, 10)))
    assert values.shape == (3, 10)


def test_sampler_is_seeded_and_respects_top_k() -> None:
    logits = np.random.default_rng(0).normal(size=512)
    draws = [TokenSampler(SamplingConfig(seed=5))(logits) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    sampler = TokenSampler(SamplingConfig(seed=1, top_k=3))
    allowed = set(np.argsort(logits)[-3:])
    assert {sampler(logits) for _ in range(200)} <= allowed
    cold = TokenSampler(SamplingConfig(seed=2, temperature=1e-4))
    assert {cold(logits) for _ in range(20)} == {int(np.argmax(logits))}
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=0).validate()


def test_checkpoint_round_trip_without_pickle(tmp_path: Path) -> None:
    torch.manual_seed(0)
    vqvae, gpt = MotionVQVAE(VQVAEConfig()), MotionGPT(GPTConfig())
    vqvae.upper.quantiser.codebook.normal_()
    vqvae.root_std.fill_(0.5)
    path = tmp_path / "generator.safetensors"
    save_checkpoint(path, {"vqvae": vqvae, "gpt": gpt}, {"vqvae": vqvae.cfg, "gpt": gpt.cfg}, dtype=torch.float16)
    assert path.stat().st_size < 40e6  # the shipped generator in fp16
    assert path.read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle
    loaded = DanceGenerator.load(path, device="cpu")
    assert loaded.trained and loaded.source == str(path) and loaded.runtime == "torch"  # no ONNX graphs beside it
    networks = loaded.networks
    tokens = torch.arange(6)[None]
    with torch.no_grad():
        for original, restored in ((vqvae.eval(), networks.vqvae), (gpt.eval(), networks.gpt)):
            if isinstance(original, MotionVQVAE):
                a, b = original.decode(tokens, tokens)[0], restored.decode(tokens, tokens)[0]
            else:
                music = torch.randn(1, 24, 57)
                a, b = original(music, tokens, tokens)[0], restored(music, tokens, tokens)[0]
            torch.testing.assert_close(a, b, atol=0.05, rtol=0.02)  # fp16 storage


def test_checkpoint_with_other_config_keys_is_refused(tmp_path: Path) -> None:
    @dataclasses.dataclass
    class Renamed:
        width: int = 3

    path = tmp_path / "bad.safetensors"
    save_checkpoint(path, {"vqvae": torch.nn.Linear(2, 2)}, {"vqvae": Renamed(), "gpt": GPTConfig()})
    configs, _, _ = read_checkpoint(path)
    assert configs["vqvae"] == {"width": 3}
    with pytest.raises(CheckpointError, match=r"VQVAEConfig does not match"):
        DanceGenerator.load(path, device="cpu")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.safetensors"):
        DanceGenerator.load(tmp_path / "junk.safetensors", device="cpu")


def test_the_torch_runtime_turns_tf32_off_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA, torch's products run in full fp32, as on the CPU: cuDNN's convolutions default to
    TF32, which moved the music encoder enough that a GPU danced other tokens than the CPU."""
    from backend.torch_runtime import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        assert pick_device("cuda").type == "cuda"
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:  # torch's flags are the process's: leave them as they were
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
