"""Training data in two steps, so that each runs where it is cheap.

python -m training.prepare_data collect --tang DIR --music DIR --out data/inputs.npz
    (CPU, librosa) Tang markers at 30 fps in metres + the aligned music features of
    each dance, and the features of music-only songs for the beat reward. fp16, compact
    enough to carry to a GPU machine.
python -m training.prepare_data fit --inputs data/inputs.npz --out data/dataset.npz
    (GPU when present) SMPL rotations fitted to the markers, encoded as the VQ-VAE's
    upper/lower streams, plus a left-right mirrored copy of every dance.
python -m training.prepare_data rl-music --inputs data/inputs.npz --out data/rl_music.npz
    the music the actor-critic stage dances to (no evaluation songs).
python -m training.prepare_data song-features SONG.ogg ... --out data/unseen_songs.npz
    the features of songs to evaluate on (float32, as generation computes them), so that
    ``quality_report --song-features`` runs where librosa is not installed.
python -m training.prepare_data aistpp --motions DIR --music DIR --out data/aistpp.npz
    AIST++ sequences (already SMPL rotations) in the form ``fit`` writes.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.motion_representation import encode_motion
from backend.music_features import FEATURE_DIM, FPS
from models.files import atomic_output

# Songs never to train on (the shared music's README: evaluation and edge cases), and the
# bundled example, kept unseen so the demo shows a song the model never heard.
EXCLUDED_SONGS = (
    "happy_lofi_day.ogg",
    "Kevin_MacLeod_-_Vibe_Ace.ogg",
    "waking_the_devil.ogg",
    "glacier-bay-humpback.ogg",
    "198-209-0000.ogg",
    "sorohanro_-_solo-trumpet-06.ogg",
    "florist.ogg",
)

# SMPL's left/right joint pairs, for mirroring.
MIRROR_PAIRS = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23))
MIRROR_JOINTS = np.arange(24)
for _left, _right in MIRROR_PAIRS:
    MIRROR_JOINTS[_left], MIRROR_JOINTS[_right] = _right, _left
REFLECT_X = np.diag([-1.0, 1.0, 1.0])  # SMPL's left-right axis is X


def mirror_motion(joint_rotations: np.ndarray, root_translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 24, 3, 3), (T, 3) -> the same dance reflected left-right (left and right joints swapped)."""
    mirrored = REFLECT_X @ joint_rotations[:, MIRROR_JOINTS] @ REFLECT_X
    return mirrored, root_translation * [-1.0, 1.0, 1.0]


def aligned_features(features: np.ndarray, offset_s: float, num_frames: int) -> np.ndarray:
    """Rows of song features (at FPS) that play with motion frames 0..num_frames-1."""
    start = round(offset_s * FPS)
    out = np.zeros((num_frames, features.shape[1]), dtype=np.float32)
    rows = features[start : start + num_frames]
    out[: len(rows)] = rows
    if len(rows) < num_frames:
        out[len(rows) :] = rows[-1] if len(rows) else 0.0
    return out


@dataclass
class DatasetRows:
    """Per dance (and per mirrored copy): the lists ``save_dataset`` writes."""

    names: list[str]
    lengths: list[int]
    held_out: list[bool]
    mirrored: list[bool]
    uppers: list[np.ndarray]
    lowers: list[np.ndarray]
    features: list[np.ndarray]


def save_dataset(
    out: Path, rows: DatasetRows, music_names: np.ndarray, music_lengths: np.ndarray, music_features: np.ndarray
) -> None:
    """The training set as ``training.common.Dataset`` reads it (fp16 where precision allows)."""
    with atomic_output(out) as temporary, open(temporary, "wb") as stream:
        np.savez(
            stream,
            names=np.array(rows.names),
            lengths=np.array(rows.lengths),
            held_out=np.array(rows.held_out),
            mirrored=np.array(rows.mirrored),
            upper=np.concatenate(rows.uppers).astype(np.float16),
            lower=np.concatenate(rows.lowers).astype(np.float32),
            features=np.concatenate(rows.features).astype(np.float16),
            music_names=music_names,
            music_lengths=music_lengths,
            music_features=music_features,
        )


