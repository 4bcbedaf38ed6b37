"""``python -m backend generate``: files out, and one-line errors for bad input."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from backend.dance_io import BVH_UNITS_PER_METRE
from bailando_blender import skeleton as sk

from .conftest import REPO, write_song


def run_cli(python: str, *arguments: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "backend", *map(str, arguments)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def outputs(python: str, click_song: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli")
    paths = {}
    for suffix in ("npz", "json", "bvh"):
        paths[suffix] = folder / f"dance.{suffix}"
        result = run_cli(python, "generate", click_song, "--out", paths[suffix], "--seed", "7", "--quiet")
        assert result.returncode == 0, result.stderr
    return paths


def test_npz_output(outputs: dict[str, Path]) -> None:
    with np.load(outputs["npz"]) as data:
        assert float(data["fps"]) == 30.0
        rotations, translation = data["joint_rotations"], data["root_translation"]
        assert rotations.shape == (240, 24, 4) and translation.shape == (240, 3)
        np.testing.assert_allclose(np.linalg.norm(rotations, axis=-1), 1.0, atol=1e-5)
        assert list(data["joint_names"]) == list(sk.JOINT_NAMES)
        assert list(data["parents"]) == list(sk.PARENTS)
        assert int(data["seed"]) == 7 and data["beat_times"].ndim == 1 and float(data["tempo_bpm"]) > 0


def test_json_output_matches_npz(outputs: dict[str, Path]) -> None:
    data = json.loads(outputs["json"].read_text())
    with np.load(outputs["npz"]) as npz:
        np.testing.assert_allclose(np.array(data["joint_rotations"]), npz["joint_rotations"], atol=1e-7)
        np.testing.assert_allclose(np.array(data["root_translation"]), npz["root_translation"], atol=1e-7)


def read_bvh(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, float]:
    """A small independent BVH reader: joint names, offsets (m), motion rows, frame time."""
    text = path.read_text()
    header, motion = text.split("MOTION")
    names = re.findall(r"(?:ROOT|JOINT) (\w+)", header)
    offsets = [
        [float(v) for v in m.split()]
        for m in re.findall(r"(?:ROOT|JOINT) \w+\s*\{\s*OFFSET ([-\d. ]+)", header)  # joint offsets only
    ]
    lines = motion.strip().splitlines()
    frame_time = float(lines[1].split(":")[1])
    rows = np.array([[float(v) for v in line.split()] for line in lines[2:]])
    return names, np.array(offsets) / BVH_UNITS_PER_METRE, rows, frame_time


def test_bvh_output_reproduces_the_joint_positions(outputs: dict[str, Path]) -> None:
    from scipy.spatial.transform import Rotation

    names, offsets, rows, frame_time = read_bvh(outputs["bvh"])
    assert frame_time == pytest.approx(1 / 30, rel=1e-6) and rows.shape == (240, 3 + 3 * 24)
    order = [sk.JOINT_NAMES.index(name) for name in names]
    np.testing.assert_allclose(offsets, sk.REST_OFFSETS[order], atol=1e-6)
    euler = rows[:, 3:].reshape(240, 24, 3)
    local = np.zeros((240, 24, 3, 3))
    local[:, order] = Rotation.from_euler("ZYX", euler.reshape(-1, 3), degrees=True).as_matrix().reshape(240, 24, 3, 3)
    positions, _ = sk.forward_kinematics(local, rows[:, :3] / BVH_UNITS_PER_METRE)
    with np.load(outputs["npz"]) as npz:
        expected, _ = sk.forward_kinematics(sk.quaternion_to_matrix(npz["joint_rotations"]), npz["root_translation"])
    np.testing.assert_allclose(positions, expected, atol=1e-4)


def test_same_seed_same_file_other_seed_other_dance(python: str, click_song: Path, outputs, tmp_path: Path) -> None:
    again, other = tmp_path / "again.npz", tmp_path / "other.npz"
    assert run_cli(python, "generate", click_song, "--out", again, "--seed", "7", "--quiet").returncode == 0
    assert run_cli(python, "generate", click_song, "--out", other, "--seed", "8", "--quiet").returncode == 0
    with np.load(outputs["npz"]) as a, np.load(again) as b, np.load(other) as c:
        np.testing.assert_array_equal(a["joint_rotations"], b["joint_rotations"])
        assert np.abs(a["joint_rotations"] - c["joint_rotations"]).max() > 0.1


def bad_inputs(folder: Path) -> list[tuple[list[str | Path], str]]:
    (folder / "empty.ogg").write_bytes(b"")
    (folder / "text.wav").write_text("not audio\n" * 100)
    (folder / "notes.mp3").write_text("these are my dance notes, not audio\n" * 20)  # mpg123 would print notes
    import soundfile

    soundfile.write(str(folder / "silent.flac"), np.zeros(44100 * 2, dtype=np.float32), 44100)
    song = write_song(folder / "ok.wav", duration_s=3.0)
    (folder / "dances.npz").mkdir()
    return [
        (["generate", song, "--out", folder / "dances.npz"], "dances.npz: is a folder"),
        (["generate", folder / "missing.mp3", "--out", folder / "x.npz"], "missing.mp3: no such file"),
        (["generate", folder / "empty.ogg", "--out", folder / "x.npz"], "empty.ogg: the file is empty"),
        (["generate", folder / "text.wav", "--out", folder / "x.npz"], "text.wav: is a text file, not audio"),
        (["generate", folder / "notes.mp3", "--out", folder / "x.npz"], "notes.mp3: is a text file, not audio"),
        (["generate", folder / "silent.flac", "--out", folder / "x.npz"], "silent.flac: is silent"),
        (["generate", song, "--out", folder / "x.txt"], "x.txt: unknown output format"),
        (["generate", song, "--out", folder / "nowhere" / "x.npz"], "does not exist"),
        (["generate", song, "--out", folder / "x.npz", "--temperature", "0"], "temperature must be > 0"),
        (["generate", song, "--out", folder / "x.npz", "--fps", "-1"], "--fps: must be in"),
        (["generate", song, "--out", folder / "x.npz", "--weights", folder / "text.wav"], "text.wav: not a"),
    ]


def test_bad_input_gives_one_line_and_a_nonzero_exit(python: str, tmp_path: Path) -> None:
    for arguments, message in bad_inputs(tmp_path):
        result = run_cli(python, *arguments)
        assert result.returncode == 2, (arguments, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "x.npz").exists()


@pytest.mark.slow
def test_ten_minute_song(python: str, tmp_path: Path) -> None:
    song = write_song(tmp_path / "long.flac", duration_s=600.0, sample_rate=22050, channels=1)
    out = tmp_path / "long.npz"
    # At the default setting: beat search's candidates side by side over a whole long song.
    result = run_cli(python, "generate", song, "--out", out, "--quiet", "--fps", "24")
    assert result.returncode == 0, result.stderr
    with np.load(out) as data:
        assert data["joint_rotations"].shape == (600 * 24, 24, 4)
        assert np.all(np.isfinite(data["joint_rotations"])) and np.all(np.isfinite(data["root_translation"]))


def test_an_output_that_cannot_be_written_is_refused_before_the_work_and_a_failed_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from backend import dance_io
    from backend.errors import UserInputError

    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a read-only folder (root may write anywhere)
    with pytest.raises(UserInputError, match="cannot be written to"):
        dance_io.check_output_path(tmp_path / "x.npz")
    monkeypatch.undo()

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dance_io, "dance_arrays", lambda dance: {"fps": np.float64(30.0)})
    monkeypatch.setattr(dance_io.np, "savez", disk_full)
    with pytest.raises(UserInputError, match=r"x.npz: could not be written \(No space left on device\)"):
        dance_io.save_dance(None, tmp_path / "x.npz")  # type: ignore[arg-type]  (the arrays are patched)
    assert list(tmp_path.iterdir()) == []  # no partial file


def test_a_cut_off_song_dances_with_one_warning(python: str, tmp_path: Path) -> None:
    whole = write_song(tmp_path / "whole.wav", duration_s=6.0)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # a download that stopped half-way
    result = run_cli(python, "generate", cut, "--out", tmp_path / "x.npz", "--quiet", "--beat-candidates", "1")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"warning: {cut}: decodes to 3.0 s of the 6.0 s"), result.stderr
