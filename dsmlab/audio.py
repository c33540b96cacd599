"""Audio in: files or arrays -> mono float32 at Mimi's 24 kHz, with clear errors on bad input.

Files and bytes are decoded by libsndfile (soundfile): WAV, FLAC, MP3, Ogg Vorbis and Opus. It
trims MP3's encoder delay, where symphonia (sphn) keeps it and shifts every word by ~70 ms at
16 kHz; sphn reads what libsndfile cannot open (other containers, e.g. AAC in M4A). A file
shorter than its header announces (a cut download) is an error, not half a transcript.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Iterator
from pathlib import Path

import julius
import numpy as np
import soundfile
import sphn
import torch

from .errors import DSMLabError, UsageError

SAMPLE_RATE = 24_000
FRAME_SIZE = 1920  # samples per Mimi frame: 80 ms at 24 kHz
FRAME_RATE = SAMPLE_RATE / FRAME_SIZE  # 12.5 frames per second
MAX_CHANNELS = 8  # a 2-D array with more rows than this is taken as [samples, channels]
FORMATS = "wav, flac, mp3, ogg (Vorbis or Opus)"  # tested in tests/test_audio.py

AudioInput = str | Path | bytes | np.ndarray | torch.Tensor
RESAMPLE_CONTEXT = 4096  # input samples read around a chunk: far more than julius's filter


def load_audio(
    source: AudioInput, sample_rate: int | None = None, name: str | None = None
) -> torch.Tensor:
    """Return `source` as a 1-D float32 CPU tensor at 24 kHz, mono.

    `source` is an audio file (see FORMATS), the bytes of one, or an array with its
    `sample_rate`. Arrays are [samples] or [channels, samples]; channels are averaged.
    """
    if isinstance(source, (str, Path)):
        name = name or str(source)
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"{path}: no such audio file")
        data, sample_rate = _decode(path, name)
    elif isinstance(source, bytes):
        name = name or "audio bytes"
        data, sample_rate = _decode(source, name)
    else:
        name = name or "audio array"
        if sample_rate is None:
            raise UsageError(f"{name}: an array needs its sample rate; pass sample_rate=...")
        data = _as_numpy(source, name)
    return _to_model_rate(data, int(sample_rate), name)


def read_chunks(
    source: str | Path | bytes, chunk_s: float = 30.0, name: str | None = None
) -> Iterator[torch.Tensor]:
    """An audio file (or its bytes) as consecutive 1-D float32 chunks at 24 kHz, mono, read
    and resampled one chunk at a time, so an hours-long recording never sits whole in memory at
    24 kHz. Joined, the chunks are `load_audio(source)` (to float rounding): each chunk is
    resampled with RESAMPLE_CONTEXT samples of the audio around it. A format libsndfile cannot
    read in blocks is decoded whole (sphn) and then cut."""
    if isinstance(source, (str, Path)):
        name = name or str(source)
        if not Path(source).is_file():
            raise UsageError(f"{source}: no such audio file")
    name = name or "audio bytes"
    try:
        sound = soundfile.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        whole = load_audio(source, name=name)
        step = max(1, round(chunk_s * SAMPLE_RATE))
        yield from (whole[i : i + step] for i in range(0, len(whole), step))
        return
    with sound:
        rate = sound.samplerate
        gcd = math.gcd(rate, SAMPLE_RATE)
        old, new = rate // gcd, SAMPLE_RATE // gcd
        block = max(1, round(chunk_s * rate) // old) * old  # whole resampling periods
        context = (RESAMPLE_CONTEXT // old + 1) * old

        def read(frames: int) -> np.ndarray:
            try:
                data = sound.read(frames, dtype="float32", always_2d=True).T
            except (soundfile.LibsndfileError, RuntimeError) as e:
                raise DSMLabError(f"{name}: cannot decode audio ({_reason(e)})") from None
            return data.mean(axis=0) if len(data) > 1 else data[0]

        left, current, done = np.zeros(0, np.float32), read(block), 0
        if not len(current):
            raise DSMLabError(f"{name}: the audio is empty")
        while len(current):
            ahead = read(block)
            last = not len(ahead)
            extended = np.concatenate([left, current, ahead[:context]])
            out = _to_model_rate(extended, rate, name)
            first = len(left) * new // old
            total = (done + len(current)) * new // old  # output samples up to this chunk's end
            yield out[first : first + total - done * new // old]
            done += len(current)
            left = np.concatenate([left, current])[-context:]
            current = ahead
            if last:
                return


def _decode(source: Path | bytes, name: str) -> tuple[np.ndarray, int]:
    """[channels, samples] float32 and the rate: libsndfile, or sphn for a file that libsndfile
    cannot open. A file libsndfile opens but cannot read to its end is broken, not foreign."""
    try:
        sound = soundfile.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as e:
        if isinstance(source, bytes):
            raise DSMLabError(f"{name}: cannot decode audio ({_reason(e)}); {_SUPPORTED}") from None
        return _decode_with_sphn(source, name)
    try:
        with sound:
            declared = sound.frames
            data = sound.read(dtype="float32", always_2d=True).T
            rate = sound.samplerate
    except (soundfile.LibsndfileError, RuntimeError) as e:
        raise DSMLabError(f"{name}: cannot decode audio ({_reason(e)}); {_SUPPORTED}") from None
    head = source[:4096] if isinstance(source, bytes) else _head(source)
    declared = _wav_declared_frames(head) or declared
    if data.shape[1] < declared:
        raise DSMLabError(
            f"{name}: truncated audio: its header announces {declared} samples but it holds "
            f"{data.shape[1]}; download or encode it again"
        )
    return data, rate


def _decode_with_sphn(path: Path, name: str) -> tuple[np.ndarray, int]:
    try:
        data, rate = sphn.read(str(path))
    except Exception as e:  # sphn raises plain exceptions with the decoder's message
        raise DSMLabError(f"{name}: cannot decode audio ({_first_line(e)}); {_SUPPORTED}") from None
    return np.asarray(data, dtype=np.float32), int(rate)


_SUPPORTED = f"dsmlab reads {FORMATS} and what sphn decodes"


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(4096)


def _wav_declared_frames(head: bytes) -> int | None:
    """Sample frames a RIFF/WAVE header announces (libsndfile counts what the file holds);
    None for other formats and for streamed WAVs whose sizes were never filled in."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    block_align, offset = None, 12
    while offset + 8 <= len(head):
        chunk, size = (
            head[offset : offset + 4],
            struct.unpack("<I", head[offset + 4 : offset + 8])[0],
        )
        if chunk == b"fmt " and offset + 22 <= len(head):
            block_align = struct.unpack("<H", head[offset + 20 : offset + 22])[0]
        elif chunk == b"data":
            if not block_align or size in (0, 0xFFFFFFFF):
                return None
            return size // block_align
        offset += 8 + size + (size & 1)
    return None


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


def _reason(error: Exception) -> str:
    """libsndfile's reason without its 'Error opening <file object>:' prefix."""
    text = _first_line(error)
    return text.split(": ", 1)[1] if text.startswith("Error opening") and ": " in text else text


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
