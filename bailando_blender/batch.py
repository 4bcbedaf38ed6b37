"""Headless generation, no UI: the same core as the panel, blocking, with a progress bar.

With the ``bpy`` module (the environment the README sets up):

    python -m bailando_blender.batch song.ogg --out dance.blend [--preview]
    python -m bailando_blender.batch songs/ more.ogg --out dances/      (a .blend per song)

Inside Blender, on the scene it opened (``scripts/blender_batch.py`` puts this package on
the path):

    blender -b scene.blend --python-exit-code 1 --python scripts/blender_batch.py -- --strip NAME [--out x.blend]

Exit status 0 when every song danced, 2 with a one-line message per failure otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bpy

from . import backend_manager, export, generation, pose_pass, preferences, preview
from .backend_client import BackendError
from .output_paths import file_problem, folder_problem
from .stopping import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, sigterm_raises

AUDIO_SUFFIXES = (".wav", ".ogg", ".flac", ".mp3")
CHARACTER_SUFFIXES = (".fbx", ".glb", ".gltf")
EXIT_FAILED = 2
MAX_FPS = 240.0  # the backend's limit on output frame rates
PREVIEW_SECONDS = 10.0  # default length of the preview video


@dataclass
class BatchSettings:
    """The panel's settings (properties.DanceSettings) as plain values."""

    audio_source: str = "STRIP"
    strip_name: str = ""
    audio_file: str = ""
    range_mode: str = "WHOLE"
    frame_first: int = 1
    frame_last: int = 250
    target: str = "NEW"
    seed: int = 0
    temperature: float = 1.0
    top_k: int = 0
    beat_candidates: int = generation.DEFAULT_BEAT_CANDIDATES
    beat_markers: bool = True
    stage_radius: float = generation.DEFAULT_STAGE_RADIUS_M


class BatchError(Exception):
    """A bad argument (one line for the user)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bailando_blender.batch", description="Music to a dancing .blend.")
    parser.add_argument("songs", nargs="*", type=Path, help="sound files or folders of them (none: the open scene)")
    parser.add_argument("--out", type=Path, help="a .blend (one song), or a folder for one .blend per song")
    parser.add_argument("--strip", default="", help="with no songs: the sound strip of the open scene to dance to")
    parser.add_argument("--armature", default="", help="key this SMPL-named armature instead of a new dancer")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of new scenes (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument(
        "--beat-candidates",
        type=int,
        default=generation.DEFAULT_BEAT_CANDIDATES,
        help="continuations tried per second of dance, the most on the beat kept (1: none, fastest)",
    )
    parser.add_argument("--no-beat-markers", action="store_true")
    parser.add_argument(
        "--stage-radius",
        type=float,
        default=generation.DEFAULT_STAGE_RADIUS_M,
        help="metres the dancer may wander from its start (0: free)",
    )
    parser.add_argument("--preview", action="store_true", help="also render <out>.mp4 (Workbench, with the song)")
    parser.add_argument("--preview-seconds", type=float, default=PREVIEW_SECONDS, help="0: the whole dance")
    parser.add_argument(
        "--pose2d", type=Path, default=None, help="also write the 2D pose pass here (a subfolder per song for several)"
    )
    parser.add_argument(
        "--pose2d-camera",
        default="AUTO",
        help="AUTO (follows the dancer), WIDE (still, the whole dance), SCENE, or a camera's name",
    )
    parser.add_argument("--pose2d-no-video", action="store_true", help="keypoints and JSON only, no guide video")
    parser.add_argument(
        "--character", type=Path, default=None, help="an FBX or glTF character to dance (its armature is retargeted)"
    )
    parser.add_argument(
        "--export",
        type=Path,
        nargs="+",
        default=[],
        help="also export the dance on the armature: .fbx, .glb and/or .bvh (several songs: _<song> is added)",
    )
    parser.add_argument("--smpl-model-folder", default="", help="your SMPL model folder: a skinned SMPL body")
    parser.add_argument("--backend-python", default="", help="Python of the backend's environment")
    parser.add_argument("--device", choices=backend_manager.DEVICES, default="auto")
    parser.add_argument(
        "--runtime", choices=backend_manager.RUNTIMES, default="auto", help="the backend's runtime (auto: ONNX)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def find_songs(paths: list[Path]) -> list[Path]:
    songs = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise BatchError(f"{path}: the folder has no {', '.join(AUDIO_SUFFIXES)} files")
            songs.extend(found)
        elif path.is_file():
            songs.append(path)
        else:
            raise BatchError(f"{path}: no such file or folder")
    return songs


def output_paths(songs: list[Path], out: Path | None) -> list[Path]:
    if out is None:
        raise BatchError("--out is needed: a .blend for one song, or a folder")
    if out.suffix.lower() == ".blend":
        if len(songs) != 1:
            raise BatchError(f"--out {out}: one .blend holds one song; give a folder for {len(songs)} songs")
        targets = [out]
    elif out.suffix and not out.is_dir():  # a typo for a file more likely than a new folder's name
        raise BatchError(f"--out {out}: unknown output format '{out.suffix}' (use a .blend, or a folder)")
    else:
        targets = [out / f"{song.stem}.blend" for song in songs]
    if len({target.resolve() for target in targets}) != len(targets):
        raise BatchError("two songs have the same name; their .blend files would overwrite each other")
    return targets


def check_outputs(files: list[Path], folders: list[Path], preview: bool) -> None:
    """Every file and folder the run will write, checked before any work (BatchError in one
    line): the files (the .blend files, with their previews beside them when ``preview``, and
    the exports) and the pose pass's folders."""
    blends = [path for path in files if path.suffix.lower() == ".blend"]
    for path in files + ([blend.with_suffix(".mp4") for blend in blends] if preview else []):
        if (problem := file_problem(path)) is not None:
            raise BatchError(f"{path}: {problem}")
    for folder in folders:
        if (problem := folder_problem(folder)) is not None:
            raise BatchError(f"--pose2d {folder}: {problem}")


