"""Beat alignment of the shipped dances on songs no training stage used, against two beat references.

    .venv/bin/python scripts/beat_report.py [SONG ...] [--seeds 0 1 2 3] [--beat-candidates 8]

Songs: by default every piece of music in ``../shared/music`` that no training stage used
(``training.prepare_data``: its EXCLUDED_SONGS and EVALUATION_SONGS, less the recordings that are
no music); each is danced whole, as the product does by default. BAS (Bailando's, at 60 fps:
``training.metrics.beat_alignment_score``) is taken against

- **own**: the backend's beats (``backend.music_features``: librosa's tracker on the mel onset
  envelope of the song resampled to 15 360 Hz, 30 frames a second, tightness 100: the beats that
  beat search aims at);
- **independent**: librosa's ``beat_track`` with its defaults at the file's own sample rate
  (hop 512, its own onset envelope), a setting the generator never sees.

Prints one row per dance, the mean and spread per song, and the mean over all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backend.generator import DanceGenerator  # noqa: E402
from backend.music_features import song_features  # noqa: E402
from backend.pipeline import generate  # noqa: E402
from backend.sampling import DEFAULT_BEAT_CANDIDATES, SamplingConfig  # noqa: E402
from bailando_blender.skeleton import forward_kinematics, quaternion_to_matrix  # noqa: E402
from training.metrics import beat_alignment_score  # noqa: E402

MUSIC = REPO.parent / "shared" / "music"
# Never trained on (training.prepare_data's EXCLUDED_SONGS and EVALUATION_SONGS), and music.
UNSEEN = (
    "tad_lofi_cc0/happy_lofi_day.ogg",
    "librosa_data/Kevin_MacLeod_-_Vibe_Ace.ogg",
    "ehlers_free_music_pack/waking_the_devil.ogg",
    "tad_lofi_cc0/florist.ogg",
    "beatgame_cc_by_sa/metronome.ogg",
)


def independent_beats(song: Path) -> np.ndarray:
    """Beat times (s) by librosa's beat_track with its defaults, at the file's own rate."""
    import librosa

    samples, rate = librosa.load(song, sr=None, mono=True)
    _, frames = librosa.beat.beat_track(y=samples, sr=rate)
    return librosa.frames_to_time(frames, sr=rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("songs", type=Path, nargs="*", default=[MUSIC / song for song in UNSEEN])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--beat-candidates", type=int, default=DEFAULT_BEAT_CANDIDATES)
    args = parser.parse_args()
    generator = DanceGenerator.load(None, "cpu")
    print("| song | seed | BAS own | BAS independent |")
    print("|---|---|---|---|")
    every: dict[str, list[float]] = {"own": [], "independent": []}
    summary = []
    for song in args.songs:
        music = song_features(song)
        reference = independent_beats(song)
        scores: dict[str, list[float]] = {"own": [], "independent": []}
        for seed in args.seeds:
            dance = generate(music, generator, SamplingConfig(seed=seed, beat_candidates=args.beat_candidates))
            rotations = quaternion_to_matrix(dance.joint_rotations.astype(np.float64))
            positions, _ = forward_kinematics(rotations, dance.root_translation)
            own = beat_alignment_score(positions, dance.fps, dance.beat_times)
            independent = beat_alignment_score(positions, dance.fps, reference)
            scores["own"].append(own)
            scores["independent"].append(independent)
            print(f"| {song.stem} | {seed} | {own:.3f} | {independent:.3f} |", flush=True)
        for name in scores:
            every[name] += scores[name]
        summary.append(
            f"{song.stem}: own {np.mean(scores['own']):.3f} ± {np.std(scores['own']):.3f}, "
            f"independent {np.mean(scores['independent']):.3f} ± {np.std(scores['independent']):.3f} "
            f"({len(reference)} independent beats, {len(music.beat_times)} own)"
        )
    print("\n".join(summary))
    print(
        f"all: own {np.mean(every['own']):.3f} ± {np.std(every['own']):.3f}, "
        f"independent {np.mean(every['independent']):.3f} ± {np.std(every['independent']):.3f} "
        f"({len(every['own'])} dances)"
    )


if __name__ == "__main__":
    main()
