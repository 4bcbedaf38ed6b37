"""Decoding songs: any of wav/ogg/flac/mp3, any sample rate, mono or stereo."""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
SALVAGE_BLOCK = 1 << 12  # samples read at a time from a file that failed part-way
# A long song is decoded in parts by up to this many threads, capped by the cores (libsndfile
# lets go of the GIL). A 3-minute Ogg Vorbis song on a 16-core host: 0.14-0.16 s with 8 parts
# against 0.18-0.23 s with 4 (three runs each, alternating; 2026-12-03).
DECODE_THREADS = 8
# Seconds of audio under which one thread decodes the whole span: parts would not pay.
PARALLEL_DECODE_MIN_S = 20.0
# (format, subtype) of files whose seeks land on the exact sample, so that parts decoded
# apart join into the very samples of one pass (tested). MP3's do not (1e-7 apart): one pass.
EXACT_SEEK = {("WAV", None), ("WAVEX", None), ("AIFF", None), ("FLAC", None), ("OGG", "VORBIS")}
# The first bytes of the containers libsndfile reads (WAV, RF64, AIFF, FLAC, Ogg, CAF, AU,
# Wave64) and of MP3 with an ID3 tag; bytes read to tell a file's kind before decoding it.
AUDIO_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"FORM", b"fLaC", b"OggS", b"caff", b".snd", b"riff", b"ID3")
SNIFF_BYTES = 4096
TEXT_SHARE = 0.95  # of the first bytes printable ASCII or whitespace: a text file, not audio
# A file that decodes to less than this share of what its header claims is a cut-off file.
TRUNCATED_SHARE = 0.9
# Peak amplitude over which samples are no music but damage (a float WAV's garbage): 60 dB over
# full scale, where a loud master's floats reach a little over 1.
MAX_SAMPLE_PEAK = 1e3


@contextlib.contextmanager
def native_stderr_caught() -> Iterator[list[bytes]]:
    """Whatever native code (libsndfile's MP3 decoder, mpg123) writes to stderr meanwhile, held
    back from the user: the list gets it when the block ends. Process-wide, so short blocks only."""
    caught: list[bytes] = []
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield caught
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            caught.append(sink.read())


def sniffed_problem(path: Path) -> str | None:
    """Why the file is plainly not audio, from its first bytes, or None (let the decoder try):
    text (notes saved as .mp3), or a .mp3 with neither an ID3 tag nor an MPEG frame header.
    MP3's decoder reads anything it is given and prints its complaints on stderr."""
    with open(path, "rb") as stream:
        head = stream.read(SNIFF_BYTES)
    if head.startswith(AUDIO_MAGIC):
        return None
    printable = sum(32 <= byte < 127 or byte in (9, 10, 13) for byte in head)
    if printable >= TEXT_SHARE * len(head):
        return "is a text file, not audio (wav, ogg, flac or mp3)"
    frame_sync = any(a == 0xFF and b & 0xE0 == 0xE0 for a, b in itertools.pairwise(head))
    if path.suffix.lower() == ".mp3" and not frame_sync:
        return "is not an MP3 file (no MP3 header in its first 4 KB)"
    return None


@dataclass(frozen=True)
class Song:
    """A decoded song.

    samples: (N,) float32 mono at ``sample_rate`` Hz, full scale 1.0.
    duration_s: the length of the original file, seconds.
    claimed_s: the length the file's header claims for the span, seconds (more than
    ``duration_s`` for a cut-off file).
    """

    path: Path
    samples: np.ndarray
    sample_rate: int
    duration_s: float
    claimed_s: float | None = None
    damaged: bool = False  # the decoder skipped parts it could not read (said so on stderr)

    def warning(self) -> str | None:
        """One line for the user when the file is cut off or damaged, else None."""
        if self.claimed_s is not None and self.duration_s < TRUNCATED_SHARE * self.claimed_s:
            return (
                f"{self.path}: decodes to {self.duration_s:.1f} s of the {self.claimed_s:.1f} s its header claims "
                "(a cut-off file?); danced as far as it goes"
            )
        if self.damaged:
            return f"{self.path}: has damaged parts the decoder skipped; danced to the rest"
        return None


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


def decode_parts(count: int, rate: int, exact_seek: bool) -> list[tuple[int, int]]:
    """(start, size) of the parts, in samples, that threads decode a span of ``count`` samples in."""
    threads = min(DECODE_THREADS, os.cpu_count() or 1)
    if not exact_seek or count < PARALLEL_DECODE_MIN_S * rate or threads < 2:
        return [(0, count)]
    bounds = np.linspace(0, count, threads + 1).round().astype(int)
    return [(int(start), int(end - start)) for start, end in itertools.pairwise(bounds)]


