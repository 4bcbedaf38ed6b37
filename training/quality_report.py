"""The quality report: every metric, side by side, for the captures, our model and two baselines.

    python -m training.quality_report --inputs data/inputs.npz --dataset data/dataset.npz \
        --model models/weights/generator.safetensors --without-critic runs/gpt_generator.safetensors \
        --songs ../shared/music/tad_lofi_cc0/happy_lofi_day.ogg ... --seeds 0 1 --out report.json

Two song sets:
- **held-out Tang songs** (never trained on): ground truth = their captures as fitted by
  ``prepare_data fit``; the methods dance to the same music;
- **unseen songs** (``--songs``, or their features saved by ``prepare_data song-features`` and
  given as ``--song-features``; no ground truth).
Methods: the model (``--model``), the GPT without the actor-critic stage (``--without-critic``,
optional),
any candidates (``--also``, each named by its file), and retrieval: for every 8-s stretch of
the song, the training capture's stretch whose music features are nearest, laid end to end
with the root carried over. The models' dances are made as the product makes them, held
within ``--stage-radius`` of their start (0: not held; the retrieval and the captures never are).

Per dance: BAS, BAS 2D (X-Dancer's: on the joints projected as the 2D pose pass's Wide camera
sees them, still and framing the whole dance), how the pass's following camera (its default,
``follow_camera``) frames the body (the median share of the frame's height its keypoints
span, the share of frames with all of them in frame), joint speed, jerk, foot skating, PFC,
ground penetration (the deepest, and the share of frames more than 1 cm under), the longest
frozen stretch, the root's farthest distance and joint-limit violations (``training/metrics.py``).
Per set: FID_k and FID_g against the held-out captures and Div_k, Div_g
(``training/dance_features.py``), on 10-s clips so that six songs give enough samples; and
FID_k, Div_k again on the kinetic features with their published acceleration slip corrected
("fixed": as published, a third of them grows with each joint's distance from where the
clip's root starts, so travel within a clip weighs in).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from backend.generator import DanceGenerator
from backend.motion_representation import decode_motion
from backend.music_features import FPS, MusicFeatures, song_features
from backend.pipeline import STAGE_RADIUS_M, floor_height, generate
from backend.sampling import SamplingConfig
from bailando_blender import follow_camera
from bailando_blender.pose_keypoints import BODY_18, FEET, whole_body_keypoints
from bailando_blender.projection import FRAMING_SENSOR_MM, POSE_PASS_SIZE, CameraModel, framing_camera, project
from bailando_blender.skeleton import SMPL_TO_BLENDER, forward_kinematics, points_to_blender, quaternion_to_matrix

from . import dance_features, metrics
from .evaluate import features_as_music
from .prepare_data import load_song_features, mirror_motion

RETRIEVAL_SECONDS = 8.0  # length of the stretches the retrieval baseline matches
CLIP_SECONDS = 10.0  # FID and diversity are computed on clips of this length


@dataclass
class Motion:
    """rotations (T, 24, 3, 3) local; positions (T, 24, 3) metres, floor at y = 0; at FPS."""

    rotations: np.ndarray
    positions: np.ndarray


def motion_from(rotations: np.ndarray, translation: np.ndarray) -> Motion:
    positions, _ = forward_kinematics(rotations, translation)
    positions[..., 1] -= floor_height(positions)
    return Motion(rotations, positions)


def mirrored_motion(streams: tuple[np.ndarray, np.ndarray]) -> Motion:
    """A capture's (upper, lower) motion streams as a dance mirrored left-right, as
    ``prepare_data`` mirrors the training copies."""
    return motion_from(*mirror_motion(*decode_motion(*streams)))


def projected_joints(positions: np.ndarray) -> np.ndarray:
    """(T, 24, 3) SMPL-frame positions -> (T, 24, 2) pixels of the 2D pose pass's default camera
    (level, in front of the dancer, framing the whole dance at X-Dancer's 512 x 896)."""
    world = points_to_blender(positions)
    width, height = POSE_PASS_SIZE
    matrix, lens = framing_camera(world, np.array([0.0, -1.0, 0.0]), width, height, FRAMING_SENSOR_MM)
    camera = CameraModel(
        np.linalg.inv(matrix), False, lens, 0.0, FRAMING_SENSOR_MM, FRAMING_SENSOR_MM, "AUTO", 0.0, 0.0, width, height
    )
    return project(world, camera)[0]


def pass_framing(motion: Motion) -> follow_camera.Framing:
    """How the 2D pose pass's following camera frames the body's keypoints at X-Dancer's 512 x 896."""
    _, turns = forward_kinematics(motion.rotations, np.zeros((len(motion.rotations), 3)))
    keypoints = whole_body_keypoints(points_to_blender(motion.positions), SMPL_TO_BLENDER @ turns)
    body = keypoints[:, : len(BODY_18) + len(FEET)]
    width, height = POSE_PASS_SIZE
    path = follow_camera.follow_path(body, np.array([0.0, -1.0, 0.0]), FPS, width, height)
    camera = CameraModel(
        np.linalg.inv(path.matrices), False, path.lens_mm, 0.0, path.sensor_mm, path.sensor_mm, "AUTO", 0.0, 0.0,
        width, height,
    )  # fmt: skip
    return follow_camera.framing(project(body, camera)[0], width, height, path.matrices[:, :3, 3], FPS)


def dance_row(motion: Motion, beat_times: np.ndarray) -> dict[str, float]:
    row = metrics.summary(motion.positions, FPS, beat_times)
    framing = pass_framing(motion)
    row["frame_fill"] = float(np.median(framing.fill))
    row["in_frame_share"] = float(framing.inside.mean())
    # X-Dancer's 2D beat alignment: BAS on the joints as the pose pass projects them.
    row["bas_2d"] = metrics.beat_alignment_score(projected_joints(motion.positions), FPS, beat_times)
    row["penetration_mean_m"] = metrics.ground_penetration(motion.positions)[1]
    row["joint_limit_share"] = metrics.joint_limit_violations(motion.rotations)
    return row


def clips(motions: list[Motion]) -> list[np.ndarray]:
    length = round(CLIP_SECONDS * FPS)
    return [m.positions[s : s + length] for m in motions for s in range(0, len(m.positions) - length + 1, length)]


@dataclass
class Captures:
    """Per capture: its name, whether it is held out, its motion, its music features (F, 57) and
    its (upper, lower) motion vectors as stored, (F, 90) and (F, 58)."""

    names: list[str]
    held_out: list[bool]
    motions: list[Motion]
    features: list[np.ndarray]
    streams: list[tuple[np.ndarray, np.ndarray]]


def load_captures(path: Path) -> Captures:
    """The fitted captures (not their mirrored copies) from ``prepare_data fit``."""
    data = np.load(path)
    bounds = np.concatenate([[0], np.cumsum(data["lengths"])])
    captures = Captures([], [], [], [], [])
    for i, name in enumerate(data["names"]):
        if data["mirrored"][i]:
            continue
        rows = slice(bounds[i], bounds[i + 1])
        upper, lower = data["upper"][rows], data["lower"][rows]
        captures.names.append(str(name))
        captures.held_out.append(bool(data["held_out"][i]))
        captures.motions.append(motion_from(*decode_motion(upper, lower)))
        captures.features.append(data["features"][rows].astype(np.float32))
        captures.streams.append((upper, lower))
    return captures


def music_summary(features: np.ndarray) -> np.ndarray:
    return np.concatenate([features.mean(axis=0), features.std(axis=0)])


def retrieval_dance(music: np.ndarray, captures: Captures) -> Motion:
    """Each RETRIEVAL_SECONDS of ``music`` danced by the training stretch with the nearest music."""
    length = round(RETRIEVAL_SECONDS * FPS)
    library, places = [], []
    for k, features in enumerate(captures.features):
        if captures.held_out[k]:
            continue
        for start in range(0, len(features) - length + 1, length // 2):
            library.append(music_summary(features[start : start + length]))
            places.append((k, start))
    table = np.stack(library)
    scale = table.std(axis=0) + 1e-6
    rotations, positions = [], []
    offset = np.zeros(3)
    for start in range(0, len(music), length):
        piece = music[start : start + length]
        nearest = int(np.argmin(np.linalg.norm((table - music_summary(piece)) / scale, axis=1)))
        k, source = places[nearest]
        motion = captures.motions[k]
        count = len(piece)
        clip = motion.positions[source : source + count].copy()
        if positions:
            offset = positions[-1][-1, 0] - clip[0, 0]  # carry the root on where the last stretch ended
            offset[1] = 0.0
        positions.append(clip + offset)
        rotations.append(motion.rotations[source : source + count])
    return Motion(np.concatenate(rotations), np.concatenate(positions))


def generated_dance(
    generator: DanceGenerator,
    music: MusicFeatures,
    sampling: SamplingConfig,
    stage_radius_m: float = STAGE_RADIUS_M,
) -> Motion:
    dance = generate(music, generator, sampling, stage_radius_m=stage_radius_m)
    return motion_from(quaternion_to_matrix(dance.joint_rotations), dance.root_translation)


def saved_songs(path: Path | None) -> list[tuple[str, MusicFeatures]]:
    """(name, features) of each song in a ``prepare_data song-features`` file; none without one."""
    if path is None:
        return []
    return [(name, features_as_music(features)) for name, features in load_song_features(path)]


def mean_row(rows: list[dict[str, float]]) -> dict[str, float]:
    means = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
    means["longest_frozen_s"] = float(max(row["longest_frozen_s"] for row in rows))
    return means


COLUMNS = (
    ("bas", "BAS", 3),
    ("bas_2d", "BAS 2D", 3),
    ("joint_speed_m_s", "speed m/s", 2),
    ("jerk_m_s3", "jerk m/s³", 0),
    ("foot_skating_m_s", "skating m/s", 2),
    ("pfc", "PFC", 2),
    ("penetration_max_m", "penetration m", 3),
    ("sunk_share", "> 1 cm under", 3),
    ("longest_frozen_s", "frozen s (worst)", 2),
    ("root_max_distance_m", "root m", 1),
    ("joint_limit_share", "limit share", 3),
    ("frame_fill", "2D fill", 2),
    ("in_frame_share", "2D in frame", 3),
    ("fid_k", "FID_k", 1),
    ("fid_g", "FID_g", 1),
    ("div_k", "Div_k", 2),
    ("div_g", "Div_g", 2),
    ("fid_k_fixed", "FID_k fixed", 1),
    ("div_k_fixed", "Div_k fixed", 2),
)


def print_table(title: str, results: dict[str, dict[str, float]]) -> None:
    print(f"\n### {title}\n")
    print("| method | " + " | ".join(label for _, label, _ in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for method, row in results.items():
        cells = [f"{row[key]:.{digits}f}" if key in row else "—" for key, _, digits in COLUMNS]
        print(f"| {method} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=Path, required=True, help="prepare_data collect output (held-out music)")
    parser.add_argument("--dataset", type=Path, required=True, help="prepare_data fit output (captures)")
    parser.add_argument("--model", type=Path, default=None, help="generator checkpoint (default: the shipped one)")
    parser.add_argument(
        "--without-critic", type=Path, default=None, help="the generator before the critic stage (a baseline row)"
    )
    parser.add_argument(
        "--also", type=Path, nargs="*", default=[], help="more generators (candidates), each named by its file"
    )
    parser.add_argument("--songs", type=Path, nargs="*", default=[])
    parser.add_argument(
        "--song-features", type=Path, default=None, help="more unseen songs, as prepare_data song-features saved them"
    )
    parser.add_argument("--device", default="cpu", help="where torch runs the generators: cpu / cuda / auto")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=None, help="write every number as JSON")
    parser.add_argument(
        "--temperatures", type=float, nargs="+", default=[], help="also our model at these sampling temperatures"
    )
    parser.add_argument(
        "--top-ks", type=int, nargs="+", default=[], help="also our model sampling among only the k likeliest tokens"
    )
    parser.add_argument(
        "--beat-candidates",
        type=int,
        nargs="+",
        default=[],
        help="also our model with beat search trying this many continuations per chunk (1: plain sampling)",
    )
    parser.add_argument(
        "--stage-radius",
        type=float,
        default=STAGE_RADIUS_M,
        help="metres the generated dances are held within, as the product does (0: where the generator takes them)",
    )
    args = parser.parse_args()

    captures = load_captures(args.dataset)
    held = [k for k, held_out in enumerate(captures.held_out) if held_out]
    real_clips = clips([captures.motions[k] for k in held])
    ours = DanceGenerator.load(args.model, args.device)
    # method -> (generator, how it samples; the seed set per dance)
    plain = SamplingConfig()
    models = {"ours": (ours, plain)}
    models |= {f"ours, temperature {t:g}": (ours, SamplingConfig(temperature=t)) for t in args.temperatures}
    models |= {f"ours, top-k {k}": (ours, SamplingConfig(top_k=k)) for k in args.top_ks}
    models |= {f"ours, {n} beat candidates": (ours, SamplingConfig(beat_candidates=n)) for n in args.beat_candidates}
    if args.without_critic is not None:
        models["without critic"] = (DanceGenerator.load(args.without_critic, args.device), plain)
    models |= {path.stem: (DanceGenerator.load(path, args.device), plain) for path in args.also}
    song_sets = {
        "held-out Tang songs": [(captures.names[k], features_as_music(captures.features[k])) for k in held],
        "unseen songs": [(song.name, song_features(song)) for song in args.songs] + saved_songs(args.song_features),
    }
    report: dict[str, dict] = {}
    for title, pieces in song_sets.items():
        if not pieces:
            continue
        motions: dict[str, list[Motion]] = {}
        rows: dict[str, list[dict[str, float]]] = {}
        if title.startswith("held-out"):
            motions["captures (ground truth)"] = [captures.motions[k] for k in held]
            rows["captures (ground truth)"] = [
                dance_row(captures.motions[k], music.beat_times) for k, (_, music) in zip(held, pieces, strict=True)
            ]
        for method, (generator, sampling) in models.items():
            motions[method], rows[method] = [], []
            for name, music in pieces:
                for seed in args.seeds:
                    motion = generated_dance(generator, music, replace(sampling, seed=seed), args.stage_radius)
                    motions[method].append(motion)
                    rows[method].append(dance_row(motion, music.beat_times))
                    print(f"{title}: {method} {name} seed {seed}: bas {rows[method][-1]['bas']:.3f}", flush=True)
        motions["retrieval"] = [retrieval_dance(music.features, captures) for _, music in pieces]
        rows["retrieval"] = [
            dance_row(m, music.beat_times) for m, (_, music) in zip(motions["retrieval"], pieces, strict=True)
        ]
        results = {}
        for method in rows:
            results[method] = mean_row(rows[method])
            scores = dance_features.distribution_scores(real_clips, clips(motions[method]), FPS)
            if method.startswith("captures"):  # the reference set itself: its FID is 0 by construction
                scores = {key: value for key, value in scores.items() if key.startswith("div")}
            results[method].update(scores)
        print_table(f"{title} ({len(pieces)} songs, seeds {' '.join(map(str, args.seeds))})", results)
        report[title] = {"songs": [name for name, _ in pieces], "methods": results, "per_dance": rows}
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