def backend_command(args: argparse.Namespace) -> list[str]:
    """The backend's command, chosen as the panel chooses it (raises ValueError, one line)."""
    chosen = args.backend_python
    nothing_else = not backend_manager.is_bundled() and not backend_manager.default_backend_python()
    if not chosen and nothing_else and not bpy.app.binary_path and importlib.util.find_spec("backend") is not None:
        chosen = sys.executable  # the bpy module's own environment holds the backend
    return backend_manager.choose_command(chosen, args.device, args.runtime, preferences.extension_user_dir)


def progress_bar(label: str):
    def show(fraction: float, stage: str) -> None:
        filled = round(fraction * 30)
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:5.1f}% {stage:<10}")
        sys.stderr.flush()

    return show


def dance_scene(args: argparse.Namespace, settings: BatchSettings, label: str) -> bpy.types.Object:
    """Generate and key on the current scene (raises DanceError)."""
    backend = backend_manager.ensure_started(backend_command(args))
    plan = generation.plan_job(
        bpy.context, settings, os.path.abspath(args.smpl_model_folder) if args.smpl_model_folder else ""
    )
    rig = generation.run_blocking(bpy.context, plan, backend, None if args.quiet else progress_bar(label))
    if not args.quiet:
        sys.stderr.write("\n")
    return rig


def save(
    scene: bpy.types.Scene,
    rig: bpy.types.Object,
    target: Path,
    args: argparse.Namespace,
    stage: bool,
    pose_folder: Path | None,
    exports: list[Path],
) -> str:
    """Write the .blend (staged with a camera, light and floor when ``stage``), the preview video,
    the 2D pose pass (into ``pose_folder``) and the exports."""
    if stage or args.preview:
        frames, path = pose_pass.following_path(scene, rig, preview.PREVIEW_RESOLUTION, preview.PREVIEW_FILL)
        preview.stage_scene(scene, rig, path, frames)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the target and rename, so a failure never leaves half a .blend.
    partial = target.with_name(target.name + ".partial.blend")
    try:
        bpy.ops.wm.save_as_mainfile(filepath=str(partial.resolve()), copy=True)
        os.replace(partial, target)
    finally:  # interrupted between the two: no half-named copy left behind
        partial.unlink(missing_ok=True)
    report = f"{target}: {rig.name}, frames {scene.frame_start}-{scene.frame_end} at {scene.render.fps} fps"
    limb_error = generation.limb_error_of(rig)
    if generation.song_warning_of(rig):
        sys.stderr.write(f"warning: {generation.song_warning_of(rig)}\n")
    if generation.is_poor_retarget(limb_error):
        sys.stderr.write(f"warning: {rig.name}: {generation.retarget_words(limb_error)}\n")
    elif limb_error is not None:
        report += f"; {generation.retarget_words(limb_error)}"
    if args.preview:
        last = scene.frame_end
        if args.preview_seconds > 0:
            last = min(last, scene.frame_start + round(args.preview_seconds * scene.render.fps) - 1)
        video = preview.render_preview(scene, str(target.with_suffix(".mp4")), scene.frame_start, last)
        report += f"; preview {video}"
    if pose_folder is not None:
        settings = pose_pass.PosePassSettings(
            folder=str(pose_folder.resolve()),
            first_frame=scene.frame_start,
            last_frame=scene.frame_end,
            camera={"AUTO": "AUTO", "WIDE": "WIDE", "SCENE": ""}.get(args.pose2d_camera, args.pose2d_camera),
            video=not args.pose2d_no_video,
        )
        report += "; " + pose_pass.run_pose_pass(scene, rig, settings)
    for path in exports:
        report += "; " + export.export_dance(scene, rig, path)
    return report


def settings_from(args: argparse.Namespace, **overrides: object) -> BatchSettings:
    return BatchSettings(
        target="SELECTED" if args.armature or args.character else "NEW",
        seed=args.seed,
        temperature=args.temperature,
        top_k=args.top_k,
        beat_candidates=args.beat_candidates,
        beat_markers=not args.no_beat_markers,
        stage_radius=args.stage_radius,
        **overrides,  # type: ignore[arg-type]
    )


