"""Per-frame music features, beat times and tempo, at the generator's frame rate.

The feature set is Bailando's minus its 384-bin tempogram, plus loudness and beat phase:

| columns | feature | why |
|---|---|---|
| 0-19  | MFCC (20)             | timbre, as Bailando |
| 20-39 | MFCC delta (20)       | timbre change, as Bailando |
| 40-51 | chroma (12, STFT)     | harmony, as Bailando (which used constant-Q chroma) |
| 52    | onset strength        | as Bailando; normalised by the song's peak |
| 53    | RMS loudness          | dB re full scale, scaled to about [-1, 0]: quiet passages dance smaller |
| 54    | beat one-hot          | librosa's tracker with tightness 100, as Bailando |
| 55-56 | beat phase (sin, cos) | where the frame lies between two beats |

Bailando's tempogram is 88 % of its 438 dimensions and changes slowly; the beat phase says
the same about rhythm, directly, in two numbers, so the features stay small enough to carry
and the networks small enough for a laptop's CPU.
"""

from __future__ import annotations

import itertools
import os
import platform
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import Song, load_song

FPS = 30  # frames per second of the features, the motion and the generator
HOP_LENGTH = 512  # samples between frames
SAMPLE_RATE = FPS * HOP_LENGTH  # 15 360 Hz: exactly FPS frames a second (Bailando: 30 720 Hz at 60 fps)
N_FFT = 2048  # STFT window, samples (133 ms at SAMPLE_RATE)
N_MFCC = 20  # as Bailando
N_CHROMA = 12  # pitch classes
BEAT_TIGHTNESS = 100.0  # librosa beat tracker tightness, as Bailando
RMS_FLOOR_DB = -60.0  # loudness below this counts as silence; the column spans [-1, 0]
TUNING_THREADS = 4  # threads the chroma's tuning estimate (the slowest feature) is split over
STFT_THREADS = 4  # threads the spectrogram's frames are split over (each frame's FFT is its own)

MFCC_COLUMNS = slice(0, 20)
MFCC_DELTA_COLUMNS = slice(20, 40)
CHROMA_COLUMNS = slice(40, 52)
ONSET_COLUMN = 52
RMS_COLUMN = 53
BEAT_COLUMN = 54
BEAT_PHASE_COLUMNS = slice(55, 57)
FEATURE_DIM = 57


@dataclass(frozen=True)
class MusicFeatures:
    """What the generator and the add-on need to know about a song.

    features: (T, FEATURE_DIM) float32, one row per frame at ``fps``; T = round(duration * fps).
    beat_times: (B,) seconds from the song's start.
    tempo_bpm: the tracker's global tempo estimate, beats per minute.
    warning: one line for the user about the song (a cut-off file), or None.
    """

    features: np.ndarray
    beat_times: np.ndarray
    tempo_bpm: float
    duration_s: float
    fps: int = FPS
    warning: str | None = None

    @property
    def num_frames(self) -> int:
        return int(self.features.shape[0])