def decode_into(path: Path, first: int, out: np.ndarray) -> int:
    """Decode up to ``len(out)`` samples of ``path`` from sample ``first``, mixed to mono into
    ``out``; returns how many there were (fewer where the file ends before its header says)."""
    import soundfile

    with soundfile.SoundFile(str(path)) as audio_file:
        audio_file.seek(first)
        written = 0
        blocks = audio_file.blocks(blocksize=DECODE_BLOCK, frames=len(out), dtype="float32", always_2d=True)
        try:
            # A damaged MP3 can decode to infinities (not always the same): refused as
            # non-finite once decoded, without numpy's warning on the way.
            with np.errstate(invalid="ignore", over="ignore"):
                for block in blocks:
                    block.mean(axis=1, dtype=np.float32, out=out[written : written + len(block)])
                    written += len(block)
        except (soundfile.LibsndfileError, RuntimeError):
            # A cut-off file (a FLAC decoder losing sync where the data stops): what came before
            # it, read again in small blocks so that a failing large read loses little.
            written = salvage(path, first, out)
            if written == 0:
                raise
    return written


def salvage(path: Path, first: int, out: np.ndarray) -> int:
    """Like ``decode_into``, in blocks of SALVAGE_BLOCK samples, stopping at the first that fails."""
    import soundfile

    written = 0
    with soundfile.SoundFile(str(path)) as audio_file:
        audio_file.seek(first)
        try:
            blocks = audio_file.blocks(blocksize=SALVAGE_BLOCK, frames=len(out), dtype="float32", always_2d=True)
            with np.errstate(invalid="ignore", over="ignore"):
                for block in blocks:
                    block.mean(axis=1, dtype=np.float32, out=out[written : written + len(block)])
                    written += len(block)
        except (soundfile.LibsndfileError, RuntimeError):
            pass
    return written


def wav_claimed_frames(path: Path) -> int | None:
    """The sample frames a WAV file's header claims (its data chunk's size), or None when the
    file is no RIFF WAV. libsndfile reports what is there, so a cut-off WAV looks whole to it."""
    with open(path, "rb") as stream:
        header = stream.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        block_align = None
        while chunk := stream.read(8):
            if len(chunk) < 8:
                return None
            name, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if name == b"fmt ":
                fmt = stream.read(size)
                block_align = int.from_bytes(fmt[12:14], "little") if len(fmt) >= 14 else None
                stream.seek(size % 2, 1)
            elif name == b"data":
                return size // block_align if block_align else None
            else:
                stream.seek(size + size % 2, 1)
    return None


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
    problem = sniffed_problem(path)
    if problem is not None:
        raise UserInputError(path, problem)
    try:
        with native_stderr_caught() as decoder_notes:
            with soundfile.SoundFile(str(path)) as audio_file:
                source_rate = audio_file.samplerate
                first, count = sample_span(path, audio_file.frames, source_rate, start_s, end_s)
                exact_seek = {(audio_file.format, None), (audio_file.format, audio_file.subtype)} & EXACT_SEEK
            parts = decode_parts(count, source_rate, bool(exact_seek))
            mono = np.empty(count, dtype=np.float32)
            with ThreadPoolExecutor(max_workers=len(parts)) as pool:
                jobs = [pool.submit(decode_into, path, first + s, mono[s : s + size]) for s, size in parts]
                decoded = [job.result() for job in jobs]
            if decoded != [size for _, size in parts]:  # a file shorter than its header: what is there
                mono = mono[: decode_into(path, first, mono)]
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        detail = str(error).split(":")[-1].strip() or "unknown format"
        raise UserInputError(path, f"cannot be decoded as audio (wav, ogg, flac or mp3): {detail}") from None
    duration_s = mono.size / source_rate
    if mono.size == 0:
        raise UserInputError(path, "contains no audio samples")
    if not np.all(np.isfinite(mono)):
        raise UserInputError(path, "contains invalid (non-finite) samples")
    if float(np.max(np.abs(mono))) > MAX_SAMPLE_PEAK:
        raise UserInputError(path, "contains samples far beyond full scale (a damaged file?)")
    if duration_s < MIN_DURATION_S:
        raise UserInputError(path, f"is too short ({duration_s:.2f} s; at least {MIN_DURATION_S:g} s needed)")
    if float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise UserInputError(path, "is silent (no sound above -80 dBFS)")
    if source_rate != sample_rate:
        import librosa  # heavy (numba): not needed to refuse a bad file

        mono = librosa.resample(mono, orig_sr=source_rate, target_sr=sample_rate, res_type="soxr_hq")
    return Song(
        path=path,
        samples=mono.astype(np.float32, copy=False),
        sample_rate=sample_rate,
        duration_s=duration_s,
        claimed_s=claimed_span(path, count, source_rate, start_s, end_s) / source_rate,
        damaged=any(decoder_notes),
    )


def claimed_span(path: Path, count: int, rate: int, start_s: float, end_s: float | None) -> int:
    """The span's length in samples as the file's header claims it (``count``, libsndfile's,
    unless a WAV's data chunk claims more)."""
    claimed = wav_claimed_frames(path) if path.suffix.lower() in (".wav", ".wave") else None
    if claimed is None:
        return count
    return max(count, sample_span(path, claimed, rate, start_s, end_s)[1])
