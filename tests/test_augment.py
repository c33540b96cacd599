"""Corpus augmentations do what their names say, and word times follow them."""

import numpy as np
import pytest

from dsmlab.train import augment
from dsmlab.train.augment import Augmentation

RATE = 16000


def tone(freq, seconds=1.0):
    return np.sin(2 * np.pi * freq * np.arange(int(seconds * RATE)) / RATE).astype(np.float32)


def energy_at(x, freq):
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    bins = np.fft.rfftfreq(len(x), 1 / RATE)
    return spectrum[np.abs(bins - freq) < 20].sum()


def test_speed_shortens_the_audio_raises_the_pitch_and_moves_the_words():
    words = [{"word": "a", "start": 0.25, "end": 0.5}]
    y, moved = augment.apply(tone(400), RATE, words, Augmentation(speed=1.25), rng())
    assert len(y) == pytest.approx(RATE / 1.25, abs=2)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.fft.rfftfreq(len(y), 1 / RATE)[spectrum.argmax()] == pytest.approx(500, abs=3)
    assert moved == [{"word": "a", "start": 0.2, "end": 0.4}]


def test_band_limits_keep_the_band():
    mix = tone(200) + tone(3000)
    low = augment.apply(mix, RATE, [], Augmentation(lowpass_hz=1000), rng())[0]
    assert energy_at(low, 3000) < 1e-3 * energy_at(low, 200)
    high = augment.apply(mix, RATE, [], Augmentation(highpass_hz=1000), rng())[0]
    assert energy_at(high, 200) < 1e-3 * energy_at(high, 3000)


def test_reverberation_decays_60_db_over_its_rt60():
    impulse = np.zeros(RATE)
    impulse[100] = 1.0
    y = augment.reverberate(impulse, RATE, rt60_s=0.4, wet=1.0, rng=rng())
    assert len(y) == RATE
    power = np.convolve(y**2, np.ones(400) / 400, mode="same")
    early, late = power[100 + int(0.05 * RATE)], power[100 + int(0.25 * RATE)]
    # 0.2 s apart in a 0.4 s RT60: 30 dB of decay
    assert 10 * np.log10(early / late) == pytest.approx(30, abs=6)


def test_noise_is_added_at_the_asked_snr_and_colored():
    x = tone(500, 2.0)
    aug = Augmentation(noise_snr_db=10.0, level_db=0.0)
    y = augment.apply(x, RATE, [], aug, rng())[0].astype(float)
    signal = x * (np.dot(y, x) / np.dot(x, x))
    snr = 10 * np.log10(np.mean(signal**2) / np.mean((y - signal) ** 2))
    assert snr == pytest.approx(10, abs=0.5)
    pink = augment.noise(1 << 16, "pink", rng())
    spectrum = np.abs(np.fft.rfft(pink)) ** 2
    bins = np.fft.rfftfreq(len(pink))
    octave = [spectrum[(bins > f) & (bins < 2 * f)].mean() for f in (0.01, 0.02)]
    assert 10 * np.log10(octave[0] / octave[1]) == pytest.approx(3, abs=1)


def test_level_and_determinism():
    x = tone(300)
    aug = augment.draw(rng())
    first = augment.apply(x, RATE, [], aug, rng())[0]
    assert np.array_equal(first, augment.apply(x, RATE, [], aug, rng())[0])
    assert 20 * np.log10(np.abs(first).max()) == pytest.approx(aug.level_db, abs=0.01)


def rng():
    return np.random.default_rng(0)
