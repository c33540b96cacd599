import numpy as np
import pytest
import sphn
import torch

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
