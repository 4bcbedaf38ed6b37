"""The ONNX runtime: graphs exported from a checkpoint give the same tokens as torch for the same
seed, stale or missing graphs are refused in one line, and generating needs no torch."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx as onnx_format
import pytest
import torch

from backend.beat_search import SEARCH_CHOICE_TEMPERATURE, SEARCH_CHUNK_STEPS, BeatScorer, choice_noise
from backend.generator import (
    DECODE_CHUNK_TOKENS,
    DEFAULT_WEIGHTS,
    ChunkScorer,
    DanceGenerator,
    decode_spans,
    decoder_reach_tokens,
)
from backend.music_features import BEAT_COLUMN, song_features
from backend.pipeline import generate
from backend.sampling import SamplingConfig, TokenSampler
from models.checkpoint import save_checkpoint
from models.files import ONNX_GRAPHS, CheckpointError, onnx_path
from models.gpt import GPTConfig, MotionGPT
from models.onnx_export import check_ring_in_place, export_generator
from models.vqvae import MotionVQVAE, VQVAEConfig

from .conftest import REPO

EXAMPLE_SONG = REPO / "examples" / "florist_excerpt.ogg"
SMALL_VQVAE = VQVAEConfig(width=32, code_dim=16, num_codes=64, res_blocks=1)
SMALL_GPT = GPTConfig(d_model=32, num_layers=2, num_heads=2, context_steps=5, num_upper_codes=64, num_lower_codes=64)


def small_checkpoint(path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    vqvae, gpt = MotionVQVAE(SMALL_VQVAE), MotionGPT(SMALL_GPT)
    for half in (vqvae.upper, vqvae.lower):
        half.quantiser.codebook.normal_()
    gpt.music_encoder.feature_std.fill_(50.0)  # features as computed span hundreds
    save_checkpoint(path, {"vqvae": vqvae, "gpt": gpt}, {"vqvae": vqvae.cfg, "gpt": gpt.cfg}, dtype=torch.float16)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "small.safetensors"
    small_checkpoint(path, seed=0)
    export_generator(path)
    return path


@pytest.mark.slow
def test_exported_graphs_give_torchs_tokens_far_past_the_window(exported: Path) -> None:
    onnx, reference = DanceGenerator.load(exported, "cpu", "onnx"), DanceGenerator.load(exported, "cpu", "torch")
    assert (onnx.runtime, reference.runtime) == ("onnx", "torch")
    assert all(onnx_path(exported, graph).stat().st_size < 1e6 for graph in ONNX_GRAPHS)
    features = np.random.default_rng(3).normal(0, 30, (4 * 7 * SMALL_GPT.context_steps + 3, 57)).astype(np.float32)
    for sampling in (SamplingConfig(seed=1), SamplingConfig(seed=2, temperature=0.7, top_k=5)):
        tokens = onnx.tokens(features, sampling)
        expected = reference.tokens(features, sampling)
        np.testing.assert_array_equal(tokens[0], expected[0])
        np.testing.assert_array_equal(tokens[1], expected[1])
        assert len(set(tokens[0])) > 5  # a real sequence, not one token repeated
        motion, expected_motion = onnx.decode(*tokens), reference.decode(*tokens)
        np.testing.assert_allclose(motion[0], expected_motion[0], atol=1e-5)
        np.testing.assert_allclose(motion[1], expected_motion[1], atol=1e-5)


def test_the_ring_starts_each_song_afresh_and_refuses_a_stale_cache(exported: Path) -> None:
    """The GPT step's ring is reused from song to song: a second song gives what the first did,
    and a cache that is not the last step's is refused rather than read where the ring has moved on."""
    onnx = DanceGenerator.load(exported, "cpu", "onnx")
    features = np.random.default_rng(5).normal(0, 30, (4 * 3 * SMALL_GPT.context_steps, 57)).astype(np.float32)
    first = onnx.tokens(features, SamplingConfig(seed=4))
    onnx.tokens(features[: 4 * 7], SamplingConfig(seed=9))  # a song that stops mid-ring
    again = onnx.tokens(features, SamplingConfig(seed=4))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    networks = onnx.networks
    cache = networks.new_cache()
    music = np.zeros((1, SMALL_GPT.d_model), np.float32)
    _, _, later = networks.step(np.array([0]), np.array([[0]]), music, cache)
    with pytest.raises(RuntimeError, match="used twice"):
        networks.step(np.array([0]), np.array([[0]]), music, cache)
    networks.step(np.array([1]), np.array([[3]]), music, later)


