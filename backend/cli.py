"""Command line: ``python -m backend generate song.ogg --out dance.npz`` and ``python -m backend serve``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import NoReturn

from bailando_blender.stopping import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, sigterm_raises

from .generator import DEVICES, RUNTIMES
from .music_features import FPS, configure_numba_cache
from .sampling import DEFAULT_BEAT_CANDIDATES

EXIT_USER_ERROR = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse's refusals in one line (its usage block would be the user's second and third)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"error: {message} (--help lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m backend", description="Music to SMPL dance.")
    commands = parser.add_subparsers(dest="command", required=True)

    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--weights", type=Path, default=None, help="generator checkpoint (default: the shipped one)")
    model.add_argument("--device", choices=DEVICES, default="auto")
    model.add_argument(
        "--runtime", choices=RUNTIMES, default="auto", help="auto: ONNX Runtime when its graphs are there, else torch"
    )

    gen = commands.add_parser("generate", parents=[model], help="dance to one song and write a file")
    gen.add_argument("audio", type=Path, help="wav, ogg, flac or mp3")
    gen.add_argument("--out", type=Path, required=True, help="output file: .npz, .json or .bvh")
    gen.add_argument("--seed", type=int, default=0, help="same seed, same dance (default 0)")
    gen.add_argument("--temperature", type=float, default=1.0, help="> 0; lower is calmer and more repetitive")
    gen.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest moves (0: all)")
    gen.add_argument(
        "--beat-candidates",
        type=int,
        default=DEFAULT_BEAT_CANDIDATES,
        help=f"continuations tried per second of dance, the most on the beat kept (1: none, fastest; default "
        f"{DEFAULT_BEAT_CANDIDATES})",
    )
    gen.add_argument("--fps", type=float, default=float(FPS), help=f"output frame rate (default {FPS})")
    gen.add_argument("--start", type=float, default=0.0, help="dance from this time of the song, seconds")
    gen.add_argument("--end", type=float, default=None, help="dance up to this time of the song, seconds")
    gen.add_argument(
        "--stage-radius",
        type=float,
        default=None,
        help="keep the dancer's slow path within this many metres of its start (0: let it wander; default 3)",
    )
    gen.add_argument("--quiet", action="store_true", help="no progress bar")

    commands.add_parser("serve", parents=[model], help="serve jobs over stdin/stdout (for the Blender add-on)")
    return parser


def progress_bar(fraction: float, stage: str) -> None:
    width = 30
    filled = round(fraction * width)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}% {stage:<10}")
    sys.stderr.flush()


def run_generate(args: argparse.Namespace) -> int:
    from .dance_io import check_output_path, save_dance
    from .errors import UserInputError
    from .generator import DanceGenerator
    from .music_features import song_features
    from .pipeline import MAX_OUTPUT_FPS, STAGE_RADIUS_M, generate
    from .sampling import SamplingConfig

    check_output_path(args.out)
    sampling = SamplingConfig(
        seed=args.seed, temperature=args.temperature, top_k=args.top_k, beat_candidates=args.beat_candidates
    )
    sampling.validate()
    if not 0 < args.fps <= MAX_OUTPUT_FPS:
        raise UserInputError("--fps", f"must be in (0, {MAX_OUTPUT_FPS:g}], got {args.fps:g}")
    started = time.perf_counter()
    music = song_features(args.audio, args.start, args.end)  # a bad song fails before the networks load
    generator = DanceGenerator.load(args.weights, args.device, args.runtime)
    dance = generate(
        music,
        generator,
        sampling,
        fps=args.fps,
        progress=None if args.quiet else progress_bar,
        stage_radius_m=STAGE_RADIUS_M if args.stage_radius is None else args.stage_radius,
    )
    save_dance(dance, args.out)
    if not args.quiet:
        sys.stderr.write("\n")
    if dance.warning is not None:
        sys.stderr.write(f"warning: {dance.warning}\n")
    note = "" if dance.trained else " (untrained networks)"
    print(
        f"{args.out}: {dance.num_frames} frames at {dance.fps:g} fps, {dance.duration_s:.1f} s, "
        f"{dance.tempo_bpm:.0f} BPM, {len(dance.beat_times)} beats, {time.perf_counter() - started:.1f} s{note}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with sigterm_raises():  # stopped as by Ctrl-C: one line, no file
        return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)
    configure_numba_cache()
    from models.files import CheckpointError

    from .errors import UserInputError

    try:
        if args.command == "serve":
            from .service import run_service

            return run_service(args.weights, args.device, args.runtime)
        return run_generate(args)
    except (UserInputError, CheckpointError) as error:
        sys.stderr.write(f"\nerror: {error}\n")
        return EXIT_USER_ERROR
    except ValueError as error:  # options the pipeline refuses (e.g. --device cuda without a GPU)
        sys.stderr.write(f"\nerror: {error}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return EXIT_INTERRUPTED
    except Terminated:
        sys.stderr.write("\nterminated\n")
        return EXIT_TERMINATED
