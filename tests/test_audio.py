import io

import numpy as np
import pytest
import soundfile
import sphn
import torch

import dsmlab
from dsmlab import DSMLabError, load_audio


def tone(freq, seconds, rate):
    return np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate).astype(np.float32)


def dominant_frequency(x, rate):
    spectrum = np.abs(np.fft.rfft(x))
    return np.argmax(spectrum) * rate / len(x)


def test_array_is_resampled_to_24k_without_shift():
    x = np.zeros(16000, dtype=np.float32)
    x[8000] = 1.0  # an impulse at 0.5 s
    y = load_audio(x, sample_rate=16000)
    assert y.shape == (24000,) and y.dtype == torch.float32
    assert int(y.abs().argmax()) == 12000
    assert dominant_frequency(load_audio(tone(440, 1, 16000), 16000).numpy(), 24000) == 440


def test_stereo_is_mixed_to_mono_and_files_are_read(tmp_path):
    left, right = tone(440, 1, 24000), np.zeros(24000, dtype=np.float32)
    np.testing.assert_allclose(load_audio(np.stack([left, right]), 24000), left / 2, atol=1e-6)
    path = tmp_path / "stereo.wav"
    sphn.write_wav(str(path), np.stack([left, right]), 16000)
    from_file = load_audio(path)
    assert from_file.shape == (36000,)


def test_integer_arrays_are_scaled_and_tensors_accepted():
    pcm = (tone(300, 0.5, 24000) * 32767).astype(np.int16)
    assert float(load_audio(pcm, 24000).abs().max()) == pytest.approx(1.0, abs=1e-3)
    assert load_audio(torch.ones(2, 100), 24000).shape == (100,)


@pytest.mark.parametrize(
    ("audio", "rate", "message"),
    [
        (np.zeros(0, dtype=np.float32), 24000, "audio array: the audio is empty"),
        (np.array([0.0, np.nan], dtype=np.float32), 24000, "audio array: .*NaN or infinite"),
        (np.array([0.0, np.inf], dtype=np.float32), 24000, "NaN or infinite"),
        (np.zeros((2, 2, 100), dtype=np.float32), 24000, r"expected \[samples\] or"),
        (np.zeros((1000, 2), dtype=np.float32), 24000, r"transpose a \[samples, channels\]"),
        (np.zeros(100, dtype=np.float32), None, "needs its sample rate"),
        (np.zeros(100, dtype=np.float32), 0, "sample rate must be positive"),
        (np.array(["a", "b"]), 24000, "expected a numeric array"),
    ],
)
def test_bad_arrays_get_a_one_line_error(audio, rate, message):
    with pytest.raises(DSMLabError, match=message) as error:
        load_audio(audio, rate)
    assert "\n" not in str(error.value)


def test_missing_and_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(DSMLabError, match="nope.wav: no such audio file"):
        load_audio(tmp_path / "nope.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 10)
    with pytest.raises(DSMLabError, match=r"bad.wav: cannot decode audio .*wav, flac, mp3") as e:
        load_audio(bad)
    assert "\n" not in str(e.value)


FORMATS = [  # the README's list: (format, subtype, file suffix, rate)
    ("WAV", "PCM_16", "wav", 16000),
    ("FLAC", "PCM_16", "flac", 16000),
    ("MP3", "MPEG_LAYER_III", "mp3", 16000),
    ("OGG", "VORBIS", "ogg", 16000),
    ("OGG", "OPUS", "opus", 48000),
]


@pytest.mark.parametrize(("fmt", "subtype", "suffix", "rate"), FORMATS)
def test_every_listed_format_decodes_whole_and_in_place(tmp_path, fmt, subtype, suffix, rate):
    """Length and timing survive: an impulse at 0.5 s stays at 0.5 s (sphn's mp3 decoder
    would keep the encoder delay and move it by 69 ms)."""
    x = 0.2 * tone(300, 1.0, rate)
    x[rate // 2 : rate // 2 + rate // 100] = 0.9  # a 10 ms click at 0.5 s
    path = tmp_path / f"a.{suffix}"
    soundfile.write(path, x, rate, format=fmt, subtype=subtype)
    for source in (path, path.read_bytes()):
        y = load_audio(source).numpy()
        assert len(y) == pytest.approx(24000, abs=1)
        click = int(np.argmax(np.abs(y)))
        assert abs(click - 12000) < 24000 * 0.012  # within the click's 10 ms (and codec smear)


@pytest.mark.parametrize(
    ("fmt", "subtype", "suffix", "message"),
    [
        ("WAV", "PCM_16", "wav", "truncated audio: its header announces 16000 samples but"),
        ("MP3", "MPEG_LAYER_III", "mp3", "truncated audio: its header announces 16000 samples"),
        ("FLAC", "PCM_16", "flac", "cannot decode audio"),
    ],
)
def test_a_cut_file_is_an_error_not_half_the_audio(tmp_path, fmt, subtype, suffix, message):
    path = tmp_path / f"a.{suffix}"
    soundfile.write(path, 0.3 * tone(440, 1.0, 16000), 16000, format=fmt, subtype=subtype)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for source in (path, path.read_bytes()):
        with pytest.raises(DSMLabError, match=message):
            load_audio(source)


def test_a_streamed_wav_without_sizes_is_read_whole():
    """A WAV written to a pipe leaves its sizes 0xFFFFFFFF: that announces nothing."""
    buf = io.BytesIO()
    soundfile.write(buf, 0.3 * tone(440, 1.0, 16000), 16000, format="WAV", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    assert data[36:40] == b"data"
    data[40:44] = b"\xff\xff\xff\xff"  # the data chunk's size
    assert len(load_audio(bytes(data))) == 24000


@pytest.mark.parametrize(
    ("rate", "subtype"), [(16000, "PCM_16"), (24000, "FLOAT"), (44100, "PCM_16")]
)
def test_read_chunks_joins_to_the_whole_file_at_24_khz(tmp_path, rate, subtype):
    rng = np.random.default_rng(rate)
    audio = (0.2 * rng.standard_normal((round(rate * 7.3), 2))).astype(np.float32)
    path = tmp_path / "long.wav"
    soundfile.write(path, audio, rate, subtype=subtype)
    chunks = list(dsmlab.read_chunks(path, chunk_s=2.0))
    whole = dsmlab.load_audio(path)
    assert len(chunks) == 4 and all(abs(len(c) - 48000) <= 1 for c in chunks[:-1])
    joined = torch.cat(chunks)
    assert len(joined) == len(whole)
    assert torch.allclose(joined, whole, atol=1e-6)
    assert torch.equal(torch.cat(list(dsmlab.read_chunks(path.read_bytes(), 2.0))), joined)


def test_read_chunks_of_a_missing_or_empty_file_is_one_clear_error(tmp_path):
    with pytest.raises(dsmlab.UsageError, match="no such audio file"):
        next(dsmlab.read_chunks(tmp_path / "nope.wav"))
    soundfile.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(dsmlab.DSMLabError, match="the audio is empty"):
        next(dsmlab.read_chunks(tmp_path / "empty.wav"))