def test_the_ring_is_written_in_place_only_where_the_graph_allows_it(exported: Path) -> None:
    """RingStep binds one buffer as each ring input and its next_ output: sound only while each
    ring input is read by its scatter alone. The exporter checks it; the shipped graph passes;
    a graph with a second reader of a ring input is refused."""
    for weights in (exported, DEFAULT_WEIGHTS):
        for graph in ("gpt_step", "ring_select"):
            check_ring_in_place(onnx_format.load(str(onnx_path(weights, graph))), graph)
    model = onnx_format.load(str(onnx_path(exported, "gpt_step")))
    model.graph.node.append(onnx_format.helper.make_node("Identity", ["ring_values_1"], ["old_values"]))
    with pytest.raises(CheckpointError, match=r"ring input ring_values_1 is read by \[ScatterND -> next_ring_"):
        check_ring_in_place(model)


def test_each_residual_and_norm_is_one_fused_node(exported: Path) -> None:
    """Each residual sum, its bias and the LayerNorm after it are one SkipLayerNormalization in
    the exported step, and in the shipped one: none left apart."""
    for weights, layers in ((exported, SMALL_GPT.num_layers), (DEFAULT_WEIGHTS, GPTConfig().num_layers)):
        kinds = [node.op_type for node in onnx_format.load(str(onnx_path(weights, "gpt_step"))).graph.node]
        assert kinds.count("LayerNormalization") == 0
        assert kinds.count("SkipLayerNormalization") == 2 * layers + 1  # two a block, and the final norm


def test_graphs_of_another_checkpoint_are_refused(exported: Path, tmp_path: Path) -> None:
    stale = tmp_path / "small.safetensors"
    small_checkpoint(stale, seed=1)  # retrained, graphs not exported again
    for graph in ONNX_GRAPHS:
        shutil.copy(onnx_path(exported, graph), onnx_path(stale, graph))
    with pytest.raises(CheckpointError, match=r"small\.safetensors: its ONNX graphs were made from another checkpoint"):
        DanceGenerator.load(stale, "cpu", "onnx")
    with pytest.raises(CheckpointError, match="made from another checkpoint"):
        DanceGenerator.load(stale, "cpu", "auto")  # auto refuses too, rather than a silent switch to torch
    onnx_path(stale, "gpt_step").write_bytes(b"not a graph")
    with pytest.raises(CheckpointError, match=r"gpt_step\.onnx: not a usable ONNX graph"):
        DanceGenerator.load(stale, "cpu", "onnx")


def test_missing_graphs(tmp_path: Path, python: str) -> None:
    weights = tmp_path / "bare.safetensors"
    small_checkpoint(weights, seed=0)
    assert DanceGenerator.load(weights, "cpu").runtime == "torch"  # auto falls back to torch
    with pytest.raises(CheckpointError, match=r"music_encoder\.onnx: missing \(python -m models\.onnx_export"):
        DanceGenerator.load(weights, "cpu", "onnx")
    command = [python, "-m", "backend", "generate", str(EXAMPLE_SONG), "--out", str(tmp_path / "d.npz")]
    result = subprocess.run(
        [*command, "--runtime", "onnx", "--weights", str(weights), "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {onnx_path(weights, 'music_encoder')}: missing (python -m models.onnx_export {weights} makes it)"
    ]
    assert not (tmp_path / "d.npz").exists()


@pytest.mark.slow
def test_shipped_graphs_dance_as_the_shipped_weights_do() -> None:
    """The README's default (ONNX) and torch: same tokens for the same seed, rotations within 1e-4."""
    music = song_features(EXAMPLE_SONG, 0.0, 20.0)  # 150 steps: more than two windows
    onnx = DanceGenerator.load(None, "cpu")
    assert onnx.runtime == "onnx" and onnx.trained and onnx.source == str(DEFAULT_WEIGHTS)
    reference = DanceGenerator.load(None, "cpu", "torch")
    sampling = SamplingConfig(seed=11)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(onnx.tokens(music.features, sampling), reference.tokens(music.features, sampling), strict=True)
    )
    dance, expected = generate(music, onnx, sampling), generate(music, reference, sampling)
    np.testing.assert_allclose(dance.joint_rotations, expected.joint_rotations, atol=1e-4)
    np.testing.assert_allclose(dance.root_translation, expected.root_translation, atol=1e-4)


