"""The training captures' dance features, their mean and spread: what the critic stage's
realism and spread charges (``train_actor_critic --realism-weight``, ``--spread-weight``) pull
the policy's dances towards.

    python -m training.capture_statistics --dataset data/dataset.npz --out data/capture_statistics.npz

Per 10-s clip of every capture that is not held out (nor a mirrored copy, as the quality
report's reference set): the 72 corrected kinetic and 32 geometric features
(``dance_features.dance_features``), the quantities FID_k and FID_g compare. Writes ``mean``
and ``std`` (104,), ``covariance`` (104, 104) of the features standardised by them
(``dance_features.standardise``) and ``clips``: under 100 kB, so the GPU machine need not get
the dataset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from backend.music_features import FPS

from .dance_features import dance_features, prepare, standardise
from .quality_report import clips, load_captures


def capture_statistics(dataset: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Mean and standard deviation (104,) of the training captures' clip features, the (104, 104)
    covariance of those features standardised, and the clip count."""
    captures = load_captures(dataset)
    training = [motion for motion, held_out in zip(captures.motions, captures.held_out, strict=True) if not held_out]
    features = np.stack([dance_features(prepare(clip, FPS)) for clip in clips(training)])
    mean, std = features.mean(axis=0), features.std(axis=0)
    covariance = np.cov(standardise(features, mean, std), rowvar=False, bias=True)
    return mean, std, covariance, len(features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="prepare_data fit output (captures)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not args.dataset.is_file():
        sys.exit(f"error: --dataset {args.dataset}: no such file")
    mean, std, covariance, count = capture_statistics(args.dataset)
    if count < 2:
        sys.exit(f"error: --dataset {args.dataset}: {count} training clips of 10 s; the spread needs two or more")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, mean=mean, std=std, covariance=covariance, clips=count)
    print(f"wrote {args.out}: {count} clips, {mean.size} features")


if __name__ == "__main__":
    main()