def default_cache_dir() -> Path:
    """The user's cache folder for this project (numba's compiled functions live there)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("bailando_blender", appauthor=False))


def numba_cache_key() -> str:
    """A folder name per Python, numba, llvmlite, numpy and librosa version.

    numba checks a cached function against its source file and its own version only, not the
    numpy it was compiled against: a cache written by another environment, or by this one
    while pip was still installing it (seen here: every later song crashed the process in
    librosa's beat tracker), loads and crashes. Each environment keeps its own folder, and a
    package without its metadata yet (mid-install) gets "none", so its cache is not reused.
    """
    from importlib import metadata

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "none"

    packages = "-".join(f"{name}{version(name)}" for name in ("numba", "llvmlite", "numpy", "librosa"))
    return f"py{sys.version_info.major}.{sys.version_info.minor}-{platform.machine()}-{packages}"


def configure_numba_cache() -> None:
    """Point numba's on-disk cache at a persistent folder, before librosa is imported.

    librosa's numba functions compile on first use (seconds); with a persistent cache the
    next process loads them instead.
    """
    if "NUMBA_CACHE_DIR" not in os.environ:
        cache = default_cache_dir() / "numba" / numba_cache_key()
        cache.mkdir(parents=True, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = str(cache)


def beat_phase(num_frames: int, beat_frames: np.ndarray, fps: float) -> np.ndarray:
    """(num_frames,) position of each frame between two beats, in [0, 1).

    0 on a beat. Before the first and after the last beat the phase runs on at the
    neighbouring beat interval; with fewer than two beats it runs at 120 BPM from frame 0.
    """
    frames = np.arange(num_frames, dtype=np.float64)
    beats = np.asarray(beat_frames, dtype=np.float64)
    if beats.size < 2:
        period = fps * 60.0 / 120.0
        start = beats[0] if beats.size else 0.0
        return np.mod((frames - start) / period, 1.0)
    beat_index = np.interp(frames, beats, np.arange(beats.size, dtype=np.float64))
    first_period = beats[1] - beats[0]
    last_period = beats[-1] - beats[-2]
    before = frames < beats[0]
    after = frames > beats[-1]
    beat_index[before] = (frames[before] - beats[0]) / first_period
    beat_index[after] = beats.size - 1 + (frames[after] - beats[-1]) / last_period
    return np.mod(beat_index, 1.0)


def even_spans(length: int, parts: int) -> list[tuple[int, int]]:
    """[first, end) spans splitting ``range(length)`` into at most ``parts`` near-equal pieces,
    none empty (one, empty, for length 0)."""
    count = max(1, min(parts, length))
    bounds = np.linspace(0, length, count + 1).round().astype(int)
    return [(int(first), int(end)) for first, end in itertools.pairwise(bounds)]


def power_spectrogram(samples: np.ndarray, pool: ThreadPoolExecutor) -> np.ndarray:
    """``np.abs(librosa.stft(samples, n_fft=N_FFT, hop_length=HOP_LENGTH)) ** 2``, the same
    values, its frames computed in ``STFT_THREADS`` parts on the pool (numpy's FFT lets go of
    the GIL). Each part is librosa's STFT, uncentred, over its frames of the signal padded with
    N_FFT / 2 zeros each side, as the centred STFT pads it."""
    import librosa

    padded = np.pad(samples, N_FFT // 2)

    def part(span: tuple[int, int]) -> np.ndarray:
        first, end = span
        frames = padded[first * HOP_LENGTH : (end - 1) * HOP_LENGTH + N_FFT]
        return np.abs(librosa.stft(frames, n_fft=N_FFT, hop_length=HOP_LENGTH, center=False)) ** 2

    spans = even_spans(1 + len(samples) // HOP_LENGTH, STFT_THREADS)
    return np.concatenate(list(pool.map(part, spans)), axis=1)


def estimate_tuning(power: np.ndarray, pool: ThreadPoolExecutor) -> Future[float]:
    """``librosa.estimate_tuning(S=power, sr=SAMPLE_RATE, bins_per_octave=N_CHROMA)``, the same
    value, with its pitch tracking (frame by frame, most of its time) split over the pool's
    threads; numpy lets go of the GIL in its array loops, so the parts overlap. Each part keeps
    only its peaks, so the whole song's (bins, frames) tracks are never held twice."""
    import librosa

    def peaks(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pitch, magnitude = librosa.piptrack(S=part, sr=SAMPLE_RATE)
        voiced = pitch > 0
        return pitch[voiced], magnitude[voiced]

    parts = [pool.submit(peaks, power[:, a:b]) for a, b in even_spans(power.shape[1], TUNING_THREADS)]

    def tuning() -> float:
        tracked = [part.result() for part in parts]
        pitch = np.concatenate([pitch for pitch, _ in tracked])
        magnitude = np.concatenate([magnitude for _, magnitude in tracked])
        # As librosa: the pitches of peaks at least as strong as the median peak (a histogram
        # of them, so their order does not matter).
        threshold = np.median(magnitude) if magnitude.size else 0.0
        selected = pitch[magnitude >= threshold]
        if not np.any(selected):  # librosa's answer for no pitches, without its warning for the user
            return 0.0
        return float(librosa.pitch_tuning(selected, bins_per_octave=N_CHROMA))

    return pool.submit(tuning)


def compute_features(song: Song) -> MusicFeatures:
    """Features of a decoded song (its sample rate must be SAMPLE_RATE)."""
    configure_numba_cache()
    import librosa

    if song.sample_rate != SAMPLE_RATE:
        raise ValueError(f"song at {song.sample_rate} Hz, features need {SAMPLE_RATE} Hz")
    y = song.samples
    num_frames = max(1, round(song.duration_s * FPS))

    # The spectrogram, then the chroma's tuning estimate (the slowest feature), in threads beside
    # the rest. Same values.
    with ThreadPoolExecutor(max_workers=max(TUNING_THREADS, STFT_THREADS)) as pool:
        power = power_spectrogram(y, pool)
        tuning = estimate_tuning(power, pool)
        mel = librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE)
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=N_MFCC)
        mfcc_delta = librosa.feature.delta(mfcc, mode="nearest")
        onset = librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=SAMPLE_RATE)
        rms = librosa.feature.rms(S=np.sqrt(power), frame_length=N_FFT)[0]
        tempo, beat_frames = librosa.beat.beat_track(
            onset_envelope=onset, sr=SAMPLE_RATE, hop_length=HOP_LENGTH, tightness=BEAT_TIGHTNESS
        )
        chroma = librosa.feature.chroma_stft(S=power, sr=SAMPLE_RATE, n_chroma=N_CHROMA, tuning=tuning.result())
    beat_frames = beat_frames[beat_frames < num_frames]

    features = np.zeros((num_frames, FEATURE_DIM), dtype=np.float32)

    def put(columns: slice | int, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float32)[..., :num_frames]
        features[: values.shape[-1], columns] = values.T

    put(MFCC_COLUMNS, mfcc)
    put(MFCC_DELTA_COLUMNS, mfcc_delta)
    put(CHROMA_COLUMNS, chroma)
    put(ONSET_COLUMN, onset / max(float(onset.max()), 1e-8))
    rms_db = librosa.amplitude_to_db(rms, ref=1.0, top_db=None)
    put(RMS_COLUMN, np.clip(rms_db, RMS_FLOOR_DB, 0.0) / -RMS_FLOOR_DB)
    features[beat_frames, BEAT_COLUMN] = 1.0
    phase = beat_phase(num_frames, beat_frames, FPS)
    features[:, BEAT_PHASE_COLUMNS] = np.stack([np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase)], axis=1)

    return MusicFeatures(
        features=features,
        beat_times=beat_frames.astype(np.float64) / FPS,
        tempo_bpm=float(np.atleast_1d(tempo)[0]),
        duration_s=song.duration_s,
        warning=song.warning(),
    )


def song_features(path: str | Path, start_s: float = 0.0, end_s: float | None = None) -> MusicFeatures:
    """Decode ``path`` (or its [start_s, end_s) seconds) and compute its features.

    Raises UserInputError for unusable files and spans.
    """
    return compute_features(load_song(path, SAMPLE_RATE, start_s, end_s))


def warm_up() -> None:
    """Compile (or load from the cache) librosa's numba functions on two seconds of clicks."""
    seconds = 2.0
    samples = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    samples[:: SAMPLE_RATE // 2] = 1.0
    compute_features(Song(path=Path("<warm-up>"), samples=samples, sample_rate=SAMPLE_RATE, duration_s=seconds))
