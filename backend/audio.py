"""Decoding songs: any of wav/ogg/flac/mp3, any sample rate, mono or stereo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserInputError

# Peak amplitude (full scale = 1.0) under which a song counts as silent: -80 dBFS.
SILENCE_PEAK = 1e-4
# Shortest song we dance to, seconds: the generator needs a few tokens of music.
MIN_DURATION_S = 1.0
# Samples decoded at a time, so that a long song is never held twice in stereo.
DECODE_BLOCK = 1 << 20


@dataclass(frozen=True)
class Song:
    """A decoded song.

    samples: (N,) float32 mono at ``sample_rate`` Hz, full scale 1.0.
    duration_s: the length of the original file, seconds.
    """

    path: Path
    samples: np.ndarray
    sample_rate: int
    duration_s: float


def sample_span(path: Path, total: int, rate: int, start_s: float, end_s: float | None) -> tuple[int, int]:
    """The first sample and the sample count of [start_s, end_s) in a file of ``total`` samples."""
    length_s = total / rate
    if not np.isfinite(start_s) or start_s < 0:
        raise UserInputError(path, f"the start time must be 0 s or more, got {start_s:g} s")
    if start_s >= length_s and total > 0:
        raise UserInputError(path, f"the start time {start_s:.2f} s is past the end of the song ({length_s:.2f} s)")
    first = round(start_s * rate)
    if end_s is None:
        return first, max(0, total - first)
    if not np.isfinite(end_s) or end_s <= start_s:
        raise UserInputError(path, f"the end time {end_s:g} s must come after the start time {start_s:g} s")
    return first, max(0, min(total, round(end_s * rate)) - first)


def load_song(path: str | Path, sample_rate: int, start_s: float = 0.0, end_s: float | None = None) -> Song:
    """Decode ``path`` to mono at ``sample_rate`` Hz; only [start_s, end_s) when given (seconds).

    Raises UserInputError (naming the file) when the file is missing, empty, not audio,
    shorter than MIN_DURATION_S or silent, or when the span is not inside the song.
    """
    import soundfile  # here, so that the constants of this package import without audio libraries

    path = Path(path)
    if not path.exists():
        raise UserInputError(path, "no such file")
    if path.is_dir():
        raise UserInputError(path, "is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise UserInputError(path, "the file is empty")
    try:
        with soundfile.SoundFile(str(path)) as audio_file:
            source_rate = audio_file.samplerate
            first, count = sample_span(path, audio_file.frames, source_rate, start_s, end_s)
            audio_file.seek(first)
            blocks = [
                block.mean(axis=1, dtype=np.float32)
                for block in audio_file.blocks(blocksize=DECODE_BLOCK, frames=count, dtype="float32", always_2d=True)
            ]
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        detail = str(error).split(":")[-1].strip() or "unknown format"
        raise UserInputError(path, f"cannot be decoded as audio (wav, ogg, flac or mp3): {detail}") from None
    mono = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    duration_s = mono.size / source_rate
    if mono.size == 0:
        raise UserInputError(path, "contains no audio samples")
    if not np.all(np.isfinite(mono)):
        raise UserInputError(path, "contains invalid (non-finite) samples")
    if duration_s < MIN_DURATION_S:
        raise UserInputError(path, f"is too short ({duration_s:.2f} s; at least {MIN_DURATION_S:g} s needed)")
    if float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise UserInputError(path, "is silent (no sound above -80 dBFS)")
    if source_rate != sample_rate:
        import librosa  # heavy (numba): not needed to refuse a bad file

        mono = librosa.resample(mono, orig_sr=source_rate, target_sr=sample_rate, res_type="soxr_hq")
    return Song(path=path, samples=mono.astype(np.float32, copy=False), sample_rate=sample_rate, duration_s=duration_s)
