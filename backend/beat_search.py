"""Beat search: sampling that looks a second ahead and keeps the continuation most on the beat.

Generation runs in chunks of ``SEARCH_CHUNK_STEPS`` token steps. For each chunk the GPT samples
``SamplingConfig.beat_candidates`` continuations from the same state, side by side as the rows
of one batch; they are decoded together, each with the ``SEARCH_CONTEXT_STEPS`` steps before it,
and scored in one vectorised pass by the beat reward of the critic stage
(``beat_reward.step_rewards``: beats hit, off-beat motion, jerk, foot skating, freezing and
slowness charged as there), and one is kept: drawn by its rating (softmax at
``SEARCH_CHOICE_TEMPERATURE``, through Gumbel noise on each rating), not always the best, so
that two seeds do not converge on the same best-rated moves. Every candidate is a sample of the
GPT itself, so the poses stay the GPT's, where the critic stage's finetuning moved them away
from the captures (model card: FID_g 14.2 for the GPT alone, 27.8 after it, on held-out songs).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bailando_blender.skeleton import forward_kinematics

from .beat_reward import RewardWeights, batch_step_rewards, floor_height
from .motion_representation import decode_motion
from .music_features import BEAT_COLUMN

SEARCH_CHUNK_STEPS = 8  # token steps a candidate spans (8 x 4 frames at 30 fps: 1.07 s)
SEARCH_CONTEXT_STEPS = 8  # steps already chosen, decoded before a candidate so its start moves as it will
# The weights a candidate is scored by: the critic stage's (version 5's flags: the legs'
# slowness charged 0.5) with jerk over the limit charged 1 rather than 0.5, which brought the
# held-out jerk from 382 to 354 m/s^3 (captures 309; model card: Version 6), and the beat paid
# 4 rather than 3, which the drawn choice below needs to stay on the beat of unseen songs
# (model card: Version 7).
SEARCH_REWARD = RewardWeights(hit=4.0, jerk=1.0, slow=0.5, slow_joints="legs")
# Scale of the Gumbel noise added to each candidate's rating before the highest is kept, in the
# reward's units (a beat hit squarely pays SEARCH_REWARD.hit): a candidate is kept with
# probability softmax(rating / this) over its chunk's. Always keeping the best (0) cost variety:
# held-out Div_k 8.5 keeping the best of 6, 9.2-9.3 drawing among 8 at 0.5-0.75, in the
# prototype sweep at a 3-m stage (model card: Version 7).
SEARCH_CHOICE_TEMPERATURE = 0.75
CHOICE_SEED_STREAM = 1  # the choice draws from this stream of the sampling seed; the tokens from its first


def choice_noise(seed: int) -> np.random.Generator:
    """The random stream that beat search's choices draw from, for a sampling seed: its own, so
    the tokens a seed samples do not depend on how many choices came before."""
    return np.random.default_rng([seed, CHOICE_SEED_STREAM])


# (upper tokens, lower tokens) (B, L) -> (upper (B, 4L, 90), lower (B, 4L, 58)) motion vectors.
Decoder = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class BeatScorer:
    """Scores candidate chunks of tokens against the song's beats.

    features: the song's (T, FEATURE_DIM) music features (its beat column marks beat frames);
    decode: the generator's decoder of a batch of tokens (``DanceGenerator.decode_candidates``);
    frames_per_token: its motion frames per step.
    """

    def __init__(self, features: np.ndarray, decode: Decoder, frames_per_token: int) -> None:
        self.beats = features[:, BEAT_COLUMN] > 0.5
        self.decode = decode
        self.frames_per_token = frames_per_token

    def __call__(self, upper: np.ndarray, lower: np.ndarray, start: int, end: int) -> np.ndarray:
        """(B,) summed rewards of steps [start, end) of each row of the (B, L) token arrays (one
        candidate a row), those steps decoded after up to SEARCH_CONTEXT_STEPS of the steps before them."""
        first = max(0, start - SEARCH_CONTEXT_STEPS)
        upper_motion, lower_motion = self.decode(upper[:, first:end], lower[:, first:end])
        rotations, translation = decode_motion(upper_motion, lower_motion)
        positions, _ = forward_kinematics(rotations, translation)
        positions[..., 1] -= floor_height(positions)[:, None, None]
        frames = slice(first * self.frames_per_token, end * self.frames_per_token)
        beats = np.zeros(positions.shape[1], dtype=bool)
        known = self.beats[frames]
        beats[: known.size] = known  # the song's last step runs past its last frame
        rewards, _ = batch_step_rewards(positions, beats, self.frames_per_token, SEARCH_REWARD)
        return rewards[:, start - first :].sum(axis=1)
