"""Faults of the command line and the service: each ends in one line (or one error event), the
stated exit status and no file, never a traceback or a stuck process.

- SIGINT and SIGTERM delivered at each stage of ``python -m backend generate`` (decoding, features,
  tokens, rotations, writing): the process is stopped as the signal arrives in that stage, by
  wrapping the stage's function so that it signals its own process first;
- random bad input, property-based (hypothesis, bounded examples): mangled audio files, option
  values on the command line, requests to the service.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend import cli
from backend.audio import load_song
from backend.errors import UserInputError
from backend.generator import DanceGenerator
from backend.music_features import SAMPLE_RATE, song_features
from backend.service import Service

from .conftest import REPO, write_song

SONG_SECONDS = 2.0
# Where each stage of the command line can be interrupted: the function the stage calls, as
# (module, attribute of the module holding it or "", its name).
STAGES = {
    "decoding": ("backend.music_features", "", "load_song"),
    "features": ("backend.music_features", "", "compute_features"),
    "tokens": ("backend.generator", "DanceGenerator", "tokens"),
    "rotations": ("backend.pipeline", "", "decode_motion"),
    "writing": ("backend.dance_io", "np", "savez"),
}
SIGNALS = {"SIGINT": ("interrupted", cli.EXIT_INTERRUPTED), "SIGTERM": ("terminated", cli.EXIT_TERMINATED)}
PROCESS_TIMEOUT_S = 300  # a stuck process fails the test rather than hanging the suite
# The suite's examples are the same in every run (derandomised: CI fails only for a change of
# the code); HYPOTHESIS_EXAMPLES=500 searches deeper, at random.
DEEPER_EXAMPLES = os.environ.get("HYPOTHESIS_EXAMPLES")
HYPOTHESIS = settings(
    max_examples=int(DEEPER_EXAMPLES or 25),
    derandomize=DEEPER_EXAMPLES is None,
    database=None if DEEPER_EXAMPLES is None else settings.default.database,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def short_song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_song(tmp_path_factory.mktemp("faults") / "short.wav", duration_s=SONG_SECONDS, channels=1)


def ctrl_c_as_at_a_terminal() -> None:
    """In the child: SIGINT's default action, as a terminal's Ctrl-C meets it. A test suite run
    in the background (a CI job, `cmd &`) starts with SIGINT ignored, and its children with it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stage_signalled_script(stage: str, signal_name: str, song: Path, out: Path) -> str:
    """Python that runs the command line with the stage's function wrapped to signal its own
    process on entry (the signal's handler runs as the stage begins), as a user's Ctrl-C or a
    `kill` would land there."""
    module, holder, name = STAGES[stage]
    return (
        "import importlib, os, signal, sys\n"
        f"owner = importlib.import_module({module!r})\n"
        + (f"owner = owner.{holder}\n" if holder else "")
        + f"original = getattr(owner, {name!r})\n"
        "def signalled(*args, **kwargs):\n"
        f"    os.kill(os.getpid(), signal.{signal_name})\n"
        "    return original(*args, **kwargs)\n"
        f"setattr(owner, {name!r}, signalled)\n"
        "from backend.cli import main\n"
        f"sys.exit(main(['generate', {str(song)!r}, '--out', {str(out)!r}, '--quiet', '--beat-candidates', '2']))\n"
    )


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", list(SIGNALS))
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_signal_at_any_stage_stops_with_one_line_and_no_file(
    python: str, short_song: Path, tmp_path: Path, stage: str, signal_name: str
) -> None:
    out = tmp_path / "dance.npz"
    script = stage_signalled_script(stage, signal_name, short_song, out)
    result = subprocess.run(
        [python, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
        preexec_fn=ctrl_c_as_at_a_terminal,
    )
    word, code = SIGNALS[signal_name]
    assert result.returncode == code, result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [word]
    assert list(tmp_path.iterdir()) == []  # no dance, no temporary file beside it


def test_the_stages_signal_where_they_say(python: str) -> None:
    """Each wrapped function is one the command line calls (a renamed one would leave its stage
    untested): the wrapper finds it where the table says."""
    for stage in STAGES:
        script = stage_signalled_script(stage, "SIGINT", Path("x.wav"), Path("x.npz")).split("from backend.cli")[0]
        result = subprocess.run([python, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (stage, result.stderr)


# --- random bad input ------------------------------------------------------------


def mangled(original: bytes, data: st.DataObject) -> bytes:
    """``original`` cut short, overwritten in places, or grown by junk, as a download or a disk gets it."""
    blob = bytearray(original)
    for _ in range(data.draw(st.integers(0, 8))):
        at = data.draw(st.integers(0, len(blob) - 1))
        patch = data.draw(st.binary(min_size=1, max_size=64))
        blob[at : at + len(patch)] = patch
    cut = data.draw(st.integers(0, len(blob)))
    if data.draw(st.booleans()):
        blob = blob[:cut]
    return bytes(blob) + data.draw(st.binary(max_size=32))


@pytest.fixture(scope="module")
def encoded_songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the same short song in each format a user brings, to mangle."""
    folder = tmp_path_factory.mktemp("formats")
    for suffix, options in ((".wav", {}), (".flac", {}), (".ogg", {}), (".mp3", {"format": "MP3"})):
        write_song(folder / f"song{suffix}", duration_s=1.5, sample_rate=22050, channels=1, **options)
    return folder


@pytest.mark.filterwarnings("error")  # a Python warning reaches stderr too
@settings(HYPOTHESIS)
@given(data=st.data())
def test_mangled_audio_decodes_or_is_refused_in_one_line(
    encoded_songs: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], data: st.DataObject
) -> None:
    """A file cut short, overwritten in places or grown by junk: danced (perhaps with a warning
    about its damage) or refused in one line naming it, and no decoder's notes on stderr."""
    original = data.draw(st.sampled_from(sorted(encoded_songs.iterdir())))
    path = tmp_path / f"mangled{original.suffix}"
    path.write_bytes(mangled(original.read_bytes(), data))
    capfd.readouterr()
    try:
        music = song_features(path)
    except UserInputError as error:
        assert "\n" not in str(error) and str(error).startswith(str(path))
    else:
        assert music.num_frames > 0 and np.all(np.isfinite(music.features))
        assert music.warning is None or "\n" not in music.warning
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def cli_option_values() -> st.SearchStrategy[list[str]]:
    """Option lists as a user might type them: sensible, odd and wrong values."""
    number = st.one_of(
        st.integers(-5, 40).map(str),
        st.floats(-10, 1e4, allow_nan=False).map(lambda value: f"{value:g}"),
        st.sampled_from(["nan", "inf", "-inf", "1e400", "abc", "", "0x10", "٣"]),
    )
    options = ["--seed", "--temperature", "--top-k", "--beat-candidates", "--fps", "--start", "--end", "--stage-radius"]
    pairs = st.lists(st.tuples(st.sampled_from(options), number), max_size=4)
    return pairs.map(lambda chosen: [token for pair in chosen for token in pair])


@settings(HYPOTHESIS)
@given(options=cli_option_values())
def test_random_option_values_dance_or_are_refused_in_one_line(
    short_song: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str]
) -> None:
    out = tmp_path / "dance.npz"
    out.unlink(missing_ok=True)
    try:
        code = cli.main(["generate", str(short_song), "--out", str(out), "--quiet", *options])
    except SystemExit as exit:  # argparse's refusals end the process
        code = exit.code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    if code == 0:
        assert out.is_file() and lines == [], captured.err
    else:
        assert code == cli.EXIT_USER_ERROR and len(lines) == 1 and lines[0].startswith("error: "), (options, lines)
        assert not out.exists()


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)
REQUEST_KEYS = ["job", "audio", "out", "seed", "temperature", "top_k", "beat_candidates", "fps", "start_s", "end_s",
                "stage_radius_m", "smpl_model_folder"]  # fmt: skip


@pytest.fixture(scope="module")
def generator() -> DanceGenerator:
    return DanceGenerator.load(None, "cpu")


@settings(HYPOTHESIS)
@given(data=st.data())
def test_random_service_requests_get_an_event_never_a_traceback(
    generator: DanceGenerator,
    short_song: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    data: st.DataObject,
) -> None:
    """Each request line gets its answer (or none, for a cancel); each accepted job one final
    event, failed in one line or a result; nothing logged as an internal error."""
    (tmp_path / "folder.npz").mkdir(exist_ok=True)
    (tmp_path / "notes.txt").write_text("not audio")
    audio = st.sampled_from([str(short_song), str(tmp_path / "missing.ogg"), str(tmp_path / "notes.txt")])
    out = st.sampled_from([str(tmp_path / "d.npz"), str(tmp_path / "folder.npz"), str(tmp_path / "d.txt")])
    fields = data.draw(st.dictionaries(st.sampled_from(REQUEST_KEYS), JSON_VALUES, max_size=5))
    if data.draw(st.booleans()):
        fields.update(audio=data.draw(audio), out=data.draw(out), job=data.draw(st.text(min_size=1, max_size=5)))
    request = {"op": data.draw(st.sampled_from(["submit", "submit", "cancel", "status", "bogus"])), **fields}
    line = data.draw(st.one_of(st.just(json.dumps(request)), st.text(max_size=40), st.just(json.dumps([request]))))
    events = io.StringIO()
    service = Service(generator, events)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert service.handle(line) is True
        queued = []
        while not service.jobs.empty():
            queued.append(service.jobs.get_nowait())
        for job in queued:
            service.queued.remove(job["job"])
            service.run_job(job)
    answers = [json.loads(text) for text in events.getvalue().splitlines()]
    if not (isinstance(request, dict) and request.get("op") == "cancel" and line == json.dumps(request)):
        assert answers, line
    finals = [event for event in answers if event["event"] in ("result", "failed", "cancelled")]
    assert len(finals) == len(queued)
    for event in answers:
        for text in (event.get("error"), event.get("warning")):
            assert text is None or ("\n" not in text and not text.startswith("internal error")), event
    assert not caplog.records, [record.getMessage() for record in caplog.records]


def test_the_one_line_refusals_of_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    """A value argparse cannot read is one line too (its usage block is not printed)."""
    with pytest.raises(SystemExit) as exit:
        cli.main(["generate", "song.ogg", "--out", "x.npz", "--seed", "abc"])
    assert exit.value.code == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err.splitlines() == [
        "error: argument --seed: invalid int value: 'abc' (--help lists the options)"
    ]


@pytest.mark.filterwarnings("error")
def test_edge_signals_dance_or_are_refused_in_one_line(tmp_path: Path) -> None:
    """All zeros is refused as silent; a full-scale square wave, and floats past full scale as a
    loud master has them, give finite features; floats far past it are damage, refused, and so
    are infinities (a damaged MP3 decodes to them at times), without a numpy warning."""
    seconds = np.arange(SAMPLE_RATE * 2) / SAMPLE_RATE
    square = np.sign(np.sin(2 * math.pi * 110 * seconds)).astype(np.float32)
    path = tmp_path / "song.wav"
    for samples, problem in (
        (np.zeros_like(square), "is silent"),
        (square, None),
        (1.4 * square, None),
        (1e6 * square, "far beyond full scale"),
        (
            np.stack([np.where(seconds > 1.0, np.inf, square), np.where(seconds > 1.0, -np.inf, square)], axis=1),
            "non-finite",
        ),
    ):
        soundfile.write(str(path), samples, SAMPLE_RATE, subtype="FLOAT")
        if problem is None:
            assert np.all(np.isfinite(song_features(path).features))
        else:
            with pytest.raises(UserInputError, match=problem):
                load_song(path, SAMPLE_RATE)


def test_output_paths_are_judged_before_the_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The extension's check of a file or folder to write (batch, pose pass, exports)."""
    from bailando_blender import output_paths

    (tmp_path / "notes.txt").write_text("a file")
    (tmp_path / "taken.fbx").mkdir()
    assert output_paths.folder_problem(tmp_path / "new" / "deeper") is None  # made when written
    assert output_paths.file_problem(tmp_path / "new" / "dance.fbx") is None
    assert output_paths.file_problem(tmp_path / "taken.fbx") == "is a folder, not a file name"
    notes = tmp_path / "notes.txt"
    assert output_paths.folder_problem(notes / "x") == f"{notes} is a file, not a folder"
    monkeypatch.setattr(output_paths.os, "access", lambda path, mode: False)  # read-only (root writes anywhere)
    assert output_paths.folder_problem(tmp_path / "new") == f"the folder {tmp_path} cannot be written to"