def collect(tang_root: Path, music_root: Path, out: Path) -> None:
    from backend.music_features import song_features

    from . import tang2018
    from .metrics import resample_positions

    names, lengths, held_out, has_music, positions, features = [], [], [], [], [], []
    for folder in tang2018.list_dances(tang_root):
        dance = tang2018.load_dance(folder)
        markers = resample_positions(dance.positions, tang2018.SOURCE_FPS, FPS)
        if dance.audio is not None:
            music = aligned_features(song_features(dance.audio).features, dance.audio_offset_s, len(markers))
        else:
            music = np.zeros((len(markers), FEATURE_DIM), dtype=np.float32)
        names.append(dance.name)
        lengths.append(len(markers))
        held_out.append(dance.name in tang2018.HELD_OUT)
        has_music.append(dance.audio is not None)
        positions.append(markers)
        features.append(music)
        print(f"{dance.name}: {len(markers)} frames, music {'yes' if dance.audio else 'no'}", flush=True)

    music_names, music_lengths, music_features = [], [], []
    motion_folders = {folder.name for folder in tang2018.list_dances(tang_root)}
    songs = [f / "audio.ogg" for f in sorted(tang_root.glob("DANCE_*")) if f.name not in motion_folders]
    songs += sorted(p for p in music_root.rglob("*.ogg") if p.name not in EXCLUDED_SONGS)
    held = set(tang2018.HELD_OUT)
    for song in songs:
        if not song.exists() or song.parent.name in held:
            continue
        music = song_features(song).features
        music_names.append(str(song.relative_to(song.parents[1])))
        music_lengths.append(len(music))
        music_features.append(music)
        print(f"music only: {music_names[-1]}: {len(music)} frames", flush=True)

    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        names=np.array(names),
        lengths=np.array(lengths),
        held_out=np.array(held_out),
        has_music=np.array(has_music),
        positions=np.concatenate(positions).astype(np.float16),
        features=np.concatenate(features).astype(np.float16),
        music_names=np.array(music_names),
        music_lengths=np.array(music_lengths),
        music_features=np.concatenate(music_features).astype(np.float16),
    )
    print(f"wrote {out}: {sum(lengths)} motion frames, {sum(music_lengths)} music-only frames")


def fit(inputs: Path, out: Path, device: str, iterations: int, limit: int | None = None) -> None:
    import torch

    from .ik import FitConfig, fit_positions
    from .tang2018 import TANG_JOINT_MAP

    chosen = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    data = dict(np.load(inputs))
    bounds = np.concatenate([[0], np.cumsum(data["lengths"])])
    # The GPT needs music: motion-only dances wait for a pose-only codebook stage.
    chosen_dances = [i for i in range(len(data["names"]))[:limit] if data["has_music"][i]]
    frames = [slice(bounds[i], bounds[i + 1]) for i in chosen_dances]
    began = time.perf_counter()
    result = fit_positions(
        np.concatenate([data["positions"][f] for f in frames]).astype(np.float64),
        TANG_JOINT_MAP,
        FitConfig(device=chosen, iterations=iterations),
        segment_lengths=[f.stop - f.start for f in frames],
    )
    print(f"fitted {len(frames)} dances in {time.perf_counter() - began:.1f} s on {chosen}", flush=True)
    fitted_bounds = np.concatenate([[0], np.cumsum([f.stop - f.start for f in frames])])
    uppers, lowers, report = [], [], {}
    names, lengths, held_out, features, mirrored = [], [], [], [], []
    for k, index in enumerate(chosen_dances):
        name = str(data["names"][index])
        rows = slice(fitted_bounds[k], fitted_bounds[k + 1])
        report[name] = {
            "frames": int(rows.stop - rows.start),
            "mean_error_m": float(result.segment_error[k]),
            "scale": float(result.scales[k]),
        }
        for flip in (False, True):
            rotations, translation = result.joint_rotations[rows], result.root_translation[rows]
            if flip:
                rotations, translation = mirror_motion(rotations, translation)
            upper, lower = encode_motion(rotations, translation)
            uppers.append(upper)
            lowers.append(lower)
            names.append(name)
            lengths.append(len(upper))
            held_out.append(bool(data["held_out"][index]))
            features.append(data["features"][frames[k]])
            mirrored.append(flip)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_dataset(
        out,
        DatasetRows(names, lengths, held_out, mirrored, uppers, lowers, features),
        data["music_names"],
        data["music_lengths"],
        data["music_features"],
    )
    summary = {
        "mean_error_m": result.mean_error,
        "joint_error_m": {str(joint): error for joint, error in result.joint_error.items()},
        "dances": report,
    }
    out.with_suffix(".ik.json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}: {sum(lengths)} frames; IK mean error {summary['mean_error_m'] * 100:.2f} cm")


# Music-only songs kept out of the reward stage too, because evaluations report them as
# songs never seen in training.
EVALUATION_SONGS = ("metronome.ogg",)


def rl_music(inputs: Path, out: Path) -> None:
    """The music features the actor-critic stage dances to: the training captures' songs and the
    music-only songs, without held-out captures, EXCLUDED_SONGS or EVALUATION_SONGS."""
    data = np.load(inputs)
    bounds = np.concatenate([[0], np.cumsum(data["lengths"])])
    music_bounds = np.concatenate([[0], np.cumsum(data["music_lengths"])])
    names, pieces = [], []
    for i, name in enumerate(data["names"]):
        if data["has_music"][i] and not data["held_out"][i]:
            names.append(str(name))
            pieces.append(data["features"][bounds[i] : bounds[i + 1]])
    for i, name in enumerate(data["music_names"]):
        if Path(str(name)).name not in EXCLUDED_SONGS + EVALUATION_SONGS:
            names.append(str(name))
            pieces.append(data["music_features"][music_bounds[i] : music_bounds[i + 1]])
    with atomic_output(out) as temporary, open(temporary, "wb") as stream:
        np.savez(
            stream,
            names=np.array(names),
            lengths=np.array([len(p) for p in pieces]),
            features=np.concatenate(pieces).astype(np.float16),
        )
    minutes = sum(len(p) for p in pieces) / FPS / 60
    print(f"wrote {out}: {len(names)} songs, {minutes:.1f} minutes")


