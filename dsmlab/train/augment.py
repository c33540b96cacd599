"""Acoustic variety for the synthetic corpus: speed, band limits, reverberation, noise, level.

A synthesizer's voice is too clean and too constant for a model to learn speech in general;
these are the changes between rooms, microphones and speakers that a recognizer must ignore.
Speed perturbation (resampling) moves pitch and formants together, as a shorter or longer
vocal tract does: with it the corpus reaches registers its mostly male voices lack (0.8 to 1.3x
instead of 0.85 to 1.15x, the voice spoken slower by the factor, see `corpus`: the recipe's
tokenizer named 39.4% of the phone frames of flite's slt, a female voice it never heard,
against 31.4%). Word times follow every change. All randomness comes from the
caller's generator, so a corpus is a function of its seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import julius
import numpy as np
import torch

NOISE_COLORS = ("white", "pink", "brown")
# Peak levels, dBFS. A small SEANet learns several times slower from quiet input (measured:
# 14% against 60% phone accuracy after 150 steps on one batch, levels -30..-3 against -6 dBFS),
# so training audio stays loud, as speech from a close microphone or a synthesizer is.
LEVELS_DB = (-12.0, -2.0)
SPEEDS = (0.8, 1.3)  # drawn log-uniformly: formants from 0.8x to 1.3x the voice's own


@dataclass(frozen=True)
class Augmentation:
    """One utterance's settings; None switches a change off."""

    speed: float | None = None  # > 1 is faster and higher
    highpass_hz: float | None = None
    lowpass_hz: float | None = None
    reverb_rt60_s: float | None = None
    reverb_wet: float = 0.0  # share of reverberant energy
    noise_snr_db: float | None = None
    noise_color: str = "white"
    level_db: float = -6.0  # peak level, dBFS

    def describe(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def draw(rng: np.random.Generator) -> Augmentation:
    """The corpus's random settings: most utterances get a few changes, some none."""
    return Augmentation(
        speed=float(np.exp(rng.uniform(*np.log(SPEEDS)))) if rng.random() < 0.8 else None,
        highpass_hz=float(rng.uniform(60, 400)) if rng.random() < 0.3 else None,
        lowpass_hz=float(rng.uniform(2800, 7000)) if rng.random() < 0.35 else None,
        reverb_rt60_s=float(rng.uniform(0.15, 0.8)) if rng.random() < 0.35 else None,
        reverb_wet=float(rng.uniform(0.1, 0.5)),
        noise_snr_db=float(rng.uniform(5, 35)) if rng.random() < 0.6 else None,
        noise_color=str(rng.choice(NOISE_COLORS)),
        level_db=float(rng.uniform(*LEVELS_DB)),
    )


def apply(
    audio: np.ndarray, rate: int, timed: list[dict], aug: Augmentation, rng: np.random.Generator
) -> tuple[np.ndarray, list[dict]]:
    """(float32 audio at `rate`, the `timed` entries (words, phones: dicts with a start and an
    end) with their times moved by the speed change)."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    if aug.speed is not None:
        # play `rate / speed` samples per second at `rate`: everything `speed` times faster.
        # The new rate is rounded to 100 Hz: julius's cost grows with the reduced ratio.
        slower_rate = max(100, round(rate / aug.speed / 100) * 100)
        speed = rate / slower_rate
        x = julius.resample_frac(x, rate, slower_rate)
        timed = [w | {"start": w["start"] / speed, "end": w["end"] / speed} for w in timed]
    if aug.highpass_hz is not None:
        x = julius.highpass_filter(x, aug.highpass_hz / rate)
    if aug.lowpass_hz is not None and aug.lowpass_hz < rate / 2:
        x = julius.lowpass_filter(x, aug.lowpass_hz / rate)
    y = x.numpy().astype(np.float64)
    if aug.reverb_rt60_s is not None:
        y = reverberate(y, rate, aug.reverb_rt60_s, aug.reverb_wet, rng)
    if aug.noise_snr_db is not None:
        y = y + noise(len(y), aug.noise_color, rng) * _rms(y) / 10 ** (aug.noise_snr_db / 20)
    peak = np.abs(y).max()
    if peak > 0:
        y = y * (10 ** (aug.level_db / 20) / peak)
    return y.astype(np.float32), timed


def reverberate(
    x: np.ndarray, rate: int, rt60_s: float, wet: float, rng: np.random.Generator
) -> np.ndarray:
    """A synthetic room: the direct sound plus exponentially decaying noise (-60 dB after
    rt60_s), mixed so that `wet` of the energy is reverberant. The output keeps the input's
    length: a tail past the end is cut, as in a recording that stops."""
    n = int(rt60_s * rate)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    tail[: int(0.002 * rate)] = 0.0  # early reflections arrive after ~2 ms
    tail /= np.sqrt(np.sum(tail**2)) + 1e-12
    size = 1 << int(np.ceil(np.log2(len(x) + n)))
    reverb = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(tail, size), size)[: len(x)]
    reverb *= _rms(x) / (_rms(reverb) + 1e-12)
    return np.sqrt(1 - wet) * x + np.sqrt(wet) * reverb


def noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise: white (flat), pink (-3 dB/octave) or brown (-6 dB/octave)."""
    white = rng.standard_normal(n)
    if color == "white" or n < 2:
        return white
    spectrum = np.fft.rfft(white)
    f = np.arange(len(spectrum), dtype=float)
    f[0] = 1.0
    spectrum /= f ** (0.5 if color == "pink" else 1.0)
    shaped = np.fft.irfft(spectrum, n)
    return shaped / (_rms(shaped) + 1e-12)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