@pytest.mark.slow
def test_generating_needs_no_torch(tmp_path: Path, python: str) -> None:
    """torch made unimportable: the CLI dances with the shipped graphs and never reaches for it."""
    out = tmp_path / "dance.npz"
    script = (
        "import importlib.abc, sys\n"
        "class NoTorch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'smplx'):\n"
        "            raise ImportError(f'{name} is blocked')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from backend.cli import main\n"
        f"code = main(['generate', {str(EXAMPLE_SONG)!r}, '--out', {str(out)!r}, '--end', '10', '--quiet'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([python, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "untrained" not in result.stdout and out.is_file()
    with np.load(out) as dance:
        assert bool(dance["trained"]) and dance["joint_rotations"].shape == (300, 24, 4)


@pytest.mark.parametrize(("downsamples", "res_blocks"), [(2, 3), (1, 2), (3, 1)])
def test_the_decoders_reach_is_where_one_token_stops_mattering(downsamples: int, res_blocks: int) -> None:
    torch.manual_seed(downsamples * 10 + res_blocks)
    cfg = VQVAEConfig(width=16, code_dim=8, num_codes=32, num_downsamples=downsamples, res_blocks=res_blocks)
    vqvae = MotionVQVAE(cfg).eval()
    for half in (vqvae.upper, vqvae.lower):
        half.quantiser.codebook.normal_()
    reach, frames, middle = decoder_reach_tokens(dataclasses.asdict(cfg)), cfg.frames_per_token, 60
    tokens = torch.randint(0, 32, (1, 2 * middle))
    changed = tokens.clone()
    changed[0, middle] = (tokens[0, middle] + 1) % 32
    with torch.no_grad():
        before, after = vqvae.decode(tokens, tokens)[0][0], vqvae.decode(changed, changed)[0][0]
    moved = torch.nonzero((before - after).abs().amax(dim=1) > 0)[:, 0]
    assert (middle - reach) * frames <= int(moved.min()) < (middle - reach + 1) * frames
    assert (middle + reach) * frames <= int(moved.max()) < (middle + reach + 1) * frames


def test_decoding_in_chunks_gives_the_frames_of_one_pass() -> None:
    generator = DanceGenerator.load(None, "cpu", "onnx")
    rng = np.random.default_rng(3)
    for length in (DECODE_CHUNK_TOKENS + 1, 3 * DECODE_CHUNK_TOKENS - 50):
        upper, lower = rng.integers(0, 512, length), rng.integers(0, 512, length)
        reach = decoder_reach_tokens(generator.networks.vqvae_config)
        assert len(decode_spans(length, DECODE_CHUNK_TOKENS, reach)) > 1
        chunks = generator.decode(upper, lower, in_chunks=True)
        for chunked, (whole,) in zip(chunks, generator.networks.decode(upper[None], lower[None]), strict=True):
            assert chunked.shape == whole.shape == (4 * length, whole.shape[1])
            np.testing.assert_allclose(chunked, whole, atol=1e-5, rtol=0)


def test_decode_spans_keep_each_token_once_with_its_margin() -> None:
    for length in (1, 40, 64, 65, 90, 200, 1000):
        spans = decode_spans(length, 64, 10)
        assert [token for _, first, end in spans for token in range(first, end)] == list(range(length))
        for start, first, end in spans:
            assert start + min(64, length) >= end  # one shape: the chunk (or the whole song)
            assert first - start >= 10 or start == 0
            assert start + 64 - end >= 10 or end == length


def chunk_token_sum(upper: np.ndarray, lower: np.ndarray, start: int, end: int) -> np.ndarray:
    """A chunk scorer with no float in it, so both runtimes choose alike: each row's token sum over the chunk."""
    return (upper[:, start:end].sum(axis=1) + lower[:, start:end].sum(axis=1)).astype(np.float64)


def recorder(scorer: ChunkScorer, ratings: list[tuple[int, float]]) -> ChunkScorer:
    """``scorer``, noting (chunk start, rating) of each candidate in ``ratings``."""

    def recording(upper: np.ndarray, lower: np.ndarray, start: int, end: int) -> np.ndarray:
        rated = scorer(upper, lower, start, end)
        ratings.extend((start, float(rating)) for rating in rated)
        return rated

    return recording


def kept_ratings(ratings: list[tuple[int, float]], seed: int) -> dict[int, float]:
    """{chunk start: the rating of the candidate beat search keeps}, from the (start, rating) of
    every candidate in order: the highest rating plus the choice's Gumbel noise."""
    draws = SEARCH_CHOICE_TEMPERATURE * choice_noise(seed).gumbel(size=len(ratings))
    kept: dict[int, tuple[float, float]] = {}
    for (start, rating), draw in zip(ratings, draws, strict=True):
        if start not in kept or rating + draw > kept[start][0]:
            kept[start] = (rating + draw, rating)
    return {start: rating for start, (_, rating) in kept.items()}


def one_after_another(
    generator: DanceGenerator, features: np.ndarray, sampling: SamplingConfig, score: ChunkScorer
) -> tuple[np.ndarray, np.ndarray]:
    """Beat search as it ran before its batch axis: torch's cache of one row, each candidate of a
    chunk sampled from the chunk's start in turn, scored alone, the token draws taken in that order."""
    networks = generator.networks
    frames = generator.frames_per_token
    steps = -(-len(features) // frames)
    padded = np.concatenate([features, np.repeat(features[-1:], steps * frames - len(features), axis=0)])
    music_steps = networks.encode_music(padded.astype(np.float32))
    no_music = np.zeros((1, networks.d_model), np.float32)
    sampler, noise = TokenSampler(sampling), choice_noise(sampling.seed)
    upper, lower = np.zeros(steps, np.int64), np.zeros(steps, np.int64)
    cache = networks.new_cache()
    for first in range(0, steps, SEARCH_CHUNK_STEPS):
        end = min(first + SEARCH_CHUNK_STEPS, steps)
        best = None
        for _ in range(sampling.beat_candidates):
            tried, tried_upper, tried_lower = cache, upper.copy(), lower.copy()
            for t in range(first, end):
                if t == 0:
                    streams, tokens, music = np.array([0]), np.array([[0]]), music_steps[:1]
                else:
                    streams, tokens = np.array([2, 0]), np.array([[tried_lower[t - 1], 0]])
                    music = np.concatenate([no_music, music_steps[t : t + 1]])
                logits, _, tried = networks.step(streams, tokens, music, tried)
                tried_upper[t] = sampler(logits[0])
                _, logits, tried = networks.step(np.array([1]), tried_upper[None, t : t + 1], no_music, tried)
                tried_lower[t] = sampler(logits[0])
            rating = score(tried_upper[None, :end], tried_lower[None, :end], first, end)[0] + (
                SEARCH_CHOICE_TEMPERATURE * noise.gumbel()
            )
            if best is None or rating > best[0]:
                best = (rating, tried_upper, tried_lower, tried)
        assert best is not None
        _, upper, lower, cache = best
    return upper, lower


def test_beat_search_side_by_side_gives_the_dance_of_one_candidate_after_another(exported: Path) -> None:
    """The candidates of a chunk run as the rows of one batch (ONNX Runtime's ring and torch's
    cache); the dance is the one sampled candidate after candidate, token for token, for the
    real scorer and for one with no float in it."""
    onnx, reference = DanceGenerator.load(exported, "cpu", "onnx"), DanceGenerator.load(exported, "cpu", "torch")
    rng = np.random.default_rng(12)
    features = rng.normal(0, 30, (4 * 3 * SMALL_GPT.context_steps + 7, 57)).astype(np.float32)
    features[:, BEAT_COLUMN] = 0.0
    features[::15, BEAT_COLUMN] = 1.0
    for seed, candidates in ((3, 4), (5, 8)):
        sampling = SamplingConfig(seed=seed, beat_candidates=candidates)
        scorers = (chunk_token_sum, BeatScorer(features, reference.decode_candidates, reference.frames_per_token))
        for score in scorers:
            expected = one_after_another(reference, features, sampling, score)
            for generator in (onnx, reference):
                tokens = generator.tokens(features, sampling, score=score)
                np.testing.assert_array_equal(tokens[0], expected[0])
                np.testing.assert_array_equal(tokens[1], expected[1])


def test_beat_search_keeps_the_chunk_with_the_highest_rating_and_noise(exported: Path) -> None:
    """Each chunk kept is the candidate whose rating plus noise is highest, and the search
    changes the dance from plain sampling's."""
    onnx = DanceGenerator.load(exported, "cpu", "onnx")
    features = np.random.default_rng(6).normal(0, 30, (4 * 4 * SMALL_GPT.context_steps + 5, 57)).astype(np.float32)
    sampling = SamplingConfig(seed=3, beat_candidates=4)
    ratings: list[tuple[int, float]] = []
    tokens = onnx.tokens(features, sampling, score=recorder(chunk_token_sum, ratings))
    plain = onnx.tokens(features, SamplingConfig(seed=3, beat_candidates=1), score=chunk_token_sum)
    assert not np.array_equal(plain[0], tokens[0])
    starts = sorted({start for start, _ in ratings})
    assert len(ratings) == 4 * len(starts) and starts[0] == 0
    kept = kept_ratings(ratings, sampling.seed)
    for start in starts:
        end = min(start + SEARCH_CHUNK_STEPS, len(tokens[0]))
        tried = [rating for first, rating in ratings if first == start]
        assert len(set(tried)) > 1  # the candidates differ
        assert chunk_token_sum(tokens[0][None], tokens[1][None], start, end)[0] == kept[start]


def test_beat_search_keeps_the_chunk_drawn_by_the_beat_reward(exported: Path) -> None:
    """With the real scorer (decode, forward kinematics, the beat reward against the song's beat
    column), every kept chunk, scored again in the finished dance, has the rating of the
    candidate drawn (a rating reads no token after its chunk); and the draw is not always the
    best: with these ratings the noise changes some choices."""
    generator = DanceGenerator.load(exported, "cpu", "onnx")
    rng = np.random.default_rng(8)
    features = rng.normal(0, 30, (4 * 40, 57)).astype(np.float32)
    features[:, BEAT_COLUMN] = 0.0
    features[::15, BEAT_COLUMN] = 1.0  # a beat every half second
    scorer = BeatScorer(features, generator.decode_candidates, generator.frames_per_token)
    ratings: list[tuple[int, float]] = []
    upper, lower = generator.tokens(
        features, SamplingConfig(seed=1, beat_candidates=3), score=recorder(scorer, ratings)
    )
    kept = kept_ratings(ratings, seed=1)
    not_best = 0
    for start in sorted(kept):
        end = min(start + SEARCH_CHUNK_STEPS, len(upper))
        assert scorer(upper[None], lower[None], start, end)[0] == pytest.approx(kept[start], abs=1e-9)
        not_best += kept[start] < max(rating for first, rating in ratings if first == start)
    assert not_best > 0