def aistpp(motions: Path, music: Path, out: Path, held_out: set[str]) -> None:
    """AIST++ sequences -> the dataset form ``fit`` writes (rotations need no fitting there)."""
    from backend.music_features import song_features

    from .aistpp import load_sequence

    paths = sorted(motions.glob("*.pkl"))
    if not paths:
        raise SystemExit(f"error: {motions}: no AIST++ motion files (*.pkl)")
    songs: dict[Path, np.ndarray] = {}
    names, lengths, held, mirrored, uppers, lowers, features = [], [], [], [], [], [], []
    for path in paths:
        sequence = load_sequence(path, music)
        if sequence.music not in songs:
            songs[sequence.music] = song_features(sequence.music).features
        aligned = aligned_features(songs[sequence.music], 0.0, len(sequence.rotations))
        for flip in (False, True):
            rotations, translation = sequence.rotations, sequence.translation
            if flip:
                rotations, translation = mirror_motion(rotations, translation)
            upper, lower = encode_motion(rotations, translation)
            names.append(sequence.name)
            lengths.append(len(upper))
            held.append(sequence.name in held_out)
            mirrored.append(flip)
            uppers.append(upper)
            lowers.append(lower)
            features.append(aligned)
    save_dataset(
        out,
        DatasetRows(names, lengths, held, mirrored, uppers, lowers, features),
        np.array([], dtype=str),
        np.zeros(0, dtype=np.int64),
        np.zeros((0, FEATURE_DIM), dtype=np.float16),
    )
    print(f"wrote {out}: {len(paths)} AIST++ sequences (and their mirror images), {sum(lengths) // 2} frames each way")


def load_song_features(path: Path) -> list[tuple[str, np.ndarray]]:
    """(name, (F, 57) float32 features) of each song in a file of ``rl-music`` or ``song-features``."""
    data = np.load(path)
    edges = np.concatenate([[0], np.cumsum(data["lengths"])])
    return [
        (str(name), data["features"][edges[i] : edges[i + 1]].astype(np.float32))
        for i, name in enumerate(data["names"])
    ]


def save_song_features(songs: list[Path], out: Path) -> None:
    """Each song's (F, 57) features, float32, in rl-music's layout (names, lengths, features)."""
    from backend.music_features import song_features

    pieces = [song_features(song).features for song in songs]
    with atomic_output(out) as temporary, open(temporary, "wb") as stream:
        np.savez(
            stream,
            names=np.array([song.name for song in songs]),
            lengths=np.array([len(piece) for piece in pieces]),
            features=np.concatenate(pieces).astype(np.float32),
        )
    print(f"wrote {out}: {len(songs)} songs, {sum(map(len, pieces)) / FPS / 60:.1f} minutes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gather = commands.add_parser("collect")
    gather.add_argument("--tang", type=Path, required=True)
    gather.add_argument("--music", type=Path, required=True)
    gather.add_argument("--out", type=Path, required=True)
    fitting = commands.add_parser("fit")
    fitting.add_argument("--inputs", type=Path, required=True)
    fitting.add_argument("--out", type=Path, required=True)
    fitting.add_argument("--device", default="auto")
    fitting.add_argument("--iterations", type=int, default=400)
    fitting.add_argument("--limit", type=int, default=None, help="only the first N dances (a quick check)")
    reward_music = commands.add_parser("rl-music")
    reward_music.add_argument("--inputs", type=Path, required=True)
    reward_music.add_argument("--out", type=Path, required=True)
    evaluation_songs = commands.add_parser("song-features")
    evaluation_songs.add_argument("songs", type=Path, nargs="+")
    evaluation_songs.add_argument("--out", type=Path, required=True)
    aist = commands.add_parser("aistpp")
    aist.add_argument("--motions", type=Path, required=True, help="folder of AIST++ motion pickles")
    aist.add_argument("--music", type=Path, required=True, help="folder of AIST++ music (<music id>.wav)")
    aist.add_argument("--out", type=Path, required=True)
    aist.add_argument("--held-out", nargs="*", default=[], help="sequence names kept for evaluation")
    args = parser.parse_args()
    if args.command == "aistpp":
        aistpp(args.motions, args.music, args.out, set(args.held_out))
    elif args.command == "collect":
        collect(args.tang, args.music, args.out)
    elif args.command == "rl-music":
        rl_music(args.inputs, args.out)
    elif args.command == "song-features":
        save_song_features(args.songs, args.out)
    else:
        fit(args.inputs, args.out, args.device, args.iterations, args.limit)


if __name__ == "__main__":
    main()
