"""Audio in: files or arrays -> mono float32 at Mimi's 24 kHz, with clear errors on bad input."""

from __future__ import annotations

import io
from pathlib import Path

import julius
import numpy as np
import soundfile
import sphn
import torch

from .errors import DSMLabError

SAMPLE_RATE = 24_000
FRAME_SIZE = 1920  # samples per Mimi frame: 80 ms at 24 kHz
FRAME_RATE = SAMPLE_RATE / FRAME_SIZE  # 12.5 frames per second
MAX_CHANNELS = 8  # a 2-D array with more rows than this is taken as [samples, channels]

AudioInput = str | Path | bytes | np.ndarray | torch.Tensor


def load_audio(
    source: AudioInput, sample_rate: int | None = None, name: str | None = None
) -> torch.Tensor:
    """Return `source` as a 1-D float32 CPU tensor at 24 kHz, mono.

    `source` is a file that sphn reads (wav, flac, mp3, ogg), the bytes of such a file
    (decoded with soundfile), or an array with its `sample_rate`. Arrays are [samples] or
    [channels, samples]; channels are averaged.
    """
    if isinstance(source, (str, Path)):
        name = name or str(source)
        data, sample_rate = _read_file(Path(source))
    elif isinstance(source, bytes):
        name = name or "audio bytes"
        data, sample_rate = _read_bytes(source, name)
    else:
        name = name or "audio array"
        if sample_rate is None:
            raise DSMLabError(f"{name}: an array needs its sample rate; pass sample_rate=...")
        data = _as_numpy(source, name)
    return _to_model_rate(data, int(sample_rate), name)


def _read_file(path: Path) -> tuple[np.ndarray, int]:
    if not path.is_file():
        raise DSMLabError(f"{path}: no such audio file")
    try:
        data, sample_rate = sphn.read(str(path))
    except Exception as e:  # sphn raises plain exceptions with the decoder's message
        raise DSMLabError(
            f"{path}: cannot decode audio ({_first_line(e)}); use wav, flac, mp3 or ogg"
        ) from None
    return np.asarray(data, dtype=np.float32), int(sample_rate)


def _read_bytes(data: bytes, name: str) -> tuple[np.ndarray, int]:
    try:
        samples, sample_rate = soundfile.read(io.BytesIO(data), dtype="float32")
    except Exception as e:  # libsndfile reports unreadable data with various errors
        reason = str(e).split(": ")[-1].strip() or type(e).__name__
        raise DSMLabError(f"{name}: cannot decode audio bytes ({reason})") from None
    return (samples.T if samples.ndim == 2 else samples), int(sample_rate)


def _as_numpy(array: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().float().numpy()
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / np.iinfo(array.dtype).max
    elif not np.issubdtype(array.dtype, np.floating):
        raise DSMLabError(f"{name}: expected a numeric array, got dtype {array.dtype}")
    return array.astype(np.float32, copy=False)


def _to_model_rate(data: np.ndarray, sample_rate: int, name: str) -> torch.Tensor:
    if data.ndim == 2 and data.shape[0] > MAX_CHANNELS:
        raise DSMLabError(
            f"{name}: expected [channels, samples], got shape {tuple(data.shape)}; "
            "transpose a [samples, channels] array (array.T)"
        )
    if data.ndim not in (1, 2):
        raise DSMLabError(
            f"{name}: expected [samples] or [channels, samples], got shape {tuple(data.shape)}"
        )
    if data.size == 0:
        raise DSMLabError(f"{name}: the audio is empty")
    if not np.isfinite(data).all():
        raise DSMLabError(f"{name}: the audio contains NaN or infinite samples")
    if sample_rate <= 0:
        raise DSMLabError(f"{name}: sample rate must be positive, got {sample_rate}")
    mono = torch.from_numpy(np.ascontiguousarray(data if data.ndim == 1 else data.mean(axis=0)))
    if sample_rate != SAMPLE_RATE:
        # julius, not sphn.resample: sphn's resampler delays the signal (32 ms at 16 kHz),
        # which would shift every word timestamp; julius is also what Kyutai's eval uses.
        mono = julius.resample_frac(mono, sample_rate, SAMPLE_RATE)
    return mono.float().contiguous()


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
