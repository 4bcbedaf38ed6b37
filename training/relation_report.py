"""Which body relations keep a generator's FID_g high: the geometric features one by one.

    python -m training.relation_report --dataset data/dataset.npz [--model models/weights/generator.safetensors]
        [--also runs/other.safetensors ...] [--seeds 0 1]

FID_g (``training/dance_features.py``) compares the 32 geometric relations (a hand moving fast,
a knee bent, an ankle in front of the other leg's plane, ...), each the share of a 10-s clip's
frames in which it holds, normalised by the held-out captures' mean and standard deviation.
Its mean term is the sum over relations of the squared normalised difference of the two sets'
means; of the rest (the covariance term), the part that each relation's own deviation makes is
the squared normalised difference of the deviations (all of it, were the relations
independent), and what is left comes of how the relations vary together. This prints, per
relation, the held-out captures' mean and deviation and, for each method, its mean, that
relation's part of the mean term and its deviation against the captures': what to look at when
FID_g is high.

Methods, on the held-out Tang songs: each generator (danced as the product does, stage radius
included), the retrieval baseline of the quality report, the training captures (other songs),
and the held-out captures mirrored left-right as the training data's mirrored copies are.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from backend.generator import DanceGenerator
from backend.music_features import FPS
from backend.pipeline import STAGE_RADIUS_M
from backend.sampling import SamplingConfig

from .dance_features import GEOMETRIC_NAMES, frechet_distance, geometric_features, normalise, prepare
from .evaluate import features_as_music
from .quality_report import Motion, clips, generated_dance, load_captures, mirrored_motion, retrieval_dance


def relation_shares(motions: list[Motion]) -> np.ndarray:
    """(clips, 32) geometric features of the 10-s clips of ``motions``."""
    return np.stack([geometric_features(prepare(clip, FPS)) for clip in clips(motions)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="prepare_data fit output (captures)")
    parser.add_argument("--model", type=Path, default=None, help="generator checkpoint (default: the shipped one)")
    parser.add_argument("--also", type=Path, nargs="*", default=[], help="more generators, each named by its file")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--stage-radius", type=float, default=STAGE_RADIUS_M, help="metres (0: not held)")
    args = parser.parse_args()

    captures = load_captures(args.dataset)
    held = [k for k, held_out in enumerate(captures.held_out) if held_out]
    real = relation_shares([captures.motions[k] for k in held])
    generators = {"ours": DanceGenerator.load(args.model, "cpu")}
    generators |= {path.stem: DanceGenerator.load(path, "cpu") for path in args.also}
    methods: dict[str, list[Motion]] = {}
    for name, generator in generators.items():
        methods[name] = [
            generated_dance(
                generator, features_as_music(captures.features[k]), SamplingConfig(seed=seed), args.stage_radius
            )
            for k in held
            for seed in args.seeds
        ]
    methods["retrieval"] = [retrieval_dance(captures.features[k], captures) for k in held]
    methods["training captures"] = [
        motion for motion, held_out in zip(captures.motions, captures.held_out, strict=True) if not held_out
    ]
    methods["held-out captures, mirrored"] = [mirrored_motion(captures.streams[k]) for k in held]
    shares = {name: relation_shares(motions) for name, motions in methods.items()}

    normalised = {name: normalise(real, s) for name, s in shares.items()}
    # Each relation's part of the mean term: the squared difference of the normalised means.
    parts = {
        name: (real_n.mean(axis=0) - method_n.mean(axis=0)) ** 2 for name, (real_n, method_n) in normalised.items()
    }
    # Each relation's deviation, normalised: in units of the captures' (theirs is then 1, or 0
    # where they never vary and the relation stays in its own units), and its part of the
    # covariance term: the squared difference from the captures'.
    ratios = {name: method_n.std(axis=0) for name, (_, method_n) in normalised.items()}
    real_ratio = normalise(real, real)[0].std(axis=0)
    deviation_parts = {name: (real_ratio - ratio) ** 2 for name, ratio in ratios.items()}
    mean, deviation = real.mean(axis=0), real.std(axis=0)
    print(f"held-out captures: {len(real)} clips; per method: the relation's mean share of frames, its part")
    print("of FID_g's mean term ((mean - captures' mean) / captures' deviation)², and its deviation in the")
    print("captures' (x1.00: theirs)\n")
    print("| relation | captures | deviation | " + " | ".join(shares) + " |")
    print("|---|---|---|" + "---|" * len(shares))
    for i, name in enumerate(GEOMETRIC_NAMES):
        cells = [
            f"{shares[method][:, i].mean():.2f} ({parts[method][i]:.1f}; x{ratios[method][i]:.2f})" for method in shares
        ]
        print(f"| {i}: {name} | {mean[i]:.2f} | {deviation[i]:.2f} | " + " | ".join(cells) + " |")
    totals = []
    for m in shares:
        total, mean_term, deviations = frechet_distance(*normalised[m]), parts[m].sum(), deviation_parts[m].sum()
        totals.append(
            f"{total:.1f} (mean term {mean_term:.1f}; deviations {deviations:.1f}; relations varying together "
            f"{total - mean_term - deviations:.1f}; {len(shares[m])} clips)"
        )
    print("| FID_g | | | " + " | ".join(totals) + " |")


if __name__ == "__main__":
    main()
