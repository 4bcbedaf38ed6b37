"""Decoding and music features: formats, rates, beats, and the errors a user sees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend import music_features as mf
from backend.audio import load_song
from backend.errors import UserInputError

from .conftest import EXAMPLE_SONG, write_song


def test_constants_are_consistent() -> None:
    assert mf.SAMPLE_RATE == mf.FPS * mf.HOP_LENGTH == 15360
    columns = [mf.MFCC_COLUMNS, mf.MFCC_DELTA_COLUMNS, mf.CHROMA_COLUMNS, mf.BEAT_PHASE_COLUMNS]
    widths = sum(c.stop - c.start for c in columns) + 3  # onset, rms, beat
    assert widths == mf.FEATURE_DIM == 57


@pytest.mark.parametrize(
    ("name", "rate", "channels", "options"),
    [
        ("song.wav", 44100, 2, {}),
        ("song.flac", 22050, 1, {}),
        ("song.ogg", 48000, 2, {"format": "OGG", "subtype": "VORBIS"}),
        ("song.mp3", 44100, 2, {"format": "MP3", "subtype": "MPEG_LAYER_III"}),
    ],
)
def test_formats_rates_and_channels_decode_to_the_same_song(
    tmp_path: Path, name: str, rate: int, channels: int, options: dict[str, str]
) -> None:
    path = write_song(tmp_path / name, duration_s=4.0, sample_rate=rate, channels=channels, **options)
    song = load_song(path, mf.SAMPLE_RATE)
    assert song.sample_rate == mf.SAMPLE_RATE
    assert song.samples.ndim == 1 and song.samples.dtype == np.float32
    # mp3 encoders pad a little; every other format keeps the exact length.
    assert song.duration_s == pytest.approx(4.0, abs=0.06 if name.endswith(".mp3") else 1e-9)
    assert len(song.samples) == pytest.approx(song.duration_s * mf.SAMPLE_RATE, abs=2)


def test_metronome_beats_and_tempo(click_song: Path) -> None:
    music = mf.song_features(click_song)
    assert music.features.shape == (round(8.0 * mf.FPS), mf.FEATURE_DIM)
    assert music.features.dtype == np.float32 and np.all(np.isfinite(music.features))
    assert music.tempo_bpm == pytest.approx(120.0, rel=0.03)
    # Beats every 0.5 s, on the clicks (first at 0.25 s): within two frames.
    intervals = np.diff(music.beat_times)
    assert np.median(intervals) == pytest.approx(0.5, abs=1 / mf.FPS)
    phase_error = np.abs(((music.beat_times - 0.25) + 0.25) % 0.5 - 0.25)
    assert np.median(phase_error) <= 2 / mf.FPS
    beat_rows = np.flatnonzero(music.features[:, mf.BEAT_COLUMN])
    np.testing.assert_array_equal(beat_rows, np.round(music.beat_times * mf.FPS).astype(int))
    # Beat phase is 0 (sin 0, cos 1) on the beats.
    np.testing.assert_allclose(music.features[beat_rows, mf.BEAT_PHASE_COLUMNS.start], 0.0, atol=1e-6)
    np.testing.assert_allclose(music.features[beat_rows, mf.BEAT_PHASE_COLUMNS.start + 1], 1.0, atol=1e-6)
    assert 0.0 <= music.features[:, mf.ONSET_COLUMN].min() and music.features[:, mf.ONSET_COLUMN].max() == 1.0
    assert -1.0 <= music.features[:, mf.RMS_COLUMN].min() <= music.features[:, mf.RMS_COLUMN].max() <= 0.0


def test_beat_phase_runs_on_past_the_beats() -> None:
    phase = mf.beat_phase(40, np.array([10, 20]), fps=30)
    np.testing.assert_allclose(phase[[10, 15, 20, 25, 30, 5]], [0.0, 0.5, 0.0, 0.5, 0.0, 0.5])
    no_beats = mf.beat_phase(30, np.array([], dtype=int), fps=30)
    np.testing.assert_allclose(no_beats[[0, 15, 7]], [0.0, 0.0, 7 / 15])  # 120 BPM = 15 frames a beat


def test_example_song_features() -> None:
    music = mf.song_features(EXAMPLE_SONG)
    assert music.duration_s == pytest.approx(40.0, abs=0.01)
    assert music.num_frames == 1200
    assert 60 < music.tempo_bpm < 200 and len(music.beat_times) > 40


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.ogg", "no such file"),
        (lambda d: write_bytes(d / "empty.wav", b""), "the file is empty"),
        (lambda d: write_bytes(d / "notes.mp3", b"these are my dance notes, not audio\n" * 20), "is a text file"),
        (lambda d: write_bytes(d / "junk.mp3", bytes(range(128)) * 40), "is not an MP3 file"),
        (lambda d: write_bytes(d / "cut.ogg", (EXAMPLE_SONG.read_bytes()[:3000])), "cannot be decoded"),
        (lambda d: d, "is a folder"),
    ],
)
def test_unusable_files_name_the_file_and_the_problem(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(UserInputError) as caught:
        mf.song_features(path)
    assert str(path) in str(caught.value) and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_threaded_tuning_estimate_is_librosas() -> None:
    import librosa

    samples = load_song(EXAMPLE_SONG, mf.SAMPLE_RATE).samples
    whole = np.abs(librosa.stft(samples, n_fft=mf.N_FFT, hop_length=mf.HOP_LENGTH)) ** 2
    middle = whole.shape[1] // 2
    for power in (whole, whole[:, middle : middle + 3]):  # a song, and fewer frames than threads
        with mf.ThreadPoolExecutor(max_workers=mf.TUNING_THREADS) as pool:
            threaded = mf.estimate_tuning(power, pool).result()
        assert threaded == librosa.estimate_tuning(S=power, sr=mf.SAMPLE_RATE, bins_per_octave=mf.N_CHROMA)


@pytest.mark.filterwarnings("ignore:n_fft=2048 is too large")  # librosa's own, on the shortest songs
def test_the_threaded_spectrogram_is_librosas_to_the_bit() -> None:
    import librosa

    samples = load_song(EXAMPLE_SONG, mf.SAMPLE_RATE).samples
    # A song, one a sample short of a whole hop, and songs of fewer frames than threads.
    for length in (len(samples), len(samples) - 1, 3 * mf.HOP_LENGTH, mf.N_FFT // 2):
        expected = np.abs(librosa.stft(samples[:length], n_fft=mf.N_FFT, hop_length=mf.HOP_LENGTH)) ** 2
        with mf.ThreadPoolExecutor(max_workers=mf.STFT_THREADS) as pool:
            threaded = mf.power_spectrogram(samples[:length], pool)
        assert threaded.shape == expected.shape and np.array_equal(threaded, expected)


def test_silent_and_too_short_songs(tmp_path: Path) -> None:
    import soundfile

    silent = tmp_path / "silent.wav"
    soundfile.write(str(silent), np.zeros(44100 * 3, dtype=np.float32), 44100)
    with pytest.raises(UserInputError, match="is silent"):
        mf.song_features(silent)
    short = write_song(tmp_path / "short.wav", duration_s=0.4)
    with pytest.raises(UserInputError, match="too short"):
        mf.song_features(short)


def test_a_span_of_the_song_is_decoded_alone(click_song: Path) -> None:
    whole = load_song(click_song, mf.SAMPLE_RATE)
    span = load_song(click_song, mf.SAMPLE_RATE, start_s=2.0, end_s=5.5)
    assert span.duration_s == pytest.approx(3.5, abs=1e-4)
    first = round(2.0 * mf.SAMPLE_RATE)
    edge = 2048  # the resampler's filter sees different neighbours at the span's ends
    np.testing.assert_allclose(
        span.samples[edge:-edge], whole.samples[first + edge : first + span.samples.size - edge], atol=1e-4
    )
    assert load_song(click_song, mf.SAMPLE_RATE, start_s=6.0).duration_s == pytest.approx(2.0, abs=1e-4)


@pytest.mark.parametrize(
    ("name", "options"), [("long.ogg", {"format": "OGG", "subtype": "VORBIS"}), ("long.flac", {}), ("long.wav", {})]
)
def test_a_long_song_decoded_in_parallel_parts_is_the_one_pass_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, options: dict[str, str]
) -> None:
    import soundfile

    from backend import audio

    rate = 44100
    noise = 0.3 * np.random.default_rng(0).standard_normal((int(25 * rate), 2))  # every sample differs
    path = tmp_path / name
    soundfile.write(str(path), noise.astype(np.float32), rate, **options)
    monkeypatch.setattr(audio.os, "cpu_count", lambda: 4)
    assert len(audio.decode_parts(len(noise), rate, exact_seek=True)) == min(audio.DECODE_THREADS, 4)
    parallel = load_song(path, rate), load_song(path, rate, start_s=1.3, end_s=24.0)
    monkeypatch.setattr(audio, "DECODE_THREADS", 1)
    for parts, one_pass in zip(
        parallel, (load_song(path, rate), load_song(path, rate, start_s=1.3, end_s=24.0)), strict=True
    ):
        np.testing.assert_array_equal(parts.samples, one_pass.samples)


def test_a_file_shorter_than_its_header_decodes_what_is_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from backend import audio

    path = write_song(tmp_path / "long.wav", duration_s=24.0, sample_rate=22050)
    whole = load_song(path, 22050).samples
    real_decode = audio.decode_into

    def ends_at_20_s(path: Path, first: int, out: np.ndarray) -> int:
        return real_decode(path, first, out[: max(0, 20 * 22050 - first)])

    monkeypatch.setattr(audio.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(audio, "decode_into", ends_at_20_s)
    np.testing.assert_array_equal(load_song(path, 22050).samples, whole[: 20 * 22050])


@pytest.mark.parametrize(
    ("start_s", "end_s", "problem"),
    [(9.0, None, "past the end"), (-1.0, None, "0 s or more"), (3.0, 2.0, "must come after"), (3.0, 3.5, "too short")],
)
def test_a_span_outside_the_song_is_refused(
    click_song: Path, start_s: float, end_s: float | None, problem: str
) -> None:
    with pytest.raises(UserInputError, match=problem):
        load_song(click_song, mf.SAMPLE_RATE, start_s=start_s, end_s=end_s)


def test_numba_cache_is_kept_per_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Machine code compiled against one numpy must never load under another (it crashes)."""
    from importlib import metadata

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(mf, "default_cache_dir", lambda: tmp_path)
    here = mf.numba_cache_key()
    assert f"numpy{np.__version__}" in here and "librosa" in here and "none" not in here
    mf.configure_numba_cache()
    assert Path(mf.os.environ["NUMBA_CACHE_DIR"]) == tmp_path / "numba" / here
    assert (tmp_path / "numba" / here).is_dir()

    real_version = metadata.version

    def other_numpy(package: str) -> str:
        if package == "numpy":
            return "9.9.9"
        if package == "llvmlite":
            raise metadata.PackageNotFoundError(package)  # mid-install: no metadata yet
        return real_version(package)

    monkeypatch.setattr(metadata, "version", other_numpy)
    other = mf.numba_cache_key()
    assert other != here and "numpy9.9.9" in other and "llvmlitenone" in other


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_a_cut_off_file_dances_as_far_as_it_goes_with_one_warning(tmp_path: Path, suffix: str) -> None:
    whole = write_song(tmp_path / f"whole{suffix}", duration_s=10.0)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])  # a download that stopped
    song = load_song(cut, mf.SAMPLE_RATE)
    assert 5.0 < song.duration_s < 7.0 and song.claimed_s == pytest.approx(10.0)
    warning = song.warning()
    assert warning is not None and "\n" not in warning and str(cut) in warning and "10.0 s its header claims" in warning
    assert load_song(whole, mf.SAMPLE_RATE).warning() is None


def test_no_pitch_at_all_gives_librosas_tuning_without_its_warning() -> None:
    import warnings

    power = np.zeros((1 + mf.N_FFT // 2, 40))
    with warnings.catch_warnings(), mf.ThreadPoolExecutor(max_workers=mf.TUNING_THREADS) as pool:
        warnings.simplefilter("error")
        assert mf.estimate_tuning(power, pool).result() == 0.0