def import_character(path: Path) -> bpy.types.Object:
    """Import a character (FBX or glTF) into the scene and make its armature the active object."""
    suffix = path.suffix.lower()
    if suffix not in CHARACTER_SUFFIXES:
        raise generation.DanceError(f"--character {path}: use an {' or '.join(CHARACTER_SUFFIXES)} file")
    if not path.is_file():
        raise generation.DanceError(f"--character {path}: no such file")
    before = set(bpy.data.objects)
    with preview.quiet_stdout():
        if suffix == ".fbx":
            bpy.ops.import_scene.fbx(filepath=str(path.resolve()))
        else:
            bpy.ops.import_scene.gltf(filepath=str(path.resolve()))
    armatures = [obj for obj in bpy.data.objects if obj not in before and obj.type == "ARMATURE"]
    if not armatures:
        raise generation.DanceError(f"--character {path}: the file has no armature")
    bpy.context.view_layer.objects.active = armatures[0]
    return armatures[0]


def select_armature(name: str) -> None:
    obj = bpy.data.objects.get(name)
    if obj is None:
        raise BatchError(f"--armature {name}: the scene has no object of that name")
    bpy.context.view_layer.objects.active = obj


def song_outputs(args: argparse.Namespace, song: Path, several: bool) -> tuple[Path | None, list[Path]]:
    """The pose pass's folder and the export files of one song (named after it when there are several)."""
    pose_folder = None if args.pose2d is None else (args.pose2d / song.stem if several else args.pose2d)
    exports = [path.with_name(f"{path.stem}_{song.stem}{path.suffix}") if several else path for path in args.export]
    return pose_folder, exports


def run_songs(args: argparse.Namespace) -> int:
    songs = find_songs(args.songs)
    targets = output_paths(songs, args.out)
    outputs = [song_outputs(args, song, len(songs) > 1) for song in songs]
    check_outputs(
        targets + [path for _, exports in outputs for path in exports],
        [folder for folder, _ in outputs if folder is not None],
        args.preview,
    )
    failures = 0
    for song, target, (pose_folder, exports) in zip(songs, targets, outputs, strict=True):
        started = time.perf_counter()
        bpy.ops.wm.read_homefile(use_empty=True)
        scene = bpy.context.scene
        scene.render.fps, scene.render.fps_base = round(args.fps), round(args.fps) / args.fps
        scene.frame_start = scene.frame_end = 1  # the dance sets the end
        try:
            if args.character is not None:
                import_character(args.character)
            rig = dance_scene(args, settings_from(args, audio_source="FILE", audio_file=str(song.resolve())), song.name)
            report = save(scene, rig, target, args, True, pose_folder, exports)
            print(f"{report} ({time.perf_counter() - started:.1f} s)")
        except (generation.DanceError, pose_pass.PosePassError, export.ExportError) as error:
            sys.stderr.write(f"\nerror: {song}: {error}\n")
            failures += 1
    return EXIT_FAILED if failures else 0


def run_open_scene(args: argparse.Namespace) -> int:
    if args.armature:
        select_armature(args.armature)
    scene = bpy.context.scene
    target = args.out or (Path(bpy.data.filepath) if bpy.data.filepath else None)
    if target is None:
        raise BatchError("--out is needed: the open scene was never saved")
    if target.suffix.lower() != ".blend":
        raise BatchError(f"--out {target}: unknown output format '{target.suffix}' (use a .blend)")
    check_outputs([target, *args.export], [] if args.pose2d is None else [args.pose2d], args.preview)
    rig = dance_scene(args, settings_from(args, strip_name=args.strip), args.strip or "active strip")
    print(save(scene, rig, target, args, False, args.pose2d, args.export))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with sigterm_raises():
        return run(args)


def run(args: argparse.Namespace) -> int:
    try:
        if not 0 < args.fps <= MAX_FPS:
            raise BatchError(f"--fps must be in (0, {MAX_FPS:g}], got {args.fps:g}")
        if args.songs and (args.strip or args.armature):
            raise BatchError("--strip and --armature apply to the open scene; give no songs with them")
        if args.character is not None and not args.songs:
            raise BatchError("--character applies to new scenes: give songs with it")
        for path in args.export:
            if path.suffix.lower() not in export.FORMATS:
                raise BatchError(f"--export {path}: unknown format (use {', '.join(export.FORMATS)})")
        return run_songs(args) if args.songs else run_open_scene(args)
    except (
        BatchError,
        generation.DanceError,
        BackendError,
        pose_pass.PosePassError,
        export.ExportError,
        ValueError,
    ) as error:
        sys.stderr.write(f"\nerror: {error}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return EXIT_INTERRUPTED
    except Terminated:
        sys.stderr.write("\nterminated\n")
        return EXIT_TERMINATED
    finally:
        backend_manager.shutdown()


if __name__ == "__main__":
    sys.exit(main())
